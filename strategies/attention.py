"""Graph attention (``gat``): DGL GATConv's layer math in plain torch, cut where strategies communicate.

    graphpar check --strategy single --dataset cora --model gat --heads 4     (the twin vs dgl.nn.GATConv)

One layer i, heads H, head width D (hidden layers: D = width / H, heads concatenated; the output layer:
D = classes, ``out_heads`` heads averaged), on the in-edges s -> d of the graph with one self-loop per
vertex (as for gcn):

    z = h W^T                      ``project``  [n, H*D]   (fc.weight, no bias)
    el = <z_h, a_l>, er = <z_h, a_r>  ``logits``  [n, H]    (attn_l, attn_r; a column slice gives partial sums)
    alpha = softmax_d(LeakyReLU_0.2(el[s] + er[d]))   ``edge_softmax``  [E, H]  (max-shifted, per destination)
    out[d] = sum_s alpha * z[s]       ``attend``  [n_dst, H*D] (or any column slice of it)
    out + bias, then concat (hidden) or mean over heads (output)   ``finish``

No attention or feature dropout inside the layer (the model's dropout on the layer input still applies).
Each piece is a function of tensors, so ``partition`` exchanges (z, el) of halo vertices between
``project`` and ``attend``, and ``tensor`` all-reduces the partial (el, er) of its column slice. Pure torch
(segment max by ``scatter_reduce``, sums by ``index_add``): GPU machines need no DGL.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .phases import phase

NEGATIVE_SLOPE = 0.2


def param_names(i: int) -> list[str]:
    """Layer i's parameters in dgl.nn.GATConv's names."""
    return [f"layers.{i}.fc.weight", f"layers.{i}.attn_l", f"layers.{i}.attn_r", f"layers.{i}.bias"]


def layer_shape(dims: tuple[int, ...], heads: int, out_heads: int, i: int) -> tuple[int, int]:
    """(heads, head width) of layer i: hidden layers split their width over ``heads``, the output layer has
    ``out_heads`` heads of the full class width (averaged)."""
    if i == len(dims) - 2:
        return out_heads, dims[-1]
    return heads, dims[i + 1] // heads


def init_layer(params: dict, i: int, fan_in: int, heads: int, width: int, glorot) -> None:
    """Seeded Glorot-uniform fc and attention vectors (ReLU gain, GATConv's choice), zero bias."""
    gain = torch.nn.init.calculate_gain("relu")
    params[f"layers.{i}.fc.weight"] = glorot(fan_in, heads * width, (heads * width, fan_in), gain)
    params[f"layers.{i}.attn_l"] = glorot(heads * width, width, (1, heads, width), gain)
    params[f"layers.{i}.attn_r"] = glorot(heads * width, width, (1, heads, width), gain)
    params[f"layers.{i}.bias"] = torch.zeros(heads * width)


def project(params: dict[str, Tensor], i: int, h: Tensor) -> Tensor:
    """z = h W^T: [n, H*D]."""
    return F.linear(h, params[f"layers.{i}.fc.weight"])


def column_heads(heads: int, width: int, lo: int = 0, hi: int | None = None, device=None) -> Tensor:
    """The head of each column in [lo, hi) of an [n, H*D] tensor."""
    hi = heads * width if hi is None else hi
    return torch.arange(lo, hi, device=device) // width


def logits(params: dict[str, Tensor], i: int, z: Tensor, lo: int = 0, hi: int | None = None) -> tuple[Tensor, Tensor]:
    """(el, er) [n, H] of projected rows ``z``; for a column slice [lo, hi) of the full [n, H*D] rows, the
    partial sums over those columns (summing every slice's partials gives the full logits)."""
    a_l, a_r = params[f"layers.{i}.attn_l"], params[f"layers.{i}.attn_r"]
    heads, width = a_l.shape[1], a_l.shape[2]
    if lo == 0 and (hi is None or hi == heads * width):  # GATConv's own op order
        zv = z.view(z.shape[0], heads, width)
        return (zv * a_l).sum(-1), (zv * a_r).sum(-1)
    col = column_heads(heads, width, lo, hi, z.device)
    out = []
    for a in (a_l, a_r):
        part = z * a.reshape(-1)[lo:hi]
        out.append(part.new_zeros(z.shape[0], heads).index_add(1, col, part))
    return out[0], out[1]


def edge_softmax(src: Tensor, dst: Tensor, num_dst: int, el: Tensor, er: Tensor) -> Tensor:
    """alpha [E, H]: LeakyReLU(el[src] + er[dst]) normalised over each destination's in-edges."""
    e = F.leaky_relu(el.index_select(0, src) + er.index_select(0, dst), NEGATIVE_SLOPE)
    idx = dst.unsqueeze(1).expand_as(e)
    top = e.new_full((num_dst, e.shape[1]), float("-inf")).scatter_reduce(0, idx, e.detach(), "amax")
    ex = (e - top.index_select(0, dst)).exp()
    total = ex.new_zeros(num_dst, e.shape[1]).index_add(0, dst, ex)
    return ex / total.index_select(0, dst)


class _Attend(torch.autograd.Function):
    """out[d] = sum over edges s->d of alpha[e, head(col)] * z[s, col]; backward without keeping the
    [E, C] messages (they are rebuilt from z, alpha and the gradient)."""

    @staticmethod
    def forward(ctx, z: Tensor, alpha: Tensor, src: Tensor, dst: Tensor, num_dst: int, col: Tensor):
        ctx.save_for_backward(z, alpha, src, dst, col)
        with phase("aggregation"):
            msg = z.index_select(0, src) * alpha.index_select(1, col)
            return z.new_zeros(num_dst, z.shape[1]).index_add_(0, dst, msg)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, alpha, src, dst, col = ctx.saved_tensors
        with phase("aggregation"):
            g_dst = grad.index_select(0, dst)
            g_z = torch.zeros_like(z).index_add_(0, src, g_dst * alpha.index_select(1, col))
            g_alpha = alpha.new_zeros(alpha.shape).index_add_(1, col, g_dst * z.index_select(0, src))
        return g_z, g_alpha, None, None, None, None


def attend(src: Tensor, dst: Tensor, num_dst: int, z: Tensor, alpha: Tensor, col: Tensor) -> Tensor:
    """Attention-weighted sum of the source rows ``z`` ([n_src, C], columns of heads ``col``) into [num_dst, C]."""
    return _Attend.apply(z, alpha, src, dst, num_dst, col)


def finish(params: dict[str, Tensor], i: int, out: Tensor, last: bool) -> Tensor:
    """+ bias; heads concatenated (hidden layers) or averaged (output layer)."""
    out = out + params[f"layers.{i}.bias"]
    if not last:
        return out
    heads = params[f"layers.{i}.attn_l"].shape[1]
    return out.view(out.shape[0], heads, -1).mean(1)


def aggregate_layer(params: dict[str, Tensor], i: int, last: bool, edges, z_src: Tensor, el_src: Tensor,
                    er_dst: Tensor) -> Tensor:
    """The layer after projection: softmax over each destination's in-edges ``(src, dst, num_src, num_dst)``
    and the attention sum of the projected source rows, + bias, heads concatenated or averaged."""
    src, dst, _, num_dst = edges
    heads, width = params[f"layers.{i}.attn_l"].shape[1:]
    alpha = edge_softmax(src, dst, num_dst, el_src, er_dst[:num_dst])
    out = attend(src, dst, num_dst, z_src, alpha, column_heads(heads, width, device=z_src.device))
    return finish(params, i, out, last)


def gat_layer(params: dict[str, Tensor], i: int, last: bool, edges, h_src: Tensor,
              h_dst: Tensor | None = None) -> Tensor:
    """The whole layer on one worker's edges ``(src, dst, num_src, num_dst)``: destination rows are the
    first ``num_dst`` rows of ``h_src`` unless ``h_dst`` gives them (their gradient then flows there)."""
    z = project(params, i, h_src)
    el, er = logits(params, i, z)
    if h_dst is not None and h_dst is not h_src:
        er = logits(params, i, project(params, i, h_dst))[1]
    return aggregate_layer(params, i, last, edges, z, el, er)


def exchanged_width(heads: int, width: int) -> int:
    """Columns of one vertex's row in a gat halo exchange: its projected row (H*D) and its el (H)."""
    return heads * width + heads
