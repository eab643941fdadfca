"""Vertex-split <-> feature-split layouts of the tensor-parallel strategy, and their all-to-alls.

    pytest tests/test_tensor.py -k layout

Vertex-split: rank r owns rows V_r = [row_start[r], row_start[r+1]) at full width (NN operations).
Feature-split: rank r owns every row at columns [col_start[r], col_start[r+1]) (aggregation).
Both use balanced contiguous blocks (sizes differ by at most one), so N or a width not divisible by
P works with no padding. A conversion is one ``comm.all_to_all`` over a *flat* buffer (one element
per "row"): blocks of different widths then travel in one call and the communicator counts exactly
the elements that leave a rank, nothing padded. ``split``/``gather`` are differentiable and each
one's backward is the other (``all_to_all_autograd`` sends the gradient back the reverse way).
On a one-rank world every conversion is the identity: no packing, no copy, no call.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..comm import Communicator, PendingOp, all_to_all_autograd
from ..phases import phase


def balanced_bounds(total: int, parts: int) -> list[int]:
    """Start offsets of ``parts`` contiguous blocks covering [0, total), first ``total % parts`` one larger."""
    base, extra = divmod(total, parts)
    bounds = [0]
    for r in range(parts):
        bounds.append(bounds[-1] + base + (r < extra))
    return bounds


@dataclass(frozen=True)
class Layout:
    """Row blocks of N vertices over P ranks; column slices are computed per width."""

    num_nodes: int
    world_size: int
    rank: int

    @property
    def rows(self) -> list[int]:
        return balanced_bounds(self.num_nodes, self.world_size)

    def row_range(self, r: int | None = None) -> tuple[int, int]:
        r = self.rank if r is None else r
        b = self.rows
        return b[r], b[r + 1]

    def row_count(self, r: int | None = None) -> int:
        a, b = self.row_range(r)
        return b - a

    def cols(self, width: int) -> list[int]:
        return balanced_bounds(width, self.world_size)

    def col_range(self, width: int, r: int | None = None) -> tuple[int, int]:
        r = self.rank if r is None else r
        c = self.cols(width)
        return c[r], c[r + 1]

    def col_count(self, width: int, r: int | None = None) -> int:
        a, b = self.col_range(width, r)
        return b - a

    # -- element counts of one conversion (split and gather move the same elements) ----------
    def split_sizes(self, width: int) -> tuple[list[int], list[int]]:
        """(send, recv) element counts per peer for vertex -> feature at this width."""
        n_me, w_me, P = self.row_count(), self.col_count(width), self.world_size
        return ([n_me * self.col_count(width, q) for q in range(P)],
                [self.row_count(q) * w_me for q in range(P)])

    def chunk_gather_sizes(self, width: int, lo: int, hi: int) -> tuple[list[int], list[int]]:
        """(send, recv) element counts for feature -> vertex of the rows [lo, hi) only."""
        w_me, P = self.col_count(width), self.world_size
        mine = _overlap(self.row_range(), lo, hi)
        return ([_overlap(self.row_range(q), lo, hi) * w_me for q in range(P)],
                [mine * self.col_count(width, q) for q in range(P)])

    def offrank_elements(self, width: int, r: int) -> int:
        """Elements rank r sends off-rank in one split of this width (= what it receives in a gather)."""
        return self.row_count(r) * (width - self.col_count(width, r))


def _overlap(rng: tuple[int, int], lo: int, hi: int) -> int:
    return max(0, min(rng[1], hi) - max(rng[0], lo))


# -- packing (pure tensor ops, so autograd differentiates them) ----------------------------------
def pack_split(layout: Layout, rows: Tensor) -> Tensor:
    """Owned rows [n_r, W] -> flat buffer: column block of peer 0, then peer 1, ... (each row-major)."""
    c = layout.cols(rows.shape[1])
    with phase("layout"):
        return torch.cat([rows[:, c[q]:c[q + 1]].reshape(-1) for q in range(layout.world_size)])


def unpack_split(layout: Layout, flat: Tensor, width: int) -> Tensor:
    """Received blocks arrive in rank order = row order: the flat buffer *is* the [N, w_r] slice."""
    return flat.view(layout.num_nodes, layout.col_count(width))


def unpack_gather(layout: Layout, flat: Tensor, width: int, n_rows: int) -> Tensor:
    """Pieces [n_rows, w_q] from each peer q, concatenated along the columns -> [n_rows, W]."""
    if layout.world_size == 1:  # one piece: the rows themselves, no packing
        return flat.view(n_rows, width)
    sizes = [n_rows * layout.col_count(width, q) for q in range(layout.world_size)]
    with phase("layout"):
        pieces = torch.split(flat, sizes)
        return torch.cat([p.view(n_rows, -1) for p in pieces], dim=1)


# -- conversions ------------------------------------------------------------------------------------
def split_raw(comm: Communicator, layout: Layout, rows: Tensor, tag: str) -> Tensor:
    """Vertex -> feature layout, no autograd (used inside custom autograd functions)."""
    if layout.world_size == 1:  # owned rows = every row, every column: nothing to convert
        return rows
    width = rows.shape[1]
    send, recv = layout.split_sizes(width)
    return unpack_split(layout, comm.all_to_all(pack_split(layout, rows), send, recv, tag), width)


def gather_chunk_async(comm: Communicator, layout: Layout, sliced: Tensor, width: int, lo: int, hi: int,
                       tag: str) -> PendingOp:
    """Start feature -> vertex of rows [lo, hi) (``sliced`` holds exactly those rows of this rank's slice)."""
    send, recv = layout.chunk_gather_sizes(width, lo, hi)
    return comm.all_to_all(sliced.reshape(-1), send, recv, tag, async_op=True)


def finish_gather_chunk(layout: Layout, pending: PendingOp, out: Tensor, lo: int, hi: int) -> None:
    """Wait for a chunk gather and write its full-width rows into ``out`` (this rank's owned rows)."""
    flat = pending.wait()
    a, b = layout.row_range()
    lo_, hi_ = max(a, lo), min(b, hi)
    if hi_ > lo_:
        out[lo_ - a:hi_ - a] = unpack_gather(layout, flat, out.shape[1], hi_ - lo_)


def split(comm: Communicator, layout: Layout, rows: Tensor, tag: str) -> Tensor:
    """Differentiable vertex -> feature: [n_r, W] -> [N, w_r]; backward is a gather (tag/bwd)."""
    if layout.world_size == 1:
        return rows
    width = rows.shape[1]
    send, recv = layout.split_sizes(width)
    flat = all_to_all_autograd(comm, pack_split(layout, rows), send, recv, tag)
    return unpack_split(layout, flat, width)


def gather(comm: Communicator, layout: Layout, sliced: Tensor, width: int, tag: str) -> Tensor:
    """Differentiable feature -> vertex: [N, w_r] -> [n_r, W]; backward is a split (tag/bwd)."""
    if layout.world_size == 1:
        return sliced
    recv, send = layout.split_sizes(width)  # the reverse of a split
    flat = all_to_all_autograd(comm, sliced.reshape(-1), send, recv, tag)
    return unpack_gather(layout, flat, width, layout.row_count())
