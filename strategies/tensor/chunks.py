"""Chunked scheduling of the tensor-parallel aggregation: destination-vertex row blocks of the CSR.

    graphpar run --strategy tensor --dataset cora --workers 2 --tp-chunks 4     (or --memory-budget BYTES)

The normalised adjacency Â (rows = destinations) and its transpose (rows = sources, for backward)
are cut into K contiguous row blocks holding about nnz/K edges each; every rank uses the same cut
and processes blocks in the same order (no cross-rank dependency). Row r of ``Â @ x`` depends only
on CSR row r, so a chunked product equals the unchunked one row by row. With K > 1 the CSR stays in
host memory and only the block being multiplied (and the next one, prefetched) is on the device.
``model_peak_bytes`` is the analytic device footprint of the strategy's own tensors: dense
activations plus resident adjacency; ``choose_chunks`` picks the smallest K that fits a budget.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..kernels import CSRMatrix, sparse_mm

FLOAT_BYTES, INDEX_BYTES = 4, 8


@dataclass
class Block:
    """Rows [lo, hi) of a CSR matrix (host tensors; ``on(device)`` gives the sparse block there)."""

    lo: int
    hi: int
    crow: Tensor
    col: Tensor
    val: Tensor
    num_cols: int

    @property
    def nbytes(self) -> int:
        return block_bytes(self.hi - self.lo, int(self.col.numel()))

    def on(self, device: torch.device, non_blocking: bool = False) -> Tensor:
        return torch.sparse_csr_tensor(self.crow.to(device, non_blocking=non_blocking),
                                       self.col.to(device, non_blocking=non_blocking),
                                       self.val.to(device, non_blocking=non_blocking),
                                       size=(self.hi - self.lo, self.num_cols))


def block_bytes(rows: int, nnz: int) -> int:
    """Device bytes of a CSR block: row pointers + column indices (int64) + values (fp32)."""
    return (rows + 1) * INDEX_BYTES + nnz * (INDEX_BYTES + FLOAT_BYTES)


def chunk_bounds(crow: Tensor, chunks: int) -> list[int]:
    """Row boundaries of ``chunks`` contiguous blocks with about nnz/chunks edges each (no empty block)."""
    n, nnz = crow.numel() - 1, int(crow[-1])
    if chunks <= 1 or n <= 1:
        return [0, n]
    targets = torch.tensor([nnz * k / chunks for k in range(1, chunks)], dtype=torch.float64)
    cut = torch.searchsorted(crow.to(torch.float64), targets).clamp(1, n - 1).tolist()
    bounds = sorted({0, n, *cut})
    if len(bounds) - 1 < min(chunks, n):  # skewed degrees merged cuts: refill by row count
        bounds = sorted(set(bounds) | {n * k // chunks for k in range(1, chunks)})
    return bounds


def make_blocks(mat: Tensor, chunks: int) -> list[Block]:
    """Row blocks of a CSR tensor (views of its host arrays; row pointers rebased)."""
    crow, col, val = mat.crow_indices(), mat.col_indices(), mat.values()
    bounds = chunk_bounds(crow, chunks)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        s, e = int(crow[lo]), int(crow[hi])
        out.append(Block(lo, hi, crow[lo:hi + 1] - s, col[s:e], val[s:e], mat.shape[1]))
    return out


class ChunkedAdjacency:
    """Â and Âᵀ as K row blocks each; ``matmul`` streams blocks through the device in order."""

    def __init__(self, matrix: CSRMatrix, chunks: int, device: torch.device):
        self.device, self.shape, self.nnz = device, matrix.shape, matrix.nnz
        self.full_bytes = matrix.nbytes()
        self.blocks = {False: make_blocks(matrix.fwd, chunks), True: make_blocks(matrix.bwd, chunks)}
        self.chunks = max(len(self.blocks[False]), len(self.blocks[True]))
        self.resident = self.chunks == 1 or device.type == "cpu"
        if self.chunks == 1:  # one block each: keep the whole matrices on the device
            self.cached = {t: [b[0].on(device)] for t, b in self.blocks.items()}
        elif device.type == "cpu":
            self.cached = {t: [blk.on(device) for blk in b] for t, b in self.blocks.items()}
        else:
            for b in self.blocks.values():
                for blk in b:
                    blk.crow, blk.col, blk.val = blk.crow.pin_memory(), blk.col.pin_memory(), blk.val.pin_memory()
            self.cached = None
            self.copy_stream = torch.cuda.Stream(device)

    def max_block_bytes(self) -> int:
        return max(blk.nbytes for b in self.blocks.values() for blk in b)

    def adjacency_device_bytes(self) -> int:
        """Adjacency bytes a device holds at once: both whole matrices, or two streamed blocks."""
        return self.full_bytes if self.chunks == 1 else 2 * self.max_block_bytes()

    def iter_blocks(self, transpose: bool):
        """(lo, hi, sparse block on the device), prefetching block i+1 while block i is used."""
        blocks = self.blocks[transpose]
        if self.cached is not None:
            for blk, mat in zip(blocks, self.cached[transpose]):
                yield blk.lo, blk.hi, mat
            return
        stream = self.copy_stream
        with torch.cuda.stream(stream):
            nxt = blocks[0].on(self.device, non_blocking=True)
        for i, blk in enumerate(blocks):
            torch.cuda.current_stream(self.device).wait_stream(stream)
            cur = nxt
            if i + 1 < len(blocks):
                with torch.cuda.stream(stream):
                    nxt = blocks[i + 1].on(self.device, non_blocking=True)
            yield blk.lo, blk.hi, cur

    def matmul(self, x: Tensor, transpose: bool = False) -> Tensor:
        """``Â @ x`` (or ``Âᵀ @ x``), one row block at a time into a preallocated output."""
        if self.cached is not None and len(self.cached[transpose]) == 1:  # one block: its product is the output
            return sparse_mm(self.cached[transpose][0], x)
        out = x.new_empty((self.shape[1] if transpose else self.shape[0], x.shape[1]))
        for lo, hi, mat in self.iter_blocks(transpose):
            out[lo:hi] = sparse_mm(mat, x)
        return out


class ChunkedSpMM(torch.autograd.Function):
    """Differentiable chunked aggregation: forward ``Â x``, backward ``Âᵀ g`` (no symmetry assumed)."""

    @staticmethod
    def forward(ctx, x: Tensor, adj: ChunkedAdjacency) -> Tensor:
        ctx.adj = adj
        return adj.matmul(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.adj.matmul(grad.contiguous(), transpose=True), None


def adjacency_bytes_for(matrix: CSRMatrix, chunks: int) -> int:
    """Device adjacency bytes with ``chunks`` blocks (the model ``ChunkedAdjacency`` reports)."""
    if chunks <= 1:
        return matrix.nbytes()
    worst = 0
    for mat in (matrix.fwd, matrix.bwd):
        crow = mat.crow_indices()
        b = torch.tensor(chunk_bounds(crow, chunks))
        rows, nnz = b[1:] - b[:-1], crow[b[1:]] - crow[b[:-1]]
        worst = max(worst, int(((rows + 1) * INDEX_BYTES + nnz * (INDEX_BYTES + FLOAT_BYTES)).max()))
    return 2 * worst


def choose_chunks(matrix: CSRMatrix, dense_bytes: int, budget: int) -> int:
    """Smallest K whose dense + adjacency footprint fits ``budget``; None when even one-row blocks do not."""
    n = matrix.shape[0]
    if dense_bytes + adjacency_bytes_for(matrix, 1) <= budget:
        return 1
    if dense_bytes + adjacency_bytes_for(matrix, n) > budget:
        return None
    lo, hi = 2, n  # footprint shrinks (nearly) monotonically with K: binary search, then confirm
    while lo < hi:
        mid = (lo + hi) // 2
        if dense_bytes + adjacency_bytes_for(matrix, mid) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return lo


def minimum_budget(matrix: CSRMatrix, dense_bytes: int) -> int:
    """The smallest budget any K can meet: dense tensors + two one-row blocks of the heaviest row."""
    return dense_bytes + adjacency_bytes_for(matrix, matrix.shape[0])
