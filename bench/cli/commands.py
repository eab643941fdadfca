"""The ``graphpar`` command: run, check, bench, datasets (and the harness's sweep/plot/project).

    graphpar run --strategy tensor --dataset rmat-arxiv --workers 4 --epochs 10
    graphpar check --strategy partition --dataset cora --workers 2
    graphpar bench --dataset rmat-arxiv --workers 1,2,4 --epochs 5
    graphpar datasets

Bad input (unknown strategy/dataset/model, a worker count the strategy or graph cannot take, missing
data, a malformed spec, a value out of range, an unwritable --out, ranks whose estimated memory exceeds
what this host has available: ``--ignore-memory-check`` runs anyway) prints one line naming the fix and
exits 2 before any worker starts, without writing a record. SIGINT/SIGTERM print one line and exit
130/143, without a record for the unfinished run.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from graphpar import __version__
from graphpar.datasets import availability, data_root, load_dataset
from graphpar.strategies import TrainConfig, get_strategy, registered

from .. import notices
from ..api import check_out, check_processes, load_graph, prepare, run_one
from ..check import DEFAULT_TOLERANCE, check_config, compare, run_reference
from ..errors import BAD_INPUT, EXIT_FAIL, EXIT_OK, EXIT_USAGE, RecordError, UsageError
from ..harness.sweep import rejected_summary, run_sweep
from ..runtime.launcher import Interrupted, RunFailed, launch
from ..specs import check_exactness
from ..tables import bench_table, run_line
from . import harness, parity
from . import partition as partition_cmd
from .args import OneLineParser, at_least_one, check_cluster, cluster_of, config_from_args, training_args

DEFAULT_RESULTS = Path("results/runs.jsonl")


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_cluster(args, [cfg.workers])
    check_out(Path(args.out))
    summary = prepare(cfg, cfg.workers // args.nnodes, args.force, args.ignore_memory_check)

    records = [run_one(cfg, summary, Path(args.out), cluster_of(args)) for _ in range(args.repeat)]
    records = [r for r in records if r is not None]
    for rec in records:
        print(run_line(rec))
    if len(records) > 1:
        print(bench_table(records))
    if records:
        print(f"{len(records)} record(s) appended to {args.out}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    if args.parity:
        return _check_parity(args)
    cfg = config_from_args(args)
    check_exactness(cfg)  # before the exact options are filled in: a stale mode is refused, not switched off
    cfg = check_config(cfg)
    if args.tolerance is not None and not (math.isfinite(args.tolerance) and args.tolerance > 0):
        raise UsageError(f"--tolerance {args.tolerance}: pass a finite number > 0 (default {DEFAULT_TOLERANCE})")
    check_cluster(args, [cfg.workers])
    prepare(cfg, cfg.workers // args.nnodes, args.force, args.ignore_memory_check)
    ranks = launch(cfg, cluster_of(args), keep_params=True)
    if ranks is None:
        return EXIT_OK
    ref_losses, ref_params = run_reference(cfg, load_dataset(cfg.dataset))
    result = compare([e["loss"] for e in ranks[0]["epochs"]], ranks[0]["params"], ref_losses, ref_params,
                     DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance)
    print(f"check {cfg.strategy} on {cfg.dataset}, P={cfg.workers}, model {cfg.model}, {cfg.epochs} epochs: "
          + result.summary())
    return EXIT_OK if result.passed else EXIT_FAIL


def _check_parity(args: argparse.Namespace) -> int:
    """``check --parity``: the convergence-parity check of a mode not meant to be exact (``graphpar parity`` with its
    defaults: the strategy's final test accuracy over 4 seeds within 1.5 points of the reference's)."""
    if args.tolerance is not None:
        raise UsageError("--tolerance is the exact check's relative difference; with --parity run graphpar parity "
                         "--tolerance POINTS (accuracy points) instead")
    given = {a.split("=", 1)[0] for a in getattr(args, "_argv", ())}
    epochs_given = any(len(a) > 4 and "--epochs".startswith(a) for a in given)
    defaults = parity.build_defaults()
    mine = {k: v for k, v in vars(args).items() if k in vars(defaults) and k != "tolerance"
            and (k != "epochs" or epochs_given)}  # check's --tolerance is a relative difference, parity's points
    merged = argparse.Namespace(**{**vars(defaults), **mine})
    merged.timeout_s = max(args.timeout_s, defaults.timeout_s)
    return parity.cmd_parity(merged)


def cmd_bench(args: argparse.Namespace) -> int:
    """Strategies x worker counts on one graph: a grid run by the sweep (the only grid runner), never resumed."""
    names = [n.strip() for n in args.strategies.split(",")] if args.strategies else list(registered())
    for name in names:
        get_strategy(name)  # an unknown name fails now, listing the known ones
    try:
        workers = [int(w) for w in args.workers_list.split(",")]
    except ValueError:
        raise UsageError(f"--workers {args.workers_list!r}: pass a comma list of whole numbers, e.g. 1,2,4") from None
    if not workers or min(workers) < 1:
        raise UsageError(f"--workers {args.workers_list!r}: every worker count must be >= 1")
    check_cluster(args, workers)
    out = Path(args.out)
    check_out(out)
    for p in workers:  # ranges and P against cores, once, before the first run
        config_from_args(args, strategy=names[0], workers=p).check()
        check_processes(p // args.nnodes, args.force, warn=False)
    load_graph(args.dataset)  # a dataset that cannot load is bad input (exit 2), not a skipped configuration
    configs = [config_from_args(args, strategy=name, workers=p).as_dict() for name in names for p in workers]

    def validator(cfg: dict) -> None:
        prepare(TrainConfig.from_dict(cfg), cfg["workers"] // args.nnodes, args.force, args.ignore_memory_check)

    def runner(cfg: dict, path: Path) -> dict | None:
        c = TrainConfig.from_dict(cfg)
        return run_one(c, prepare(c, c.workers // args.nnodes, args.force, args.ignore_memory_check), path)

    outcome = run_sweep(configs, out, force=True, runner=runner, validator=validator, repeat=args.repeat)
    print(bench_table(outcome.ran))
    if outcome.skipped:
        print("  " + rejected_summary(outcome.skipped))
    for line in outcome.failed:
        print("  FAILED  " + line)
    print(f"{len(outcome.ran)} records appended to {args.out}")
    return EXIT_OK if outcome.ran else EXIT_FAIL


def cmd_datasets(args: argparse.Namespace) -> int:

    print(f"data root: {data_root()}  (set GRAPHPAR_DATA to change)")
    print(f"{'name':<20} {'kind':<10} {'here':<5} where / why")
    for row in availability():
        print(f"{row['name']:<20} {row['kind']:<10} {'yes' if row['available'] else 'no':<5} {row['where']}"
              + (f"  [{row['counts']}]" if row["counts"] else ""))
    print("also: rmat:nodes=N,edges=E,feat=F,classes=C,seed=S | npz:PATH | planetoid:DIR/NAME | dgl:PATH | "
          "edgelist:PATH[,feat=F][,label=L][,directed=1]")
    return EXIT_OK


def cmd_strategies(args: argparse.Namespace) -> int:

    for name, cls in registered().items():
        flags = " ".join(o.name for o in cls.options)
        print(f"{name:<10} {cls.description}  models: {','.join(cls.models)}  options: {flags or '-'}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:

    parser = OneLineParser(prog="graphpar", description="distributed full-graph GNN training benchmarks")
    parser.add_argument("--version", action="version", version=f"graphpar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    p = sub.add_parser("run", help="train one configuration on P ranks and record it")
    training_args(p)
    p.add_argument("--out", default=str(DEFAULT_RESULTS), help="results JSONL to append to")
    p.add_argument("--repeat", type=at_least_one, default=1, help="runs of the configuration (table: median, min-max)")
    commands["run"] = cmd_run

    p = sub.add_parser("check", help="compare a strategy with the single-process DGL reference")
    training_args(p)
    p.set_defaults(epochs=10)
    p.add_argument("--tolerance", type=float, default=None, help="max relative difference (default 1e-4)")
    p.add_argument("--parity", action="store_true",
                   help="for a mode not meant to be exact (stale, sampled): compare final test accuracy with the "
                        "reference's over seeds instead (graphpar parity with its defaults)")
    commands["check"] = cmd_check

    p = sub.add_parser("bench", help="strategies x worker counts on one graph, table in the terminal")
    training_args(p, strategy_required=False)
    p.set_defaults(epochs=5)
    p.add_argument("--strategies", default="", help="comma list (default: every registered strategy)")
    p.add_argument("--workers-list", "--workers-grid", dest="workers_list", default="1,2,4")
    p.add_argument("--repeat", type=at_least_one, default=1, help="runs per configuration, interleaved over the grid")
    p.add_argument("--out", default=str(DEFAULT_RESULTS))
    commands["bench"] = cmd_bench

    sub.add_parser("datasets", help="what graphs are available here, and why not")
    commands["datasets"] = cmd_datasets
    sub.add_parser("strategies", help="registered strategies and their options")
    commands["strategies"] = cmd_strategies
    parity.add_command(sub, commands)
    partition_cmd.add_command(sub, commands)
    harness.add_commands(sub, commands)
    parser.set_defaults(_commands=commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # bench takes a list: --workers 1,2,4 or --workers=1,2,4
        argv = ["--workers-list" + a[len("--workers"):] if a == "--workers" or a.startswith("--workers=") else a
                for a in argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a flag argparse refused (one line, exit 2): a return code
        return e.code if isinstance(e.code, int) else EXIT_USAGE

    def on_sigterm(signum, _frame):
        raise Interrupted(signum)

    args._argv = argv  # which flags were given (check --parity keeps parity's own default epochs)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        code = args._commands[args.command](args)
        notices.flush()
        return code
    except BAD_INPUT as e:
        notices.discard()  # the error is the one line
        print(f"graphpar: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as e:
        notices.flush()
        print(f"graphpar: run failed: {e}", file=sys.stderr)
        return EXIT_FAIL
    except RecordError as e:  # a result could not be written (disk full...): the file keeps what it held
        print(f"graphpar: error: {e}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt as e:  # Ctrl-C (SIGINT) or SIGTERM: workers stopped, no record of this run
        stop = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
        print(f"graphpar: {stop}; the unfinished run was not recorded", file=sys.stderr)
        return stop.exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
