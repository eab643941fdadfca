"""Fast single-process GCN (the torch twin) for recipe exploration: loss, dead units, grad norms."""

import json
import os
import sys
import time

import torch

os.environ.setdefault("DGLBACKEND", "pytorch")
import torch.nn.functional as F

from graphpar.datasets.catalog import load_dataset
from graphpar.strategies.kernels import make_aggregator
from graphpar.strategies.models import ModelSpec, aggregation_edges, conv_layer, forward_full, init_params

torch.set_num_threads(1)


def main(dataset, seed, lr=0.01, wd=5e-4, dropout=0.5, hidden=16, norm="", epochs=200, every=20):
    g = load_dataset(dataset)
    x = g.feat
    if norm == "row":
        x = x / x.sum(1, keepdim=True).clamp_min(1e-12)
    if norm == "l2":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if norm == "std":
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    spec = ModelSpec.build("gcn", x.shape[1], hidden, int(g.label.max()) + 1, 2, dropout)
    s, d, w = aggregation_edges(spec, g.src, g.dst, g.num_nodes)
    agg = make_aggregator(s, d, w, g.num_nodes, g.num_nodes, "torch", "cpu")
    torch.manual_seed(seed)
    p = {k: v.clone().requires_grad_(True) for k, v in init_params(spec, seed).items()}
    opt = torch.optim.Adam(p.values(), lr=lr, weight_decay=wd)
    tm = g.train_mask
    out = []
    for ep in range(epochs):
        logits = forward_full(spec, p, x, agg, True)
        loss = F.cross_entropy(logits[tm], g.label[tm])
        opt.zero_grad()
        loss.backward()
        gn = {k: float(v.grad.norm()) for k, v in p.items()}
        opt.step()
        if ep % every == 0 or ep == epochs - 1:
            with torch.no_grad():
                h = F.relu(conv_layer(spec, p, 0, agg, x))
                dead = float((h.max(0).values == 0).float().mean())
                lg = forward_full(spec, p, x, agg, False)
                acc = float((lg.argmax(1) == g.label)[g.test_mask].float().mean())
            out.append((ep, round(float(loss), 3), round(acc, 3), round(dead, 2), {k: round(v, 4) for k, v in gn.items()}))
    return out


if __name__ == "__main__":
    kw = json.loads(sys.argv[1])
    t = time.time()
    for r in main(**kw):
        print(*r)
    print(kw, "%.0fs" % (time.time() - t))
