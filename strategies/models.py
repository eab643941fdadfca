"""The models every strategy trains, defined once: parameters, the DGL reference, the torch twin's layer math.

    spec = ModelSpec.build("gcn", in_dim=1433, hidden=16, out_dim=7, layers=2); params = init_params(spec, seed=0)

- ``gcn``: DGL GraphConv (norm='both') on the graph with one self-loop per vertex.
- ``sage``: DGL SAGEConv 'mean' (fc_self(h) + fc_neigh(mean of in-neighbours)).
- ``gat``: DGL GATConv (multi-head attention, ``attention.py``) on the graph with one self-loop per vertex;
  hidden layers concatenate ``heads`` heads of width hidden/heads, the output layer averages ``out_heads``.
- ``decoupled``: an MLP (Linear-ReLU-...-Linear) then K parameter-free steps h <- Â h (GCN normalisation,
  self-loops): the APPNP/SGC-style family NeutronTP trains.
Between conv layers: ReLU, then dropout on the next layer's input; with ``residual`` a layer whose
input and output widths match adds its input (h <- relu(conv(h)) + h), which deep models need.
Parameters are created here from a seed (torch only) and loaded into the DGL model, so every
strategy and the reference start from the same bits.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import attention, dropmask
from .kernels import add_self_loops, gcn_weights, mean_weights

MODELS = ("gcn", "sage", "gat", "decoupled")


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a model: kind, widths, depth, dropout, residual, propagation steps (decoupled)."""

    kind: str
    dims: tuple[int, ...]  # in, hidden..., out: len = layers + 1
    dropout: float = 0.0
    residual: bool = False
    prop_steps: int = 0
    heads: int = 1  # gat: heads of every hidden layer (concatenated)
    out_heads: int = 1  # gat: heads of the output layer (averaged)
    dropout_masks: str = "stream"  # 'keyed': every strategy draws the reference's masks (dropmask.py)

    @classmethod
    def build(cls, kind: str, in_dim: int, hidden: int, out_dim: int, layers: int, dropout: float = 0.0,
              residual: bool = False, prop_steps: int | None = None, heads: int = 1,
              out_heads: int = 1, dropout_masks: str = "stream") -> "ModelSpec":
        if kind not in MODELS:
            raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
        if layers < 1:
            raise ValueError(f"--layers must be >= 1, got {layers}")
        dims = (in_dim, *([hidden] * (layers - 1)), out_dim)
        steps = (layers if prop_steps is None else prop_steps) if kind == "decoupled" else 0
        if kind != "gat":
            heads = out_heads = 1
        elif layers > 1 and hidden % heads:
            raise ValueError(f"--hidden {hidden} must be a multiple of --heads {heads} (gat concatenates the heads)")
        if dropout_masks not in dropmask.MASKS:
            raise ValueError(f"--dropout-masks {dropout_masks!r}: choose one of {', '.join(dropmask.MASKS)}")
        return cls(kind, dims, dropout, residual, steps, heads, out_heads, dropout_masks)

    @property
    def layers(self) -> int:
        return len(self.dims) - 1

    def as_dict(self) -> dict:
        return asdict(self)

    def has_residual(self, i: int) -> bool:
        """Whether layer i adds its input (only where widths match, never the output layer)."""
        return self.residual and i < self.layers - 1 and self.dims[i] == self.dims[i + 1]

    def gat_shape(self, i: int) -> tuple[int, int]:
        """gat layer i: (heads, head width)."""
        return attention.layer_shape(self.dims, self.heads, self.out_heads, i)


def layer_param_names(spec: ModelSpec, i: int) -> list[str]:
    if spec.kind == "gcn":
        return [f"layers.{i}.weight", f"layers.{i}.bias"]
    if spec.kind == "sage":
        return [f"layers.{i}.fc_neigh.weight", f"layers.{i}.fc_self.weight", f"layers.{i}.fc_self.bias"]
    if spec.kind == "gat":
        return attention.param_names(i)
    return [f"mlp.{i}.weight", f"mlp.{i}.bias"]


