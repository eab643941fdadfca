"""Real graphs in their authors' own formats: Facebook page-page (MUSAE csv/json), ego-Twitter (Graphs.jl LG).

    graphpar run --dataset facebook-page-page ...   |   graphpar run --dataset ego-twitter ...
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .graph import GraphData, canonical_edges, random_split, split_per_class

TWITTER_FEATURES, TWITTER_CLASSES = 64, 8


def load_facebook(directory: Path) -> GraphData:
    """MUSAE Facebook: undirected edges, sparse binary features, 4 page types; 20/30-per-class split."""
    edges = pd.read_csv(directory / "facebook_edges.csv")
    target = pd.read_csv(directory / "facebook_target.csv").sort_values("id")
    classes = sorted(target["page_type"].unique())
    label = torch.tensor(target["page_type"].map({c: i for i, c in enumerate(classes)}).to_numpy(), dtype=torch.int64)
    n = len(target)
    with open(directory / "facebook.json") as f:
        feats = json.load(f)
    num_feat = 1 + max(max(v) for v in feats.values() if v)
    feat = torch.zeros(n, num_feat, dtype=torch.float32)
    rows = [int(k) for k, v in feats.items() for _ in v]
    cols = [c for v in feats.values() for c in v]
    feat[torch.tensor(rows), torch.tensor(cols)] = 1.0
    src, dst = canonical_edges(torch.from_numpy(edges["id_1"].to_numpy().copy()),
                               torch.from_numpy(edges["id_2"].to_numpy().copy()), n, symmetrize=True)
    train, val, test = split_per_class(label, len(classes), 20, 30, 0)
    return GraphData(name="facebook-page-page", num_nodes=n, src=src, dst=dst, feat=feat, label=label,
                     train_mask=train, val_mask=val, test_mask=test, num_classes=len(classes),
                     meta={"source": str(directory), "classes": classes})


def synthetic_node_data(src: torch.Tensor, dst: torch.Tensor, n: int, num_features: int, num_classes: int,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded features and labels for a topology without any: a random community per vertex, smoothed
    once over in-neighbours (so structure matters), and features = community centroid + noise."""
    gen = torch.Generator().manual_seed(seed)
    community = torch.randint(0, num_classes, (n,), generator=gen)
    votes = torch.zeros(n, num_classes).index_put_((dst, community[src]), torch.ones(src.numel()), accumulate=True)
    votes[torch.arange(n), community] += 1.5
    label = votes.argmax(1)
    centroids = torch.randn(num_classes, num_features, generator=gen)
    feat = centroids[community] + torch.randn(n, num_features, generator=gen)
    return feat, label


def load_ego_twitter(directory: Path) -> GraphData:
    """ego-Twitter topology; features and labels are synthetic (seeded), as the graph has none."""
    with gzip.open(directory / "ego-twitter-undirected.jlg", "rt") as f:
        header = f.readline().strip().split(",")
        edges = np.loadtxt(f, delimiter=",", dtype=np.int64)
    n = int(header[0])
    src, dst = canonical_edges(torch.from_numpy(edges[:, 0] - 1), torch.from_numpy(edges[:, 1] - 1), n, symmetrize=True)
    feat, label = synthetic_node_data(src, dst, n, TWITTER_FEATURES, TWITTER_CLASSES)
    train, val, test = random_split(n, (0.6, 0.2), 0)
    return GraphData(name="ego-twitter", num_nodes=n, src=src, dst=dst, feat=feat, label=label,
                     train_mask=train, val_mask=val, test_mask=test, num_classes=TWITTER_CLASSES,
                     meta={"source": str(directory), "synthetic_features": True})
