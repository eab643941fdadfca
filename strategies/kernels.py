"""The aggregation seam: ``out[d] = sum over in-edges (s -> d) of w_e * x[s]``, two implementations.

    agg = make_aggregator(src, dst, w, num_src, num_dst, backend="torch"); y = agg(x)

- ``torch``: a CSR ``torch.sparse`` SpMM (MKL on CPU, cuSPARSE on CUDA) with an explicit backward
  that multiplies by the *transposed* CSR, so directed graphs are handled exactly. Needs no DGL.
- ``dgl``: DGL's ``u_mul_e_sum`` message passing on a (bipartite) DGLGraph; DGL is imported lazily.
Tests prove the two agree. Edge weights come from ``gcn_weights``/``mean_weights`` computed on the
*global* graph, so a partition's local aggregation reproduces the full-graph normalisation.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor

from .phases import phase, time_backward

Aggregator = Callable[[Tensor], Tensor]
BACKENDS = ("torch", "dgl")
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def add_self_loops(src: Tensor, dst: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Append one self-loop per vertex (graphs are stored without them)."""
    loop = torch.arange(num_nodes, dtype=src.dtype)
    return torch.cat([src, loop]), torch.cat([dst, loop])


def gcn_weights(src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """DGL GraphConv norm='both': w = outdeg(src)^-1/2 * indeg(dst)^-1/2, degrees clamped to >= 1."""
    out_deg = torch.bincount(src, minlength=num_nodes).clamp(min=1).to(torch.float32)
    in_deg = torch.bincount(dst, minlength=num_nodes).clamp(min=1).to(torch.float32)
    return out_deg.pow(-0.5)[src] * in_deg.pow(-0.5)[dst]


def mean_weights(src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
    """Mean over in-neighbours (SAGEConv 'mean'): w = 1 / indeg(dst); no in-edges gives zero."""
    in_deg = torch.bincount(dst, minlength=num_nodes).clamp(min=1).to(torch.float32)
    return in_deg.reciprocal()[dst]


def default_backend() -> str:
    """``dgl`` when importable (METIS and the reference's own layers need it), else ``torch``."""
    try:
        import dgl  # noqa: F401, PLC0415
        return "dgl"
    except Exception:  # noqa: BLE001  (no DGL build for this torch)
        return "torch"


# The fastest backend per device, measured by ``make bench-kernels`` (README "Performance": on this CPU
# torch.sparse CSR beats DGL's gspmm 3-5x in CPU seconds at widths 16-256; on CUDA the torch path is the seam
# that needs no DGL build). Every strategy and the reference resolve ``--kernel auto`` through here, so a
# speedup is parallelism, not a kernel difference.
FASTEST = {"cpu": "torch", "cuda": "torch"}


def resolve_kernel(kernel: str, device: torch.device | str = "cpu") -> str:
    """The backend a run aggregates with: ``kernel`` itself, or for ``auto`` the fastest on ``device``."""
    if kernel != "auto":
        return kernel
    return FASTEST.get(torch.device(device).type, "torch")


class CSRMatrix:
    """A weighted [num_dst x num_src] matrix in CSR and its transpose, both built once. ``dst_sorted``: the
    edges come grouped by dst in ascending order, so the forward CSR takes them as they are (no sort) and the
    transpose needs only a stable sort by src."""

    def __init__(self, src: Tensor, dst: Tensor, weight: Tensor, num_src: int, num_dst: int,
                 device: torch.device | str = "cpu", dst_sorted: bool = False):
        self.shape = (num_dst, num_src)
        self.nnz = int(src.numel())
        self.fwd = _csr(dst, src, weight, num_dst, num_src, device, "none" if dst_sorted else "key")
        self.bwd = _csr(src, dst, weight, num_src, num_dst, device, "rows" if dst_sorted else "key")

    @classmethod
    def from_csr(cls, crow: Tensor, col: Tensor, vals: Tensor, num_src: int,
                 device: torch.device | str = "cpu", transpose: bool = True) -> "CSRMatrix":
        """The matrix from its forward CSR as built already (``crow`` [num_dst + 1], ``col`` ascending
        within a row, ``vals`` float32), with int32 indices where every count fits; the transpose by a
        stable counting sort of the columns (``_transpose``), so within a source row the destinations stay
        ascending: the same two CSRs, bit for bit, as ``CSRMatrix(src, dst, w, ...)`` builds from those
        triplets. No COO is made. ``transpose=False``: no transposed CSR (``bwd`` is None; for a ``SplitCSR``
        that multiplies by the transpose without it, ``SplitCSR.keeps_pair``)."""
        self = cls.__new__(cls)
        num_dst, nnz = crow.numel() - 1, col.numel()
        idx = torch.int32 if max(nnz, num_src, num_dst) < 2**31 else torch.int64
        self.shape, self.nnz = (num_dst, num_src), int(nnz)
        col, vals = col.to(idx), vals.to(torch.float32)
        self.fwd = torch.sparse_csr_tensor(crow.to(idx), col, vals, size=(num_dst, num_src)).to(device)
        self.bwd = None
        if transpose:
            t_crow, t_col, t_vals = _transpose(crow.to(torch.int64), col, vals, num_src)
            self.bwd = torch.sparse_csr_tensor(t_crow.to(idx), t_col, t_vals, size=(num_src, num_dst)).to(device)
        return self

    def edges(self) -> tuple[Tensor, Tensor]:
        """(src, dst) int64 of the forward CSR's entries, in its order (grouped by dst)."""
        crow, col = self.fwd.crow_indices(), self.fwd.col_indices()
        dst = torch.repeat_interleave(torch.arange(self.shape[0], device=crow.device), (crow[1:] - crow[:-1]).long())
        return col.long(), dst

    def nbytes(self) -> int:
        """Bytes of both CSR copies (index + values), for memory accounting."""
        return sum(t.numel() * t.element_size() for m in (self.fwd, self.bwd) if m is not None
                   for t in (m.crow_indices(), m.col_indices(), m.values()))


def _csr(rows: Tensor, cols: Tensor, vals: Tensor, n_rows: int, n_cols: int, device, sort: str = "key") -> Tensor:
    """CSR of the (rows, cols, vals) triplets; ``sort``: "key" orders by (row, col), "rows" by row keeping
    the input order within a row (stable), "none" takes triplets already grouped by row as they are."""
    if sort != "none":
        if sort == "key":
            order = torch.argsort(rows * max(n_cols, 1) + cols)
        else:  # int32 keys sort 2-4x faster on CPU
            order = torch.sort(rows.to(torch.int32) if n_rows < 2**31 else rows, stable=True)[1]
        rows, cols, vals = rows[order], cols[order], vals[order]
    vals = vals.to(torch.float32)
    crow = torch.zeros(n_rows + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n_rows), 0)
    return torch.sparse_csr_tensor(crow, cols, vals, size=(n_rows, n_cols)).to(device)


def _transpose(crow: Tensor, col: Tensor, vals: Tensor, num_src: int, chunk: int = 1 << 21) -> tuple[Tensor, Tensor, Tensor]:
    """The transposed CSR (crow int64, col and vals in ``col``'s / ``vals``' dtypes) of a CSR whose rows are
    taken ``chunk`` entries at a time: each block's entries are stably sorted by column and placed after
    the earlier blocks' entries of their column, so every column lists its rows ascending (a stable sort
    of all columns, done in blocks: a whole-array ``torch.sort`` of 16M int32 keys takes 6x their bytes)."""
    num_dst, nnz = crow.numel() - 1, col.numel()
    t_crow = torch.zeros(num_src + 1, dtype=torch.int64)
    t_crow[1:] = torch.cumsum(torch.bincount(col, minlength=num_src), 0)
    nxt = t_crow[:-1].clone()  # the next free place of every column
    t_col, t_vals = torch.empty(nnz, dtype=col.dtype), torch.empty(nnz, dtype=vals.dtype)
    bounds = torch.unique(torch.searchsorted(crow, torch.arange(0, nnz + chunk, chunk).clamp(max=nnz)).clamp(max=num_dst))
    bounds = torch.cat([torch.zeros(1, dtype=torch.int64), bounds, torch.full((1,), num_dst)]).unique().tolist()
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        lo, hi = int(crow[r0]), int(crow[r1])
        if hi == lo:
            continue
        c = col[lo:hi]
        order = torch.argsort(c, stable=True)
        cs = c[order].long()
        first = torch.ones(cs.numel(), dtype=torch.bool)
        first[1:] = cs[1:] != cs[:-1]
        start = torch.nonzero(first).flatten()
        run = torch.diff(start, append=torch.tensor([cs.numel()]))
        pos = nxt[cs] + torch.arange(cs.numel()) - torch.repeat_interleave(start, run)
        rows = torch.repeat_interleave(torch.arange(r0, r1, dtype=col.dtype), crow[r0 + 1:r1 + 1] - crow[r0:r1])
        t_col[pos] = rows[order]
        t_vals[pos] = vals[lo:hi][order]
        nxt += torch.bincount(c, minlength=num_src)
    return t_crow, t_col, t_vals


def sparse_mm(mat: Tensor, x: Tensor, acc: Tensor | None = None) -> Tensor:
    """``mat @ x`` timed as the ``aggregation`` phase (every strategy's SpMM goes through here). On CPU, for a
    CSR matrix and a row-major float32 ``x`` outside autograd, the product is written straight into an
    uninitialised output (``addmm`` with beta=0 ignores it): ``torch.sparse.mm`` zero-fills its output and
    keeps a second copy of it while it runs (measured: 2x the output's bytes at its peak, and slower); the
    numbers are the same bits. ``acc``: the product is added onto this [rows, d] tensor in place (``addmm``
    with beta=1 on CPU: no temporary product) and returned."""
    with phase("aggregation"):
        fast = (x.device.type == "cpu" and mat.layout == torch.sparse_csr and x.dtype == torch.float32
                and x.dim() == 2 and x.is_contiguous() and not (torch.is_grad_enabled() and x.requires_grad))
        if acc is not None:
            if fast and acc.dtype == x.dtype and acc.is_contiguous() and not acc.requires_grad:
                return torch.addmm(acc, mat, x, out=acc)
            return acc.add_(torch.sparse.mm(mat, x))
        if fast:
            out = torch.empty(mat.shape[0], x.shape[1], dtype=x.dtype)
            return torch.addmm(out, mat, x, beta=0, out=out)
        return torch.sparse.mm(mat, x)


class _SpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, mat: CSRMatrix) -> Tensor:
        ctx.mat = mat
        return sparse_mm(mat.fwd, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return sparse_mm(ctx.mat.bwd, grad.contiguous()), None


def spmm(mat: CSRMatrix, x: Tensor) -> Tensor:
    """``mat @ x`` with the transposed CSR in backward (no symmetry assumed)."""
    if x.shape[0] != mat.shape[1]:
        raise ValueError(f"spmm: matrix {mat.shape} cannot take {tuple(x.shape)}")
    return _SpMM.apply(x, mat)


# A SplitCSR of this many entries or more drops its transposed pair (8 bytes an entry: 32 MiB here) for SciPy's
# slower transposed product; below it the pair's bytes matter less than the product's CPU (CI's graphs).
SCIPY_TRANSPOSE_MIN_NNZ = 1 << 22


class SplitCSR:
    """A ``CSRMatrix`` [num_dst x num_src] with its columns split at ``num_own``: ``A = [A_o | A_h]``, so
    ``A @ [x_o; x_h] = A_o @ x_o + A_h @ x_h`` is computed without the stacked [x_o; x_h] rows (a partition
    rank's owned rows and its halo rows, ``partitioning.halo.halo_aggregate``). Forward: ``fwd_o`` and ``fwd_h``,
    two CSRs holding between them the forward CSR's entries (each row's columns below ``num_own`` come first
    in it, ascending, so each keeps its order). The forward adds the halo columns' sum onto the owned
    columns' sum (a different rounding from one sum per row over both).

    Backward (``mul_t_own``/``mul_t_halo``: ``A_o^T g``, ``A_h^T g``): on CPU with SciPy, for a matrix of at
    least ``SCIPY_TRANSPOSE_MIN_NNZ`` entries, the forward CSRs read as CSC (SciPy's ``csc_matvecs``, no copy:
    every output row sums its entries in the transposed CSR's order, and gave its bits on every graph tried),
    so no transposed pair is kept: 0.12 GiB less per rmat-products P=4 rank, at ~1.8x the CPU of MKL's
    product on the transposed CSR (0.86 vs 0.48 s for 16M entries at width 16). Smaller matrices, and other
    devices, keep the transposed CSR's first ``num_own`` rows and the rest, views of its arrays."""

    @staticmethod
    def keeps_pair(nnz: int, device: torch.device | str = "cpu") -> bool:
        """Whether a SplitCSR of ``nnz`` entries on ``device`` keeps the transposed pair (else SciPy's product)."""
        return not (torch.device(device).type == "cpu" and nnz >= SCIPY_TRANSPOSE_MIN_NNZ and _has_scipy())

    def __init__(self, mat: CSRMatrix, num_own: int, scipy_transpose: bool | None = None):
        num_dst, num_src = mat.shape
        self.shape, self.num_own, self.nnz = mat.shape, int(num_own), mat.nnz
        crow, col, vals = mat.fwd.crow_indices(), mat.fwd.col_indices(), mat.fwd.values()
        own = col < num_own
        before = torch.zeros(col.numel() + 1, dtype=torch.int64 if col.numel() >= 2**31 else torch.int32,
                             device=col.device)
        torch.cumsum(own, 0, dtype=before.dtype, out=before[1:])  # owned entries before each place
        crow_o = before.index_select(0, crow.long()).to(crow.dtype)
        del before
        self.fwd_o = torch.sparse_csr_tensor(crow_o, col[own], vals[own], size=(num_dst, num_own))
        own.logical_not_()
        self.fwd_h = torch.sparse_csr_tensor(crow - crow_o, col[own].sub_(num_own), vals[own],
                                             size=(num_dst, num_src - num_own))
        del own
        if scipy_transpose is None:
            scipy_transpose = vals.dtype == torch.float32 and not self.keeps_pair(self.nnz, crow.device)
        if mat.bwd is None and not scipy_transpose:
            raise ValueError("SplitCSR: a matrix without its transposed CSR needs SciPy's transposed product")
        self.t_own = self.t_halo = self.bwd_o = self.bwd_h = None
        if scipy_transpose:
            import scipy.sparse as sp  # noqa: PLC0415  (DGL's dependency; optional here)
            self.t_own, self.t_halo = (
                sp.csr_matrix((m.values().numpy(), m.col_indices().numpy(), m.crow_indices().numpy()),
                              shape=m.shape, copy=False).T for m in (self.fwd_o, self.fwd_h))
            return
        bcrow, bcol, bvals = mat.bwd.crow_indices(), mat.bwd.col_indices(), mat.bwd.values()
        e_o = int(bcrow[num_own])
        self.bwd_o = torch.sparse_csr_tensor(bcrow[:num_own + 1], bcol[:e_o], bvals[:e_o], size=(num_own, num_dst))
        self.bwd_h = torch.sparse_csr_tensor(bcrow[num_own:] - e_o, bcol[e_o:], bvals[e_o:],
                                             size=(num_src - num_own, num_dst))

    def forward(self, x_o: Tensor, x_h: Tensor) -> Tensor:
        """``A_o @ x_o + A_h @ x_h`` (outside autograd), the halo product added in place."""
        out = sparse_mm(self.fwd_o, x_o)
        return sparse_mm(self.fwd_h, x_h, acc=out) if self.fwd_h.shape[1] else out

    def mul_t_own(self, grad: Tensor) -> Tensor:
        """``A_o^T @ grad`` ([num_own, d]), ``grad`` contiguous [num_dst, d]."""
        return _mul_t(self.t_own, self.bwd_o, grad)

    def mul_t_halo(self, grad: Tensor) -> Tensor:
        """``A_h^T @ grad`` ([num_src - num_own, d])."""
        return _mul_t(self.t_halo, self.bwd_h, grad)

    def nbytes(self) -> int:
        """Bytes of the CSRs kept (the backward pair's arrays counted once, where it is kept)."""
        fwd = sum(t.numel() * t.element_size() for m in (self.fwd_o, self.fwd_h)
                  for t in (m.crow_indices(), m.col_indices(), m.values()))
        if self.bwd_o is None:
            return fwd
        bwd = self.bwd_o.crow_indices()
        return fwd + (bwd.numel() + self.bwd_h.crow_indices().numel()) * bwd.element_size() + self.nnz * (
            self.bwd_o.col_indices().element_size() + self.bwd_o.values().element_size())


def _has_scipy() -> bool:
    try:
        import scipy.sparse  # noqa: F401, PLC0415
        return True
    except ImportError:
        return False


def _mul_t(t_csc, bwd: Tensor | None, grad: Tensor) -> Tensor:
    """A transposed product: SciPy's CSC view of a forward CSR (``t_csc``), else the transposed CSR ``bwd``."""
    if t_csc is None:
        return sparse_mm(bwd, grad)
    with phase("aggregation"):
        return torch.from_numpy(t_csc @ grad.numpy())


class _SplitSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, mat: SplitCSR) -> Tensor:
        ctx.mat = mat
        n_o = mat.num_own
        return mat.forward(x[:n_o].contiguous(), x[n_o:].contiguous())

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad, mat = grad.contiguous(), ctx.mat
        return torch.cat([mat.mul_t_own(grad), mat.mul_t_halo(grad)]), None


