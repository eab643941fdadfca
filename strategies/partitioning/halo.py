"""One worker's local view of a partitioned graph and the (differentiable) halo exchange between workers.

    graphpar check --strategy partition --dataset cora --workers 3

    view = build_local_view(graph, part_id, rank, spec)           # owned rows first, then the halo
    agg = view.aggregator(backend="torch", device=dev)             # [owned + halo] rows -> [owned] rows
    h_local = halo_exchange(comm, view, h_owned, tag="layer1/halo")  # autograd sends halo grads back

Local numbering: the ``num_owned`` owned vertices (ascending global id) come first, then the
``num_halo`` halo vertices (remote in-neighbours of owned vertices) grouped by owner rank, ascending
global id within an owner. The local edges are the in-edges of owned vertices, with the weights the
model uses on the *global* graph (GCN: self-loops added, then D_out^-1/2 D_in^-1/2 with global degrees;
SAGE: 1/global in-degree), so local aggregation reproduces full-graph aggregation row for row.
The send lists are derived from the same global edge list on every rank, so the rows rank q sends to
rank p line up with p's halo rows of owner q without any negotiation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import attention, tags
from ..comm import Communicator, all_to_all_autograd
from ..kernels import SplitCSR, _SplitSpMM, make_aggregator
from ..models import ModelSpec, aggregation_edges, conv_layer, layer_param_names, multiplies_first


@dataclass
class LocalView:
    """Rank ``rank``'s piece of the graph: vertex ids, local edges, and the halo exchange plan."""

    rank: int
    num_parts: int
    owned: Tensor  # int64 [num_owned] global ids, ascending
    halo: Tensor  # int64 [num_halo] global ids, grouped by owner rank
    src: Tensor  # int64 [E_local] local source index in [0, num_owned + num_halo)
    dst: Tensor  # int64 [E_local] local destination index in [0, num_owned)
    weight: Tensor  # float32 [E_local] global-degree normalisation
    send_idx: Tensor  # int64 [sum(send_counts)] local owned indices, concatenated by destination rank
    send_counts: list[int]  # rows this rank sends to each rank (0 to itself)
    recv_counts: list[int]  # halo rows received from each rank (0 from itself)

    @property
    def num_owned(self) -> int:
        return int(self.owned.numel())

    @property
    def num_halo(self) -> int:
        return int(self.halo.numel())

    @property
    def num_local(self) -> int:
        return self.num_owned + self.num_halo

    @property
    def num_edges(self) -> int:
        return int(self.src.numel())

    def aggregator(self, backend: str = "torch", device: torch.device | str = "cpu"):
        """The layer's aggregation: [num_local, d] -> [num_owned, d] over the local edges."""
        return make_aggregator(self.src, self.dst, self.weight, self.num_local, self.num_owned, backend, device)

    def to(self, device: torch.device | str) -> "LocalView":
        """The index lists on ``device`` (edges stay where they are: aggregators move them)."""
        self.send_idx = self.send_idx.to(device)
        return self

    def drop_edges(self) -> None:
        """Free the edge list once an aggregator holds its own copy (the stats keep their counts)."""
        self.local_edges = int((self.src != self.dst).sum())
        self.src = self.dst = torch.empty(0, dtype=torch.int64)
        self.weight = torch.empty(0)

    def stats(self) -> dict[str, Any]:
        """``local_edges``: in-edges of the owned vertices without the self-loops gcn adds (the graph has none),
        the same count every strategy reports."""
        local_edges = getattr(self, "local_edges", None)
        if local_edges is None:
            local_edges = int((self.src != self.dst).sum())
        return {"local_vertices": self.num_owned, "local_edges": local_edges,
                "halo_vertices": self.num_halo,
                "send_rows": sum(self.send_counts), "recv_rows": sum(self.recv_counts)}


