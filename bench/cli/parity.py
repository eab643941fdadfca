"""``graphpar parity``: the command line of the accuracy-parity harness (bench/harness/parity.py)."""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

from graphpar.datasets import load_dataset
from graphpar.strategies.staleness import BOUND_CHOSEN_ON, graph_group

from ..api import check_out_dir, prepare
from ..errors import EXIT_FAIL, EXIT_OK, UsageError
from ..files import replace_file
from ..harness.parity import (
    DEFAULT_OUT,
    DEFAULT_SEED_MARGIN,
    DEFAULT_TOLERANCE,
    Verdict,
    communication_line,
    plot_parity,
    run_parity,
)
from .args import at_least_one, config_from_args, training_args


def cmd_parity(args: argparse.Namespace) -> int:
    for flag, value in (("--tolerance", args.tolerance), ("--seed-margin", args.seed_margin)):
        if not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{flag} {value}: pass a finite number >= 0 (accuracy points)")
    check_out_dir(Path(args.out_dir))
    if args.reuse_reference:
        check_out_dir(Path(args.reuse_reference), "--reuse-reference")
    if args.nnodes != 1:
        raise UsageError("parity trains on this host only; drop --nnodes")
    cfg = config_from_args(args)
    if cfg.eval_every < 1:
        cfg = replace(cfg, eval_every=max(cfg.epochs // 40, 1))
    prepare(cfg, ignore_memory=args.ignore_memory_check)
    prepare(replace(cfg, strategy="single", workers=1, options={}), ignore_memory=args.ignore_memory_check)
    seeds = list(range(cfg.seed, cfg.seed + args.seeds))
    opts = "".join(f" --{k.replace('_', '-')} {v}" for k, v in cfg.options.items())
    title = (f"parity: {cfg.strategy}{opts} P={cfg.workers} vs single, {cfg.dataset}, {cfg.model} L={cfg.layers}, "
             f"{cfg.epochs} epochs, seeds {seeds[0]}..{seeds[-1]}")
    print(title)
    print(f"graph group: {graph_group(cfg.dataset)} ({', '.join(BOUND_CHOSEN_ON)} chose the stale defaults; "
          "the other graphs only check them)")
    cache = Path(args.reuse_reference) if args.reuse_reference else None
    runs = run_parity(cfg, seeds, load_dataset(cfg.dataset), cfg.timeout_s,  # --timeout: default 1800 here
                      reference_cache=cache)
    verdict = Verdict([r["test_acc"] for r in runs["reference"]], [r["test_acc"] for r in runs["strategy"]],
                      args.tolerance, args.seed_margin)
    for line in verdict.lines():
        print(line)
    comm_line = communication_line(runs)
    if comm_line:
        print(comm_line)
    stem = f"parity_{cfg.strategy}_{cfg.dataset.replace('/', '_').replace(':', '_')}_P{cfg.workers}"
    out = Path(args.out_dir)
    plot_parity(runs, title, out / f"{stem}.png", cfg.strategy)
    replace_file(out / f"{stem}.json", json.dumps({"config": cfg.as_dict(), "seeds": seeds, "runs": runs,
                                                  "mean_diff_points": verdict.mean_diff,
                                                  "worst_gap_points": verdict.worst_gap,
                                                  "passed": verdict.passed,
                                                  "graph_group": graph_group(cfg.dataset)}, indent=1))
    print(f"figure and numbers: {out / stem}.png, .pdf, .json")
    return EXIT_OK if verdict.passed else EXIT_FAIL


def build_defaults() -> argparse.Namespace:
    """``graphpar parity``'s flags at their defaults (``check --parity`` fills in what it was not given)."""
    p = argparse.ArgumentParser()
    _add_arguments(p)
    return p.parse_args(["--strategy", "single"])


def add_command(sub, commands: dict) -> None:
    """Register ``graphpar parity`` on the CLI's subparsers."""
    p = sub.add_parser("parity", help="reference vs strategy test accuracy over seeds, exit 1 outside tolerance")
    _add_arguments(p)
    commands["parity"] = cmd_parity


def _add_arguments(p: argparse.ArgumentParser) -> None:
    training_args(p)
    # a whole 200-epoch run must finish within the timeout (and + 60 s); keyed dropout masks: the strategy drops
    # what the reference drops, so the two runs of a seed differ by the strategy alone (strategies/dropmask.py)
    p.set_defaults(timeout_s=1800.0, dropout_masks="keyed")
    p.add_argument("--seeds", type=at_least_one, default=4, help="seeds --seed, --seed+1, ... (default 4)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="points the strategy's mean may fall below the reference's (default 1.5)")
    p.add_argument("--seed-margin", type=float, default=DEFAULT_SEED_MARGIN,
                   help="points any seed may fall below the reference's worst seed (default 5)")
    p.add_argument("--out-dir", default=str(DEFAULT_OUT), help="folder for the figure and the numbers")
    p.add_argument("--reuse-reference", metavar="DIR", default="",
                   help="keep reference runs in DIR and reuse them (same config and training code) instead of "
                        "training them again (default: always train)")