def init_params(spec: ModelSpec, seed: int) -> "OrderedDict[str, Tensor]":
    """Seeded Glorot-uniform weights (DGL's choice) and zero biases, in the DGL model's names."""
    gen = torch.Generator().manual_seed(seed)
    gain = nn.init.calculate_gain("relu")

    def glorot(fan_in: int, fan_out: int, shape: tuple[int, int], g: float = 1.0) -> Tensor:
        bound = g * (6.0 / (fan_in + fan_out)) ** 0.5
        return (torch.rand(shape, generator=gen) * 2 - 1) * bound

    params: OrderedDict[str, Tensor] = OrderedDict()
    for i in range(spec.layers):
        fi, fo = spec.dims[i], spec.dims[i + 1]
        if spec.kind == "gcn":
            params[f"layers.{i}.weight"] = glorot(fi, fo, (fi, fo))
            params[f"layers.{i}.bias"] = torch.zeros(fo)
        elif spec.kind == "sage":
            params[f"layers.{i}.fc_neigh.weight"] = glorot(fi, fo, (fo, fi), gain)
            params[f"layers.{i}.fc_self.weight"] = glorot(fi, fo, (fo, fi), gain)
            params[f"layers.{i}.fc_self.bias"] = torch.zeros(fo)
        elif spec.kind == "gat":
            attention.init_layer(params, i, fi, *spec.gat_shape(i), glorot)
        else:
            params[f"mlp.{i}.weight"] = glorot(fi, fo, (fo, fi))
            params[f"mlp.{i}.bias"] = torch.zeros(fo)
    return params


# -- the torch twin's layer math (shared by every strategy) -------------------------------------
def multiplies_first(spec: ModelSpec, i: int) -> bool:
    """Whether gcn layer i (sage: its neighbour term) multiplies by its weight before aggregating: DGL's
    order, taken where the weight shrinks the width (so the aggregated rows are the narrower ones); the
    rule ``conv_layer`` applies to the weights' shapes, stated on the spec."""
    return spec.kind in ("gcn", "sage") and spec.dims[i] > spec.dims[i + 1]


def conv_layer(spec: ModelSpec, params: dict[str, Tensor], i: int, aggregate, h_src: Tensor,
               h_dst: Tensor | None = None) -> Tensor:
    """Layer i of gcn/sage/gat before activation: ``aggregate`` maps src rows to dst rows (gat reads its
    edges, ``aggregate.edges``: attention needs them, not the weights).

    ``h_dst`` are the destination rows' own inputs (sage's self term, gat's er); by default the first
    ``num_dst`` rows of ``h_src`` (full graph: all of them)."""
    if spec.kind == "gat":
        return attention.gat_layer(params, i, i == spec.layers - 1, aggregate.edges, h_src, h_dst)
    if spec.kind == "gcn":
        w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
        if w.shape[0] > w.shape[1]:  # DGL's order: multiply first when it shrinks the width
            return aggregate(h_src @ w) + b
        return aggregate(h_src) @ w + b
    if spec.kind == "sage":
        wn, ws, b = (params[n] for n in layer_param_names(spec, i))
        neigh = aggregate(h_src @ wn.t()) if wn.shape[1] > wn.shape[0] else aggregate(h_src) @ wn.t()
        if h_dst is None:
            h_dst = h_src[: neigh.shape[0]]
        return F.linear(h_dst, ws, b) + neigh
    raise ValueError(f"conv_layer: {spec.kind} has no conv layers")


def mlp_layer(spec: ModelSpec, params: dict[str, Tensor], i: int, h: Tensor) -> Tensor:
    """Layer i of the decoupled model's MLP, before activation."""
    return F.linear(h, params[f"mlp.{i}.weight"], params[f"mlp.{i}.bias"])


def activate(spec: ModelSpec, i: int, out: Tensor, h_in: Tensor) -> Tensor:
    """After layer i: ReLU (+ residual) on all but the last layer; the last returns logits."""
    if i == spec.layers - 1:
        return out
    out = F.relu(out)
    return out + h_in if spec.has_residual(i) else out


def dropout(spec: ModelSpec, i: int, h: Tensor, training: bool, rows: Tensor | None = None) -> Tensor:
    """Dropout on layer i's input, for every layer but the first. ``rows``: the global vertex ids of h's rows
    (None: the whole graph in id order), read by keyed masks only (``dropmask``)."""
    if i == 0 or spec.dropout == 0.0 or not training:
        return h
    if spec.dropout_masks == "keyed":
        return h * dropmask.keyed_noise(spec.dropout, i, rows, h.shape[0], h.shape[1], device=h.device, dtype=h.dtype)
    return F.dropout(h, spec.dropout, training)


class _ReluDropout(torch.autograd.Function):
    """``F.dropout(F.relu(z), p)`` in place on ``z``, saving one bool mask: the same values, the same random
    draws (CPU's dropout: a float ``bernoulli_(1 - p)`` noise divided by 1 - p, multiplied in), and the same
    gradient bits (the kept entries' gradient times the noise's value, zero elsewhere) where the two ops
    would save relu's output and the float noise (and leave relu's output beside dropout's)."""

    @staticmethod
    def forward(ctx, z: Tensor, p: float) -> Tensor:
        noise = torch.empty_like(z).bernoulli_(1 - p)
        noise.div_(1 - p)
        z.relu_()
        drop = z <= 0  # relu's backward zeroes where its output is <= 0
        drop.logical_or_(noise == 0)
        z.mul_(noise)
        ctx.scale = torch.ones((), dtype=z.dtype).div_(1 - p)  # the noise's kept value, computed as dropout does
        ctx.save_for_backward(drop)
        ctx.mark_dirty(z)
        return z

    @staticmethod
    def backward(ctx, grad: Tensor):
        (drop,) = ctx.saved_tensors
        return grad.mul(ctx.scale.to(grad.device)).masked_fill_(drop, 0.0), None