def _edges_for(spec_or_kind: ModelSpec | str, src: Tensor, dst: Tensor, num_nodes: int):
    kind = spec_or_kind if isinstance(spec_or_kind, str) else spec_or_kind.kind
    return aggregation_edges(ModelSpec.build(kind, 1, 1, 1, 1), src, dst, num_nodes)


def build_local_view(graph, part_id: Tensor, rank: int, spec: ModelSpec | str, num_parts: int | None = None,
                     edges: tuple[Tensor, Tensor, Tensor] | None = None) -> LocalView:
    """Rank ``rank``'s LocalView of ``graph`` (GraphData) under the assignment ``part_id`` (int64 [N]).

    ``spec`` (a ModelSpec or its kind, "gcn"/"sage"/"decoupled") picks the aggregation edges and weights;
    ``num_parts`` defaults to max(part_id) + 1 (pass it when the last parts may be empty); pass
    ``edges=(src, dst, weight)`` of the global aggregation graph to reuse one computed already.
    Vertices with no in-edges, isolated vertices and empty parts are all fine: they simply contribute
    no local edges / no rows."""
    src, dst, w = edges if edges is not None else _edges_for(spec, graph.src, graph.dst, graph.num_nodes)
    return _view_from_edges(src, dst, w, part_id, rank, num_parts or _parts_hint(part_id))


def _parts_hint(part_id: Tensor) -> int:
    return int(part_id.max()) + 1 if part_id.numel() else 1


