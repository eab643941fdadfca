"""What a strategy costs at P=1 beyond the reference's own work: P=1 time / ``single`` time, per phase.

    python -m graphpar.bench.overhead [--dataset rmat-arxiv] [--rounds 3] [--epochs 5] [--target 1.10]
    make bench-overhead

At P=1 a strategy has no one to talk to, so anything it spends beyond ``single`` (same model, same kernel,
same seed, dropout as configured) is framework overhead that would pollute every speedup it reports.
Each case trains ``single`` (``--single-impl twin``: the model through the kernel seam, so both sides
aggregate with the same kernel) and the strategy in its exact mode (pipeline ``--staleness 0``, sampling
``--fanouts -1 --batch-size 0``), in-process, one torch thread (so the thread's CPU clock sees all the
work), round after round interleaved. Per run the figure is the median over the timed epochs of the
compute CPU seconds (the record's phases: aggregation, dense, layout, optimizer; comm is listed apart);
a case's ratio is strategy / single within each round, median and min-max over rounds. Exit 1 when a
ratio's median exceeds ``--target``, 0 otherwise, 2 on bad input.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # run as a program: before torch and DGL load, their OpenMP pools at one thread
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

CASES = (  # (strategy, model, hidden, options): every strategy's exact P=1 mode on the models it trains
    ("tensor", "gcn", 64, {}),
    ("tensor", "decoupled", 128, {}),
    ("partition", "gcn", 64, {}),
    ("pipeline", "gcn", 64, {"staleness": 0}),
    ("sampling", "gcn", 64, {"fanouts": "-1", "batch_size": 0}),
)
PHASES = ("aggregation", "dense", "layout", "optimizer", "comm")


@dataclass
class Case:
    strategy: str
    model: str
    hidden: int
    options: dict
    ratios: list[float] = field(default_factory=list)
    ref: list[dict] = field(default_factory=list)  # per round: per-phase CPU s of single
    mine: list[dict] = field(default_factory=list)  # per round: per-phase CPU s of the strategy

    @property
    def name(self) -> str:
        opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.options.items())
        return f"{self.strategy} {self.model} h{self.hidden}" + (f" {opts}" if opts else "")


def phase_medians(result: dict, warmup: int) -> dict[str, float]:
    """Per phase and in total (compute phases): median CPU seconds over the timed epochs of one rank."""
    from graphpar.bench.metrics import timed_start  # noqa: PLC0415

    eps = result["epochs"][timed_start(len(result["epochs"]), warmup):]
    out = {p: statistics.median(e["phases"]["cpu_s"].get(p, 0.0) for e in eps) for p in PHASES}
    out["compute"] = statistics.median(sum(e["phases"]["cpu_s"].get(p, 0.0) for p in PHASES if p != "comm")
                                       for e in eps)
    return out


def run_one(graph, strategy: str, model: str, hidden: int, options: dict, epochs: int, dataset: str) -> dict:
    from graphpar.bench.training_loop import train_local  # noqa: PLC0415
    from graphpar.strategies import TrainConfig  # noqa: PLC0415

    cfg = TrainConfig(strategy=strategy, dataset=dataset, workers=1, model=model, hidden=hidden, epochs=epochs,
                      options=options, warmup_epochs=1)
    return phase_medians(train_local(cfg, graph, keep_params=False)[0], cfg.warmup_epochs)


def measure(dataset: str, cases: list[Case], rounds: int, epochs: int, progress=print) -> list[Case]:
    from graphpar.datasets import load_dataset  # noqa: PLC0415

    graph = load_dataset(dataset)
    refs: dict[tuple, dict] = {}
    for r in range(rounds):
        refs.clear()
        for c in cases:  # the reference of a model runs once per round, just before its first case
            key = (c.model, c.hidden)
            if key not in refs:
                refs[key] = run_one(graph, "single", c.model, c.hidden, {"single_impl": "twin"}, epochs, dataset)
            mine = run_one(graph, c.strategy, c.model, c.hidden, c.options, epochs, dataset)
            c.ref.append(refs[key])
            c.mine.append(mine)
            c.ratios.append(mine["compute"] / refs[key]["compute"])
            progress(f"# round {r + 1}/{rounds}: {c.name}: {c.ratios[-1]:.3f}")
    return cases


def report(cases: list[Case], target: float) -> tuple[str, bool]:
    lines = ["| case | single CPU ms/epoch | P=1 CPU ms/epoch | ratio median (min-max) | "
             + " | ".join(f"{p} ms (single / P=1)" for p in PHASES) + " | verdict |",
             "|---|---|---|---|" + "---|" * len(PHASES) + "---|"]
    ok = True
    for c in cases:
        med = statistics.median(c.ratios)
        ok &= med <= target

        def ms(rows, key):
            return 1e3 * statistics.median(x[key] for x in rows)
        phases = " | ".join(f"{ms(c.ref, p):.0f} / {ms(c.mine, p):.0f}" for p in PHASES)
        lines.append(f"| {c.name} | {ms(c.ref, 'compute'):.0f} | {ms(c.mine, 'compute'):.0f} | {med:.3f} "
                     f"({min(c.ratios):.3f}-{max(c.ratios):.3f}) | {phases} | "
                     f"{'ok' if med <= target else f'OVER {target:.2f}'} |")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphpar.bench.overhead", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="rmat-arxiv")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--target", type=float, default=1.10)
    p.add_argument("--strategies", default="", help="comma list to restrict the cases (default: all)")
    a = p.parse_args(argv)
    wanted = [s for s in a.strategies.split(",") if s]
    known = sorted({c[0] for c in CASES})
    if a.rounds < 1 or a.epochs < 2 or a.target <= 0 or any(s not in known for s in wanted):
        print(f"overhead: pass --rounds >= 1, --epochs >= 2 (one warm-up), --target > 0 and --strategies from "
              f"{','.join(known)}", file=sys.stderr)
        return 2
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    cases = [Case(*c) for c in CASES if not wanted or c[0] in wanted]
    measure(a.dataset, cases, a.rounds, a.epochs, progress=lambda m: print(m, file=sys.stderr, flush=True))
    text, ok = report(cases, a.target)
    print(f"P=1 compute CPU / single (twin, same kernel) on {a.dataset}, {a.epochs} epochs (1 warm-up), "
          f"{a.rounds} interleaved rounds, 1 thread; target <= {a.target:.2f}")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
