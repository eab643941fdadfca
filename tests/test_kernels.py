"""The two aggregation kernels (DGL and torch.sparse CSR) agree, forward and backward, on directed graphs."""
import pytest
import torch

from graphpar.strategies.kernels import add_self_loops, gcn_weights, make_aggregator, mean_weights


@pytest.mark.parametrize("norm", ["gcn", "mean", "sum"])
def test_dgl_and_torch_kernels_agree(small_directed, norm):
    g = small_directed
    src, dst, n = g.src, g.dst, g.num_nodes
    if norm == "gcn":
        src, dst = add_self_loops(src, dst, n)
        w = gcn_weights(src, dst, n)
    else:
        w = mean_weights(src, dst, n) if norm == "mean" else torch.ones(src.numel())
    x = torch.randn(n, 7, generator=torch.Generator().manual_seed(0))
    outs, grads = [], []
    for backend in ("torch", "dgl"):
        xi = x.clone().requires_grad_(True)
        y = make_aggregator(src, dst, w, n, n, backend)(xi)
        (y * torch.arange(7.0)).sum().backward()
        outs.append(y.detach())
        grads.append(xi.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_bipartite_aggregation_and_transposed_backward():
    # 3 sources -> 2 destinations, directed: the backward must use the transpose.
    src, dst, w = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 0, 1, 0]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    x = torch.eye(3, requires_grad=True)
    agg = make_aggregator(src, dst, w, 3, 2, "torch")
    y = agg(x)
    dense = torch.tensor([[1.0, 2.0, 4.0], [0.0, 0.0, 3.0]])
    torch.testing.assert_close(y, dense)
    y.sum().backward()
    torch.testing.assert_close(x.grad, dense.t() @ torch.ones(2, 3))


def assert_within_sum_rounding(got: torch.Tensor, want: torch.Tensor, mat, seed: torch.Tensor) -> None:
    """``got`` and ``want`` are two float32 evaluations of A^T seed that sum in different orders (different
    kernels, or one kernel on different CPUs): each within the rounding bound of a float32 sum of its column's
    length L, |err| <= L * eps * sum(|a| |seed|), of the float64 product."""
    dense = torch.sparse_csr_tensor(mat.fwd.crow_indices().to(torch.int64), mat.fwd.col_indices().to(torch.int64),
                                    mat.fwd.values(), size=(seed.shape[0], got.shape[0])).to_dense().double()
    exact = dense.T @ seed.double()
    length = (dense != 0).sum(0).clamp(min=1).double().unsqueeze(1)
    bound = length * torch.finfo(torch.float32).eps * (dense.abs().T @ seed.double().abs()) + 1e-30
    for g in (got, want):
        assert bool(((g.double() - exact).abs() <= bound).all()), float(((g.double() - exact).abs() / bound).max())


@pytest.mark.parametrize("scipy_transpose", [False, True])
@pytest.mark.parametrize("int32", [False, True])
def test_split_matrix_equals_the_pair(scipy_transpose, int32):
    """``SplitCSR`` (owned and halo columns apart): forward equal to the stacked product up to rounding,
    backward the transposed pair's bits where the same kernel runs (MKL's CSR from int64 indices), within
    float32 sum rounding where another may (SciPy's CSC view, which differs from MKL's bits on AVX-512 CPUs;
    MKL's int32-index path); from int64 (``make_aggregator``) or int32 (``CSRMatrix.from_csr``) indices; no halo columns too."""
    from graphpar.strategies.kernels import CSRMatrix, SplitAggregator, SplitCSR
    gen = torch.Generator().manual_seed(0)
    for n_dst, n_own, n_halo, e in [(300, 300, 500, 6000), (40, 40, 0, 300), (50, 50, 7, 10)]:
        n_src = n_own + n_halo
        key = torch.unique(torch.randint(0, n_dst * n_src, (e,), generator=gen))
        dst, src = key // n_src, key % n_src
        agg = make_aggregator(src, dst, torch.rand(src.numel(), generator=gen), n_src, n_dst)
        mat = agg.matrix
        if int32:  # built without its transposed CSR where SciPy's product stands in for it
            mat = CSRMatrix.from_csr(mat.fwd.crow_indices(), mat.fwd.col_indices(), mat.fwd.values(), n_src,
                                     transpose=not scipy_transpose)
            assert (mat.bwd is None) == scipy_transpose
        split = SplitAggregator(SplitCSR(mat, n_own, scipy_transpose=scipy_transpose))
        assert (split.split.bwd_o is None) == scipy_transpose
        x = torch.randn(n_src, 16, generator=gen, requires_grad=True)
        seed = torch.randn(n_dst, 16, generator=gen)
        want, got = agg(x), split(x)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        g_want, = torch.autograd.grad((want * seed).sum(), x)
        g_got, = torch.autograd.grad((got * seed).sum(), x)
        if scipy_transpose or int32:  # another transposed kernel than the pair's (SciPy's, or MKL's on int32)
            assert_within_sum_rounding(g_got, g_want, mat, seed)
        else:
            assert torch.equal(g_got, g_want)  # the same kernel on the same CPU: the same bits


def test_split_matrix_without_transpose_needs_scipy():
    from graphpar.strategies.kernels import SCIPY_TRANSPOSE_MIN_NNZ, CSRMatrix, SplitCSR
    mat = CSRMatrix.from_csr(torch.tensor([0, 1, 2]), torch.tensor([0, 2]), torch.ones(2), 3, transpose=False)
    with pytest.raises(ValueError, match="SciPy"):
        SplitCSR(mat, 2, scipy_transpose=False)
    assert SplitCSR.keeps_pair(SCIPY_TRANSPOSE_MIN_NNZ - 1) and not SplitCSR.keeps_pair(SCIPY_TRANSPOSE_MIN_NNZ)
