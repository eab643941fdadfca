"""Numerical check of a strategy against the single-process DGL reference, same seed.

    graphpar check --strategy tensor --dataset cora --workers 2 --epochs 10

Dropout is forced to 0 (masks cannot match across different placements). Compares per-epoch
losses and final weights by their largest relative difference; exit 0 within tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from graphpar.strategies import Communicator, TrainConfig, get_strategy

from .runtime.loop import train_local, train_rank

DEFAULT_TOLERANCE = 1e-4


@dataclass
class CheckResult:
    """The largest relative differences found, and whether they are within tolerance."""

    loss_rel_diff: float
    weight_rel_diff: float
    worst_weight: str
    tolerance: float
    strategy_losses: list[float]
    reference_losses: list[float]

    @property
    def passed(self) -> bool:
        return self.loss_rel_diff <= self.tolerance and self.weight_rel_diff <= self.tolerance

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict}: max rel diff losses {self.loss_rel_diff:.2e}, weights {self.weight_rel_diff:.2e} "
                f"(worst {self.worst_weight}), tolerance {self.tolerance:.0e}")


def check_config(cfg: TrainConfig) -> TrainConfig:
    """The configuration a check trains: the user's, with keyed dropout masks (the strategy drops what the
    reference drops, so dropout stays on and its placement is checked too) and the strategy's exact options
    filling whatever the user left unset."""
    options = {**get_strategy(cfg.strategy).exact_options(), **cfg.options}
    return replace(cfg, dropout_masks="keyed", options=options)


def reference_config(cfg: TrainConfig) -> TrainConfig:
    return replace(cfg, strategy="single", workers=1, options={"single_impl": "dgl"}, device="cpu")


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a-b| / max(max|b|, 1e-12): relative to the tensor's scale, robust to near-zero entries."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) if b.numel() else 0.0


def compare(strategy_losses: list[float], strategy_params: dict, ref_losses: list[float], ref_params: dict,
            tolerance: float = DEFAULT_TOLERANCE) -> CheckResult:
    loss_diff = rel_diff(torch.tensor(strategy_losses), torch.tensor(ref_losses))
    worst, worst_name = 0.0, ""
    for name, ref in ref_params.items():
        d = rel_diff(strategy_params[name], ref) if name in strategy_params else float("inf")
        if d >= worst:
            worst, worst_name = d, name
    return CheckResult(loss_diff, worst, worst_name, tolerance, list(strategy_losses), list(ref_losses))


def run_reference(cfg: TrainConfig, graph) -> tuple[list[float], dict]:
    """Train the DGL reference in this process; per-epoch losses and final parameters."""
    result = train_rank(Communicator(), reference_config(cfg), graph, keep_params=True)
    return [e["loss"] for e in result["epochs"]], result["params"]


def check_local(cfg: TrainConfig, graph, tolerance: float = DEFAULT_TOLERANCE) -> CheckResult:
    """Train the strategy on local processes and the reference in-process; compare (tests use this)."""
    cfg = check_config(cfg)
    results = train_local(cfg, graph, keep_params=True)
    losses = [e["loss"] for e in results[0]["epochs"]]
    ref_losses, ref_params = run_reference(cfg, graph)
    return compare(losses, results[0]["params"], ref_losses, ref_params, tolerance)
