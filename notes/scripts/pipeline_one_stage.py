"""Pipeline (staleness 1, K=4 METIS chunks) in one process (P=1: one stage, same history semantics):
loss, test acc, dead hidden units, staleness stats; raw (binary) vs L2-normalised features."""

import json
import os
import sys
import time

import torch

os.environ.setdefault("DGLBACKEND", "pytorch")
import torch.nn.functional as F

from graphpar.datasets.catalog import load_dataset
from graphpar.strategies import Communicator, TrainConfig, get_strategy
from graphpar.strategies.models import conv_layer

torch.set_num_threads(1)
kw = json.loads(sys.argv[1])
raw = kw.pop("raw", False)
every = kw.pop("every", 20)
g = load_dataset(kw.get("dataset", "amazon-computers"))
if raw:
    g.feat = (g.feat > 0).float()
cfg = TrainConfig(strategy=kw.pop("strategy", "pipeline"), dataset=g.name, **kw)
torch.manual_seed(cfg.seed)
st = get_strategy(cfg.strategy)(cfg, g, Communicator(), torch.device("cpu"))
st.setup()
t = time.time()
for e in range(cfg.epochs):
    loss = st.train_epoch(e)
    if e % every == 0 or e == cfg.epochs - 1:
        acc = st.evaluate()["test_acc"]
        eng = getattr(st, "engine", None)
        with torch.no_grad():
            x = eng.X[0] if eng is not None else st.graph.feat
            agg = eng.chunks(1)[0].agg if eng is not None else st.aggregate
            h = F.relu(conv_layer(st.spec, st.params, 0, agg, x))
            dead = float((h.max(0).values == 0).float().mean())
        print(e, round(loss, 3), round(acc, 3), "dead", round(dead, 2), flush=True)
print(
    kw,
    "raw" if raw else "l2",
    "final",
    st.evaluate()["test_acc"],
    getattr(st, "monitor", None) and st.monitor.stats(),
    "%.0fs" % (time.time() - t),
)