def _view_from_edges(src: Tensor, dst: Tensor, w: Tensor, part_id: Tensor, rank: int, num_parts: int) -> LocalView:
    n = part_id.numel()
    ps, pd = part_id[src], part_id[dst]
    owned = torch.nonzero(part_id == rank).flatten()
    mine = pd == rank
    l_src, l_dst, l_w = src[mine], dst[mine], w[mine]
    remote = part_id[l_src] != rank
    halo = torch.unique(l_src[remote])  # ascending global id
    halo = halo[torch.argsort(part_id[halo], stable=True)]  # grouped by owner, ascending within
    g2l = torch.full((n,), -1, dtype=torch.int64)
    g2l[owned] = torch.arange(owned.numel())
    g2l[halo] = owned.numel() + torch.arange(halo.numel())
    recv_counts = torch.bincount(part_id[halo], minlength=num_parts).tolist()
    # what each peer q needs from me: my vertices with an out-edge into q, ascending global id
    out = (ps == rank) & (pd != rank)
    need = torch.unique(pd[out] * n + src[out])  # sorted by (peer, global id)
    send_counts = torch.bincount(need // n, minlength=num_parts).tolist()
    send_idx = g2l[need % n]
    return LocalView(rank, num_parts, owned, halo, g2l[l_src], g2l[l_dst], l_w.to(torch.float32), send_idx,
                     send_counts, recv_counts)


def build_all_views(graph, part_id: Tensor, spec: ModelSpec | str, num_parts: int | None = None) -> list[LocalView]:
    """Every rank's view in one process (for formulas, tests and dry runs)."""
    p = num_parts or _parts_hint(part_id)
    src, dst, w = _edges_for(spec, graph.src, graph.dst, graph.num_nodes)
    return [_view_from_edges(src, dst, w, part_id, r, p) for r in range(p)]


def halo_volume_bytes(halo_rows: int, dims: tuple[int, ...] | list[int], element_size: int = 4) -> int:
    """Bytes one training epoch's halo exchanges send over all ranks when every layer exchanges its *input*
    rows (the hybrid pipeline, and ``partition --stale K``): ``halo_rows`` (sum of the ranks' halo sizes,
    i.e. ``sum(partition_stats(...)["halo_vertices"])``) rows of every layer input width forward, and the
    same backward for every layer but the first (input features need no gradient)."""
    layers = len(dims) - 1
    return halo_rows * element_size * (sum(dims[:layers]) + sum(dims[1:layers]))


def projects_halo(spec: ModelSpec, i: int, projected: bool = True) -> bool:
    """Whether layer i exchanges projected rows (z = h W, the layer's output width) instead of its input:
    gcn/sage layers that multiply first (``multiplies_first``: W shrinks the width), on the exact path."""
    return projected and multiplies_first(spec, i)


def exchange_widths(spec: ModelSpec, projected: bool = True) -> list[tuple[int, int]]:
    """Per layer, the columns of a halo row sent forward and of its gradient sent back.

    - gat: the projected row and el of every layer, both ways (the projection's weight needs the gradient
      even at layer 0);
    - gcn/sage where the layer multiplies first and ``projected`` (the exact path, ``--stale 1``): the
      projected row z = h W (the output width d_{i+1}), both ways (W needs its gradient, at layer 0 too);
    - otherwise the layer input d_i forward, and its gradient back at every layer but the first (input
      features need none): ``projected=False`` is the stale path's ``halo_volume_bytes``."""
    if spec.kind == "gat":
        return [(w, w) for w in (attention.exchanged_width(*spec.gat_shape(i)) for i in range(spec.layers))]
    return [(spec.dims[i + 1], spec.dims[i + 1]) if projects_halo(spec, i, projected)
            else (spec.dims[i], spec.dims[i] if i > 0 else 0) for i in range(spec.layers)]


def halo_bytes(spec: ModelSpec, halo_rows: int, element_size: int = 4, projected: bool = True) -> int:
    """Bytes of one training epoch's halo exchanges over all ranks, R * 4 * sum_i (f_i + b_i) with the
    per-layer widths of ``exchange_widths``: gcn h16 on F=100, 47 classes: R * 4 * (2*16 + 2*16) exact,
    R * 4 * (100 + 2*16) with ``projected=False``; gat R * 4 * sum_i 2 (H_i D_i + H_i)."""
    return halo_rows * element_size * sum(f + b for f, b in exchange_widths(spec, projected))


def halo_layer(spec: ModelSpec, params: dict[str, Tensor], i: int, aggregate, h_owned: Tensor, exchange,
               projected: bool = False, rows: Tensor | None = None, gather=None, before_weight: bool = False) -> Tensor:
    """Layer i on owned rows before activation; ``exchange`` completes owned rows with their halo rows
    (``halo_exchange`` or a stale history). gcn/sage exchange the layer input, or with ``projected`` where
    the layer multiplies first (``projects_halo``) each owner's projected rows z = h W: the same products
    ``conv_layer`` takes over [owned; halo] rows, computed where the rows live, so the wide input rows are
    never sent nor concatenated and autograd returns z's halo gradients to W's owners. gat projects its
    owned rows first and exchanges each row's projection and source attention term (z, el): the edge
    softmax stays local, because a vertex's in-edges all live with it. ``rows`` (gcn/sage): compute only these
    owned rows after the aggregation (the output layer in training: the rows the loss reads), so the
    output-width products, the logits and their gradients are never made for the others. ``gather``
    (gcn/sage): owned rows -> their aggregation over [owned; halo] rows in one step (``halo_aggregate``, no
    stacked rows); by default ``aggregate(exchange(rows))``. ``before_weight`` (a gcn layer that aggregates
    first, ``head_before_weight``): the aggregated rows, before the weight and bias (``linear_rows_loss``
    applies them)."""
    pick = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))
    gather = gather or (lambda t: aggregate(exchange(t)))
    # the bias and self terms are added in place (the same additions; autograd saves none of these outputs)
    if spec.kind == "gcn":
        w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
        if projects_halo(spec, i, projected):
            return pick(gather(h_owned @ w)).add_(b)
        if not multiplies_first(spec, i):
            rows_in = pick(gather(h_owned))
            return rows_in if before_weight else (rows_in @ w).add_(b)
    if spec.kind == "sage":
        wn, ws, b = (params[n] for n in layer_param_names(spec, i))
        if projects_halo(spec, i, projected):
            return F.linear(pick(h_owned), ws, b).add_(pick(gather(h_owned @ wn.t())))
        if not multiplies_first(spec, i):
            return F.linear(pick(h_owned), ws, b).add_(pick(gather(h_owned)) @ wn.t())
    if spec.kind != "gat":
        return pick(conv_layer(spec, params, i, aggregate, exchange(h_owned), h_owned))
    z = attention.project(params, i, h_owned)
    el, er = attention.logits(params, i, z)
    local = exchange(torch.cat([z, el], 1))
    width = z.shape[1]
    return pick(attention.aggregate_layer(params, i, i == spec.layers - 1, aggregate.edges, local[:, :width],
                                          local[:, width:], er))


