"""The GPU path: cuSPARSE CSR aggregation, tensors on the rank's device, NCCL or gloo with CUDA tensors.

    .venv/bin/python -m pytest -q tests/test_cuda.py      # GPU tests skip cleanly where there is no GPU

The backend choice is tested everywhere (no GPU needed); everything else needs ``torch.cuda``.
On one GPU with P > 1 the ranks share it, NCCL refuses that, so the launcher picks gloo with CUDA
tensors (gloo's send/recv are staged through host memory by the communicator).
"""
from __future__ import annotations

import pytest
import torch

from graphpar.bench.runtime import dist
from graphpar.strategies import TrainConfig, registered

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device visible (torch.cuda.is_available() is False)")


@pytest.mark.parametrize("gpus,local_world,expected", [(0, 1, "gloo"), (1, 1, "nccl"), (1, 2, "gloo"),
                                                       (4, 4, "nccl"), (2, 4, "gloo")])
def test_backend_choice(monkeypatch, gpus, local_world, expected):
    """NCCL when every local rank has its own GPU, gloo when ranks must share one (NCCL refuses)."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
    assert dist.backend("cuda") == expected
    assert dist.backend("cpu") == "gloo"


@needs_cuda
def test_torch_csr_spmm_on_cuda_matches_cpu(small_directed):
    from graphpar.strategies.kernels import gcn_weights, make_aggregator

    g = small_directed
    w = gcn_weights(g.src, g.dst, g.num_nodes)
    cpu = make_aggregator(g.src, g.dst, w, g.num_nodes, g.num_nodes, "torch", "cpu")
    gpu = make_aggregator(g.src, g.dst, w, g.num_nodes, g.num_nodes, "torch", "cuda")
    x = torch.randn(g.num_nodes, 8, requires_grad=True)
    xg = x.detach().cuda().requires_grad_()
    y, yg = cpu(x), gpu(xg)
    assert yg.is_cuda
    torch.testing.assert_close(yg.cpu(), y, rtol=1e-5, atol=1e-5)
    y.square().sum().backward()
    yg.square().sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), x.grad, rtol=1e-5, atol=1e-5)


def _losses(cfg: TrainConfig) -> list[float]:
    from graphpar.bench.runtime.launcher import launch

    ranks = launch(cfg)
    return [e["loss"] for e in ranks[0]["epochs"]]


@needs_cuda
def test_single_twin_on_cuda_matches_cpu():
    """The reference's torch twin on the GPU (cuSPARSE) trains like on the CPU."""
    base = dict(strategy="single", dataset="cora", workers=1, epochs=3, dropout=0.0,
                options={"single_impl": "twin"})
    gpu = _losses(TrainConfig(device="cuda", **base))
    cpu = _losses(TrainConfig(device="cpu", **base))
    assert gpu == pytest.approx(cpu, rel=1e-4)


@needs_cuda
@pytest.mark.parametrize("strategy", [n for n in registered() if n != "single"])
def test_strategy_two_ranks_on_cuda_matches_cpu(strategy):
    """P=2 on the visible GPU(s): NCCL with 2+ GPUs, gloo with CUDA tensors on one; same losses as CPU."""
    cls = registered()[strategy]
    model = "decoupled" if "decoupled" in cls.models and strategy == "tensor" else cls.models[0]
    base = dict(strategy=strategy, dataset="cora", workers=2, epochs=3, dropout=0.0, model=model,
                layers=2, kernel="torch")
    gpu = _losses(TrainConfig(device="cuda", **base))
    cpu = _losses(TrainConfig(device="cpu", **base))
    assert gpu == pytest.approx(cpu, rel=1e-4)