def activate_dropout(spec: ModelSpec, i: int, out: Tensor, h_in: Tensor, training: bool,
                     rows: Tensor | None = None) -> Tensor:
    """``dropout(spec, i + 1, activate(spec, i, out, h_in), training)`` for a layer i below the last, in place
    on ``out`` (a layer's fresh output that autograd does not save) where that is exact: no residual, on CPU
    (whose dropout ``_ReluDropout`` repeats), with rows. Saves the separate relu output, the float noise and
    relu's saved copy: one bool mask instead. gcn/sage only (their layers' outputs are fresh sums no node
    saves); the others take the two ops."""
    p = spec.dropout if training else 0.0
    plain = spec.kind in ("gcn", "sage") and not spec.has_residual(i)
    if (not plain or out.device.type != "cpu" or out.numel() == 0 or not torch.is_floating_point(out)
            or (spec.dropout_masks == "keyed" and p > 0.0)):
        return dropout(spec, i + 1, activate(spec, i, out, h_in), training, rows)
    if p == 0.0:
        return F.relu(out) if torch.is_grad_enabled() and out.requires_grad else out.relu_()
    return _ReluDropout.apply(out, p)


def forward_full(spec: ModelSpec, params: dict[str, Tensor], x: Tensor, aggregate, training: bool) -> Tensor:
    """The whole model on one worker's full graph (``aggregate``: the layer's normalised adjacency)."""
    h = x
    if spec.kind == "decoupled":
        for i in range(spec.layers):
            h = activate(spec, i, mlp_layer(spec, params, i, dropout(spec, i, h, training)), h)
        for _ in range(spec.prop_steps):
            h = aggregate(h)
        return h
    for i in range(spec.layers):
        h_in = dropout(spec, i, h, training)
        h = activate(spec, i, conv_layer(spec, params, i, aggregate, h_in), h_in)
    return h


def aggregation_edges(spec: ModelSpec, src: Tensor, dst: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """The edges and weights a model aggregates over on the full graph (self-loops for gcn/gat/decoupled;
    gat's weights are unused: its attention is computed per edge)."""
    if spec.kind == "sage":
        return src, dst, mean_weights(src, dst, num_nodes)
    s, d = add_self_loops(src, dst, num_nodes)
    if spec.kind == "gat":
        return s, d, torch.ones(s.numel())
    return s, d, gcn_weights(s, d, num_nodes)


# -- the DGL reference ---------------------------------------------------------------------------
class ReferenceModel(nn.Module):
    """The oracle: DGL's own GraphConv / SAGEConv / GATConv layers (or an MLP + GraphConv propagation)."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        from dgl.nn import GATConv, GraphConv, SAGEConv  # noqa: PLC0415

        self.spec = spec
        pairs = list(zip(spec.dims[:-1], spec.dims[1:]))
        if spec.kind == "gcn":
            self.layers = nn.ModuleList(GraphConv(a, b, norm="both", allow_zero_in_degree=True) for a, b in pairs)
        elif spec.kind == "sage":
            self.layers = nn.ModuleList(SAGEConv(a, b, "mean") for a, b in pairs)
        elif spec.kind == "gat":
            self.layers = nn.ModuleList(GATConv(a, spec.gat_shape(i)[1], spec.gat_shape(i)[0])
                                        for i, (a, _) in enumerate(pairs))
        else:
            self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
            self.prop = GraphConv(1, 1, norm="both", weight=False, bias=False, allow_zero_in_degree=True)

    def forward(self, g, x: Tensor) -> Tensor:
        spec, h = self.spec, x
        if spec.kind == "decoupled":
            for i, lin in enumerate(self.mlp):
                h = activate(spec, i, lin(dropout(spec, i, h, self.training)), h)
            for _ in range(spec.prop_steps):
                h = self.prop(g, h)
            return h
        for i, layer in enumerate(self.layers):
            h_in = dropout(spec, i, h, self.training)
            out = layer(g, h_in)
            if spec.kind == "gat":  # [n, heads, width]: heads concatenated, or averaged by the output layer
                out = out.mean(1) if i == spec.layers - 1 else out.flatten(1)
            h = activate(spec, i, out, h_in)
        return h


def reference_graph(spec: ModelSpec, graph):
    """The DGLGraph the reference model runs on (self-loops added for gcn, gat and decoupled)."""
    import dgl  # noqa: PLC0415

    g = graph.to_dgl()
    return g if spec.kind == "sage" else dgl.add_self_loop(g)