def head_before_weight(spec: ModelSpec) -> bool:
    """Whether ``halo_layer(..., before_weight=True)`` applies to the output layer: gcn aggregating first."""
    return spec.kind == "gcn" and not multiplies_first(spec, spec.layers - 1)


def halo_exchange(comm: Communicator, view: LocalView, h_owned: Tensor, tag: str) -> Tensor:
    """``[h_owned; rows of the halo]`` in local order, one all_to_all with split sizes.

    Differentiable: the backward sends the halo rows' gradients back to their owners (one all_to_all,
    counted under ``tag + '/bwd'``) and scatter-adds them into ``h_owned``'s gradient. When ``h_owned``
    needs no gradient (layer 0's input features) no backward exchange happens. Every rank of ``comm``
    must call it with the same tag, also ranks that send or receive nothing."""
    if comm.world_size == 1:
        return h_owned
    return _HaloExchange.apply(h_owned, comm, view, tag)


def halo_aggregate(comm: Communicator, view: LocalView, split: SplitCSR, h_owned: Tensor, tag: str) -> Tensor:
    """``A @ [h_owned; halo rows]`` without stacking them: ``halo_exchange`` then the aggregation, as
    ``A_o @ h_owned + A_h @ halo`` over a ``SplitCSR``; the same exchange calls and bytes under the same tags.
    Backward: the halo rows' gradient ``A_h^T g`` goes back to its owners and is added onto ``A_o^T g`` at the
    rows it came from (the stacked path's numbers, bit for bit), with no [owned; halo] gradient buffer."""
    if comm.world_size == 1:
        return _SplitSpMM.apply(h_owned, split)
    return _HaloAggregate.apply(h_owned, comm, view, split, tag)


class _HaloAggregate(torch.autograd.Function):
    """``halo_aggregate``'s autograd node: saves nothing of its input (the products' backward reads only the
    matrix); at most the halo rows or their gradient live beside the owned ones."""

    @staticmethod
    def forward(ctx, h_owned: Tensor, comm: Communicator, view: LocalView, split: SplitCSR, tag: str) -> Tensor:
        ctx.comm, ctx.view, ctx.split, ctx.tag = comm, view, split, tag
        sent = h_owned.index_select(0, view.send_idx)
        halo = comm.all_to_all(sent, view.send_counts, view.recv_counts, tag + tags.FWD)
        del sent
        x = h_owned if h_owned.is_contiguous() else h_owned.contiguous()
        return split.forward(x, halo)

    @staticmethod
    def backward(ctx, grad: Tensor):
        view, split, grad = ctx.view, ctx.split, grad.contiguous()
        halo_grad = split.mul_t_halo(grad)
        back = ctx.comm.all_to_all(halo_grad, view.recv_counts, view.send_counts, ctx.tag + tags.BWD)
        del halo_grad
        return split.mul_t_own(grad).index_add_(0, view.send_idx, back), None, None, None, None


