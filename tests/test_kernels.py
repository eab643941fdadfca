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