class SplitAggregator:
    """``agg(x) = A @ x`` over a ``SplitCSR`` for stacked [owned; halo] rows ``x`` (what a stale halo gives);
    ``agg.split`` is the matrix ``halo_aggregate`` multiplies without stacking."""

    def __init__(self, split: SplitCSR):
        self.split = split

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[0] != self.split.shape[1]:
            raise ValueError(f"spmm: matrix {self.split.shape} cannot take {tuple(x.shape)}")
        return _SplitSpMM.apply(x, self.split)


class MatrixAggregator:
    """``agg(x) = mat @ x`` (torch backend) over a ``CSRMatrix``; ``agg.edges`` (what gat reads) is built from
    the CSR on first read, so gcn/sage keep no edge list beside the matrix."""

    def __init__(self, mat: CSRMatrix):
        self.matrix = mat
        self._edges: tuple | None = None

    def __call__(self, x: Tensor) -> Tensor:
        return spmm(self.matrix, x)

    @property
    def edges(self) -> tuple[Tensor, Tensor, int, int]:
        if self._edges is None:
            self._edges = (*self.matrix.edges(), self.matrix.shape[1], self.matrix.shape[0])
        return self._edges


def make_aggregator(src: Tensor, dst: Tensor, weight: Tensor, num_src: int, num_dst: int,
                    backend: str = "torch", device: torch.device | str = "cpu", dst_sorted: bool = False) -> Aggregator:
    """An aggregation function over the bipartite edge list (src in [0,num_src), dst in [0,num_dst));
    ``dst_sorted``: the edges are grouped by dst in ascending order (``CSRMatrix`` skips a sort)."""
    if backend == "torch":
        mat = CSRMatrix(src, dst, weight, num_src, num_dst, device, dst_sorted)
        agg = lambda x: spmm(mat, x)
        agg.matrix = mat
        agg.edges = (src.to(device), dst.to(device), num_src, num_dst)  # what attention (gat) reads
        return agg
    if backend == "dgl":
        import dgl  # noqa: PLC0415

        g = dgl.heterograph({("u", "e", "v"): (src, dst)}, {"u": num_src, "v": num_dst}).to(device)
        w = weight.to(torch.float32).to(device).unsqueeze(-1)

        def agg_dgl(x: Tensor) -> Tensor:
            with phase("aggregation"):
                return time_backward(dgl.ops.u_mul_e_sum(g, x, w), "aggregation")
        agg_dgl.edges = (src.to(device), dst.to(device), num_src, num_dst)
        return agg_dgl
    raise ValueError(f"unknown kernel backend {backend!r}; choose one of {', '.join(BACKENDS)}")