class _HaloExchange(torch.autograd.Function):
    """``[h_owned; halo rows]`` in one buffer: the owned rows copied in and the halo rows received in place
    (no separate halo tensor, no concatenation). Backward: the halo rows' gradients go back to their
    owners (``tag + '/bwd'``, skipped when ``h_owned`` needs no gradient) and are added at the rows they
    were sent from, onto the owned rows' own gradient."""

    @staticmethod
    def forward(ctx, h_owned: Tensor, comm: Communicator, view: LocalView, tag: str) -> Tensor:
        ctx.comm, ctx.view, ctx.tag = comm, view, tag
        n_o = h_owned.shape[0]
        local = h_owned.new_empty((n_o + sum(view.recv_counts), *h_owned.shape[1:]))
        local[:n_o] = h_owned
        sent = h_owned.index_select(0, view.send_idx)
        comm.all_to_all(sent, view.send_counts, view.recv_counts, tag + tags.FWD, out=local[n_o:])
        return local

    @staticmethod
    def backward(ctx, grad: Tensor):
        view, n_o = ctx.view, grad.shape[0] - sum(ctx.view.recv_counts)
        back = ctx.comm.all_to_all(grad[n_o:].contiguous(), view.recv_counts, view.send_counts, ctx.tag + tags.BWD)
        return grad[:n_o].clone().index_add_(0, view.send_idx, back), None, None, None


class _AddGrad(torch.autograd.Function):
    """Identity forward; backward adds a fixed gradient at given rows (a stale halo gradient)."""

    @staticmethod
    def forward(ctx, x: Tensor, idx: Tensor, extra: Tensor) -> Tensor:
        ctx.save_for_backward(idx, extra)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        idx, extra = ctx.saved_tensors
        return grad.index_add(0, idx, extra.to(grad.dtype)), None, None


class StaleHalo:
    """Historical halo rows and gradients for one layer (Sancus/PipeGCN-style communication avoidance).

    ``exchange(..., refresh=True)`` does a real exchange and remembers both the halo rows it received and,
    once backward has run, the gradient its sent rows received back. ``refresh=False`` exchanges nothing:
    it appends the remembered halo rows, drops the gradient of the local halo rows and instead adds the
    remembered gradient to the sent rows of ``h_owned``. ``refresh=None`` asks ``bound`` (a
    ``bound.DriftBound``: refresh once the send rows drifted past it, or at the latest every K epochs).
    ``reused``: whether the last call read history."""

    def __init__(self, monitor=None, bound=None) -> None:
        self.rows: Tensor | None = None
        self.grad: Tensor | None = None
        self.monitor = monitor  # a staleness.StaleMonitor: drift of the remembered rows at each refresh
        self.bound = bound
        self.last_sent: Tensor | None = None  # with a bound: this rank's send rows as last exchanged
        self.age, self.reused = 0, False

    def exchange(self, comm: Communicator, view: LocalView, h_owned: Tensor, tag: str, refresh: bool | None) -> Tensor:
        if comm.world_size == 1:
            return h_owned
        self.age += 1
        if refresh is None:
            refresh = self.rows is None or self.bound.refresh(
                comm, h_owned.detach().index_select(0, view.send_idx), self.last_sent, self.age, h_owned.requires_grad)
        self.reused = not (refresh or self.rows is None)
        if not self.reused:
            self.age = 0
            sent = h_owned.index_select(0, view.send_idx)
            if sent.requires_grad:
                sent.register_hook(self._remember_grad)
            if self.bound is not None:
                self.last_sent = sent.detach()
            halo = all_to_all_autograd(comm, sent, view.send_counts, view.recv_counts, tag)
            if self.monitor is not None and self.rows is not None:
                self.monitor.drift(halo.detach(), self.rows)
            self.rows = halo.detach()
            return torch.cat([h_owned, halo], 0)
        if self.grad is not None and h_owned.requires_grad:
            h_owned = _AddGrad.apply(h_owned, view.send_idx, self.grad)
        return torch.cat([h_owned, self.rows], 0)

    def _remember_grad(self, grad: Tensor) -> None:
        self.grad = grad.detach().clone()
