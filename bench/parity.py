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

import argparse
import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
    from graphpar.strategies.staleness import combine  # noqa: PLC0415

    r0 = ranks[0]
    return {"test_acc": r0["accuracy"]["test_acc"], "losses": [e["loss"] for e in r0["epochs"]],
            "curve": [(a["epoch"], a["test_acc"]) for a in r0["accuracy_curve"]],
            "staleness": combine([r.get("staleness") for r in ranks])}


def _train(cfg, graph, timeout_s: float) -> dict[str, Any]:
    from .launcher import RunFailed  # noqa: PLC0415
    from .training_loop import train_local  # noqa: PLC0415

    try:
        return _final(train_local(cfg, graph, keep_params=False, timeout_s=timeout_s))
    except Exception as e:  # noqa: BLE001  (a rank's traceback, or no result within timeout_s + 60 s)
        raise RunFailed(f"{cfg.strategy} seed {cfg.seed}: {type(e).__name__}: {str(e).strip()[:2000]} (a whole "
                        f"run may take up to --timeout {timeout_s:g} s + 60 s; raise --timeout on a busy machine)") from e


def run_parity(cfg, seeds: list[int], graph, timeout_s: float = 1800.0, progress=print) -> dict[str, Any]:
    """Train the reference and ``cfg``'s strategy on every seed; per-seed results of both. ``timeout_s`` bounds
    each whole training run (and each collective)."""
    from graphpar.strategies.kernels import default_backend  # noqa: PLC0415

    oracle = "dgl" if default_backend() == "dgl" else "twin"  # DGL's own layers where DGL imports
    ref_cfg = replace(cfg, strategy="single", workers=1, options={"single_impl": oracle})
    out: dict[str, Any] = {"reference": [], "strategy": []}
    for seed in seeds:
        ref = _train(replace(ref_cfg, seed=seed), graph, timeout_s)
        got = _train(replace(cfg, seed=seed), graph, timeout_s)
        out["reference"].append({"seed": seed, **ref})
        out["strategy"].append({"seed": seed, **got})
        st = got["staleness"]
        note = "" if not st else (f"  stale reads {st['stale_read_share']:.1%}, max drift {st['max_drift']:.2f}"
                                  + (f", DIVERGED: {st['diverged_reason']}" if st["diverged"] else ""))
        progress(f"seed {seed}: reference {ref['test_acc']:.3f}, {cfg.strategy} {got['test_acc']:.3f}{note}")
    return out


def plot_parity(runs: dict[str, Any], title: str, path: Path) -> None:
    """Test accuracy vs epoch of every seed, reference and strategy, with the provenance line."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from .record import environment  # noqa: PLC0415
    from .results import env_fingerprint  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, color in (("reference", "tab:gray"), ("strategy", "tab:red")):
        for i, r in enumerate(runs[key]):
            xs, ys = zip(*r["curve"])
            ax.plot(xs, ys, color=color, lw=1, alpha=0.8, label=key if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    env = environment()
    fig.text(0.01, 0.01, f"git {env['git_sha']}  env {env_fingerprint(env)}", fontsize=6, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_parity(args: argparse.Namespace) -> int:
    from graphpar.datasets import load_dataset  # noqa: PLC0415

    from .cli import EXIT_FAIL, EXIT_OK, UsageError, config_from_args, prepare  # noqa: PLC0415

    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.tolerance < 0 or args.seed_margin < 0:
        raise UsageError(f"--tolerance {args.tolerance} and --seed-margin {args.seed_margin} must be >= 0 (points)")
    if args.nnodes != 1:
        raise UsageError("parity trains on this host only; drop --nnodes")
    cfg = config_from_args(args)
    if cfg.eval_every < 1:
        cfg = replace(cfg, eval_every=max(cfg.epochs // 40, 1))
    prepare(cfg)
    prepare(replace(cfg, strategy="single", workers=1, options={}))
    seeds = list(range(cfg.seed, cfg.seed + args.seeds))
    opts = "".join(f" --{k.replace('_', '-')} {v}" for k, v in cfg.options.items())
    title = (f"parity: {cfg.strategy}{opts} P={cfg.workers} vs single, {cfg.dataset}, {cfg.model} L={cfg.layers}, "
             f"{cfg.epochs} epochs, seeds {seeds[0]}..{seeds[-1]}")
    print(title)
    runs = run_parity(cfg, seeds, load_dataset(cfg.dataset), cfg.timeout_s)  # --timeout: default 1800 here
    verdict = Verdict([r["test_acc"] for r in runs["reference"]], [r["test_acc"] for r in runs["strategy"]],
                      args.tolerance, args.seed_margin)
    for line in verdict.lines():
        print(line)
    stem = f"parity_{cfg.strategy}_{cfg.dataset.replace('/', '_').replace(':', '_')}_P{cfg.workers}"
    out = Path(args.out_dir)
    plot_parity(runs, title, out / f"{stem}.png")
    (out / f"{stem}.json").write_text(json.dumps({"config": cfg.as_dict(), "seeds": seeds, "runs": runs,
                                                  "mean_diff_points": verdict.mean_diff,
                                                  "worst_gap_points": verdict.worst_gap,
                                                  "passed": verdict.passed}, indent=1))
    print(f"figure and numbers: {out / stem}.png, .json")
    return EXIT_OK if verdict.passed else EXIT_FAIL


def add_command(sub, commands: dict) -> None:
    """Register ``graphpar parity`` on the CLI's subparsers."""
    from .cli import _training_args  # noqa: PLC0415

    p = sub.add_parser("parity", help="reference vs strategy test accuracy over seeds, exit 1 outside tolerance")
    _training_args(p)
    p.set_defaults(timeout=1800.0)  # a whole 200-epoch run must finish within it (and + 60 s)
    p.add_argument("--seeds", type=int, default=4, help="seeds --seed, --seed+1, ... (default 4)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="points the strategy's mean may fall below the reference's (default 1.5)")
    p.add_argument("--seed-margin", type=float, default=DEFAULT_SEED_MARGIN,
                   help="points any seed may fall below the reference's worst seed (default 5)")
    p.add_argument("--out-dir", default=str(DEFAULT_OUT), help="folder for the figure and the numbers")
    commands["parity"] = cmd_parity
