"""``graphpar parity``: does a strategy reach the reference's accuracy over several seeds?

    graphpar parity --strategy partition --stale 4 --dataset amazon-computers --workers 2 --seeds 4
    graphpar parity --strategy pipeline --dataset cora --workers 4 --seeds 4 --out-dir results/scratch/parity

Trains the single-process reference (``single``, P=1, no strategy options) and the strategy for the same
epochs, model and seeds (``--seed``, ``--seed`` + 1, ...), in-process (``training_loop.train_local``, the
per-rank loop the launcher's workers run). Prints per-seed test accuracy, mean, spread (population std,
min..max), the difference of the means and the verdict against the tolerance: the strategy's mean at
most ``--tolerance`` points (default 1.5) below the reference's, and no seed more than ``--seed-margin``
points (default 5) below the reference's worst seed. Stale modes also report per seed the share of rows
read from history, the largest drift of a historical row and whether the loss diverged. Writes
``parity_<strategy>_<dataset>_P<p>.png`` (test accuracy vs epoch, both) and a ``.json`` of the numbers
to ``--out-dir`` (default ``results/scratch/parity``, untracked). ``--timeout`` (default 1800 s here) bounds
every training run as a whole. Exit 0 within the tolerance, 1 outside or when a run fails, 2 on bad input
(before anything trains).
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from graphpar.strategies.staleness import combine

from ..files import replace_file
from ..record import environment
from ..results import env_fingerprint
from ..runtime.launcher import RunFailed
from ..runtime.loop import train_local
from ..tables import bound_note

DEFAULT_TOLERANCE, DEFAULT_SEED_MARGIN = 1.5, 5.0  # accuracy points (percent)
DEFAULT_OUT = Path("results/scratch/parity")


@dataclass
class Verdict:
    """Reference and strategy test accuracies per seed (fractions) judged against the tolerances (points)."""

    reference: list[float]
    strategy: list[float]
    tolerance: float = DEFAULT_TOLERANCE
    seed_margin: float = DEFAULT_SEED_MARGIN

    @property
    def mean_diff(self) -> float:
        """Strategy mean - reference mean, in points."""
        return 100 * (statistics.fmean(self.strategy) - statistics.fmean(self.reference))

    @property
    def worst_gap(self) -> float:
        """Strategy's worst seed - reference's worst seed, in points."""
        return 100 * (min(self.strategy) - min(self.reference))

    @property
    def passed(self) -> bool:
        return self.mean_diff >= -self.tolerance and self.worst_gap >= -self.seed_margin

    def lines(self) -> list[str]:
        def row(name: str, accs: list[float]) -> str:
            return (f"{name:<10} {' '.join(f'{a:.3f}' for a in accs)}  mean {statistics.fmean(accs):.3f}  "
                    f"std {statistics.pstdev(accs):.3f}  min..max {min(accs):.3f}..{max(accs):.3f}")

        return [row("reference", self.reference), row("strategy", self.strategy),
                f"mean difference {self.mean_diff:+.1f} points (tolerance -{self.tolerance:g}); worst seed "
                f"{self.worst_gap:+.1f} points vs the reference's worst (margin -{self.seed_margin:g}): "
                + ("PASS" if self.passed else "FAIL")]


def _final(ranks: list[dict[str, Any]]) -> dict[str, Any]:
    r0 = ranks[0]
    stale = combine([r.get("staleness") for r in ranks])
    return {"test_acc": r0["accuracy"]["test_acc"], "losses": [e["loss"] for e in r0["epochs"]],
            "curve": [(a["epoch"], a["test_acc"]) for a in r0["accuracy_curve"]], "staleness": stale,
            "whole_graph_epochs": _whole_graph_epochs(r0.get("info") or {}, len(r0["epochs"])) if stale else []}


def _whole_graph_epochs(info: dict[str, Any], epochs: int) -> list[tuple[int, int]]:
    """[first, last] epoch ranges a stale pipeline ran as one whole-graph chunk (its warm-up and cool-down)."""
    warm, cool = int(info.get("pipe_warmup") or 0), int(info.get("pipe_cooldown") or 0)
    spans = [(0, min(warm, epochs) - 1)] if warm > 0 else []
    return spans + ([(max(epochs - cool, 0), epochs - 1)] if cool > 0 else [])


def _train(cfg, graph, timeout_s: float) -> dict[str, Any]:
    try:
        return _final(train_local(cfg, graph, keep_params=False, timeout_s=timeout_s))
    except Exception as e:
        raise RunFailed(f"{cfg.strategy} seed {cfg.seed}: {type(e).__name__}: {str(e).strip()[:2000]} (a whole "
                        f"run may take up to --timeout {timeout_s:g} s + 60 s; raise --timeout on a busy machine)") from e


def _code_hash() -> str:
    """Hash of the Python sources that train (bench/, strategies/, datasets/, graphpar/)."""
    import hashlib  # noqa: PLC0415

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in ("bench", "strategies", "datasets", "graphpar"):
        for f in sorted((root / sub).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _reference_key(cfg) -> str:
    """File name of a cached reference run: every setting that shapes training (not the timeout), hashed."""
    import hashlib  # noqa: PLC0415

    d = {k: v for k, v in cfg.as_dict().items() if k != "timeout_s"}
    d["code"] = _code_hash()  # other code trains another reference (docs and tests do not count)
    digest = hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"reference_{digest}.json"


def _reference(cfg, graph, timeout_s: float, cache: Path | None) -> dict[str, Any]:
    """The reference run of ``cfg`` (single, P=1), read from / written to ``cache`` when given."""
    path = cache / _reference_key(cfg) if cache is not None else None
    if path is not None and path.is_file():
        try:
            got = json.loads(path.read_text())
            if isinstance(got, dict) and isinstance(got.get("test_acc"), float):
                return got
        except ValueError:
            pass  # a torn or edited cache entry: train again
    got = _train(cfg, graph, timeout_s)
    if path is not None:
        replace_file(path, json.dumps(got))
    return got


def run_parity(cfg, seeds: list[int], graph, timeout_s: float = 1800.0, progress=print,
               reference_cache: Path | None = None) -> dict[str, Any]:
    """Train the reference and ``cfg``'s strategy on every seed; per-seed results of both. ``timeout_s`` bounds
    each whole training run (and each collective). ``reference_cache``: a folder where reference runs are kept
    (keyed by their config and a hash of the training code) and reused by later calls with the same reference."""
    from graphpar.strategies.kernels import default_backend  # noqa: PLC0415
    from graphpar.strategies.staleness import above_reference  # noqa: PLC0415

    oracle = "dgl" if default_backend() == "dgl" else "twin"  # DGL's own layers where DGL imports
    ref_cfg = replace(cfg, strategy="single", workers=1, options={"single_impl": oracle})
    out: dict[str, Any] = {"reference": [], "strategy": []}
    for seed in seeds:
        ref = _reference(replace(ref_cfg, seed=seed), graph, timeout_s, reference_cache)
        got = _train(replace(cfg, seed=seed), graph, timeout_s)
        out["reference"].append({"seed": seed, **ref})
        out["strategy"].append({"seed": seed, **got})
        st = got["staleness"]
        if st is not None and not st["diverged"]:
            reason = above_reference(got["losses"], ref["losses"])
            st.update(diverged=reason is not None, diverged_reason=reason)
        note = "" if not st else (f"  stale reads {st['stale_read_share']:.1%}, max drift {st['max_drift']:.2f}"
                                  + bound_note(st)
                                  + (f", DIVERGED: {st['diverged_reason']}" if st["diverged"] else ""))
        progress(f"seed {seed}: reference {ref['test_acc']:.3f}, {cfg.strategy} {got['test_acc']:.3f}{note}")
    return out


def communication_line(runs: dict[str, Any]) -> str | None:
    """Over the seeds, the halo bytes a bounded/fixed stale partition saved against the exact mode and the
    refreshes its bound forced; None for runs without those counters."""
    stats = [r["staleness"] for r in runs["strategy"] if r.get("staleness") and "bound" in r["staleness"]]
    if not stats:
        return None
    saved = statistics.fmean(s["saved_vs_exact_bytes"] for s in stats)
    exact = statistics.fmean(s["exact_halo_bytes"] for s in stats)
    forced = statistics.fmean(s["forced_share"] for s in stats)
    return (f"halo bytes saved vs exact {saved / 1e6:.2f} MB of {exact / 1e6:.2f} MB per run "
            f"({saved / exact:+.0%}), forced refreshes {forced:.0%} of the stale layer-epochs (mean over seeds)"
            if exact else None)


def plot_parity(runs: dict[str, Any], title: str, path: Path, strategy: str = "",
                formats: tuple[str, ...] = ("png", "pdf")) -> None:
    """Test accuracy vs epoch of every seed, reference and strategy, in the suite's one style (``figstyle``:
    the strategy's colour, stale variant lighter; PNG at 300 dpi and PDF), with the provenance line."""
    from . import figlayout, figstyle  # noqa: PLC0415  (matplotlib: imported when plotting)

    colors = {"reference": figstyle.strategy_color("single"),
              "strategy": figstyle.strategy_color(strategy or "tensor", "stale")}
    names = {"reference": "single (reference), each seed", "strategy": f"{strategy or 'strategy'}, each seed"}
    with figstyle.paper():
        fig, ax = figlayout.new(figstyle.size("double", 3.0))
        for key in ("reference", "strategy"):
            for i, r in enumerate(runs[key]):
                xs, ys = zip(*r["curve"])
                ax.plot(xs, ys, color=colors[key], lw=1, alpha=0.8, label=names[key] if i == 0 else None)
        spans = runs["strategy"][0].get("whole_graph_epochs", []) if runs["strategy"] else []
        for j, (lo, hi) in enumerate(spans):  # where the stale curves jump: the exact forward again
            ax.axvspan(lo - 0.5, hi + 0.5, color="0.85", zorder=0, lw=0,  # each epoch one unit wide
                       label="whole-graph epochs (no history: warm-up, cool-down)" if j == 0 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        figlayout.legend_below(fig, *ax.get_legend_handles_labels())
        env = environment()
        figlayout.finish(fig, title, [f"graphpar {env['git_sha']} | env {env_fingerprint(env)}"])
        figstyle.save(fig, path, formats)
