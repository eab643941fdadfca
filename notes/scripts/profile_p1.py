"""Profile one P=1 training epoch of each strategy and of single with torch.profiler (README "Performance").

    OMP_NUM_THREADS=1 python notes/scripts/profile_p1.py [DATASET] [STRATEGY ...]

Prints per strategy the operators with the most self CPU time (one thread, after one warm-up epoch).
"""
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from graphpar.datasets import load_dataset
from graphpar.strategies import Communicator, TrainConfig, get_strategy

CASES = {"single": ("gcn", 64, {}), "tensor": ("gcn", 64, {}), "tensor-decoupled": ("decoupled", 128, {}),
         "partition": ("gcn", 64, {}), "pipeline": ("gcn", 64, {"staleness": 0}),
         "sampling": ("gcn", 64, {"fanouts": "-1", "batch_size": 0})}


def main() -> None:
    torch.set_num_threads(1)
    dataset = sys.argv[1] if len(sys.argv) > 1 else "rmat-arxiv"
    graph = load_dataset(dataset)
    for name in sys.argv[2:] or list(CASES):
        model, hidden, options = CASES[name]
        strategy = name.split("-")[0]
        cfg = TrainConfig(strategy=strategy, dataset=dataset, model=model, hidden=hidden, epochs=2, options=options)
        s = get_strategy(strategy)(cfg, graph, Communicator(), torch.device("cpu"))
        s.setup()
        s.train_epoch(0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            s.train_epoch(1)
        print(f"== {name} ({model} h{hidden}) on {dataset}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
