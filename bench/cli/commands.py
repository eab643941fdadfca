"""The ``graphpar`` command: run, check, bench, datasets (and the harness's sweep/plot/project).

    graphpar run --strategy tensor --dataset rmat-arxiv --workers 4 --epochs 10
    graphpar check --strategy partition --dataset cora --workers 2
    graphpar bench --dataset rmat-arxiv --workers 1,2,4 --epochs 5
    graphpar datasets

Bad input (unknown strategy/dataset/model, a worker count the strategy or graph cannot take, missing
data, a malformed spec, a value out of range, an unwritable --out) prints one line naming the fix and
exits 2 before any worker starts, without writing a record. SIGINT/SIGTERM print one line and exit
130/143, without a record for the unfinished run.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_RESULTS = Path("results/runs.jsonl")
MAX_LOCAL_PROCESSES = 64  # worker processes on one host beyond which a run needs --force
OVERSUBSCRIBE = 4  # a warning past cores x this many processes on one host


class UsageError(ValueError):
    """Bad input: one line, exit 2."""


def _training_args(p: argparse.ArgumentParser, strategy_required: bool = True) -> None:
    from graphpar.strategies.base import all_options  # noqa: PLC0415

    if strategy_required:
        p.add_argument("--strategy", required=True, help="a registered strategy (graphpar strategies)")
    p.add_argument("--dataset", default="rmat-arxiv", help="catalog name or spec (graphpar datasets)")
    p.add_argument("--workers", type=int, default=1, help="number of ranks P (all hosts together)")
    p.add_argument("--model", default="gcn", help="gcn | sage | decoupled")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--kernel", default="auto", choices=("auto", "torch", "dgl"), help="aggregation backend")
    p.add_argument("--residual", action="store_true", help="residual connections between equal-width layers")
    p.add_argument("--prop-steps", type=int, default=None, help="decoupled: propagation steps K (default: --layers)")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N epochs (accuracy curve)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="epochs left out of the timing summary")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a stuck collective fails the run")
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29500)
    p.add_argument("--force", action="store_true",
                   help=f"allow more than {MAX_LOCAL_PROCESSES} worker processes on this host")
    for flag, (opt, owners) in all_options().items():
        kwargs: dict[str, Any] = {"default": None, "help": f"[{', '.join(owners)}] {opt.help} (default {opt.default})"}
        if opt.type is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = opt.type
            if opt.choices:
                kwargs["choices"] = opt.choices
        p.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace, strategy: str | None = None, workers: int | None = None):
    """TrainConfig from parsed flags; a flag of another strategy is a usage error."""
    from graphpar.strategies import TrainConfig, get_strategy  # noqa: PLC0415
    from graphpar.strategies.base import all_options  # noqa: PLC0415

    name = strategy or args.strategy
    cls = get_strategy(name)
    mine = {o.name for o in cls.options}
    options = {}
    for flag, (opt, owners) in all_options().items():
        value = getattr(args, opt.key, None)
        if value is None or (opt.type is bool and value is False):
            continue
        if flag in mine:
            options[opt.key] = value
        elif strategy is None:
            raise UsageError(f"{flag} is an option of {', '.join(owners)}, not of {name}; drop it or pick that strategy")
    return TrainConfig(
        strategy=name, dataset=args.dataset, workers=workers or args.workers, model=args.model, layers=args.layers,
        hidden=args.hidden, dropout=args.dropout, lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs,
        seed=args.seed, device=args.device, kernel=args.kernel, residual=args.residual, prop_steps=args.prop_steps,
        eval_every=args.eval_every, warmup_epochs=args.warmup_epochs, timeout_s=args.timeout, options=options)


def check_processes(local_workers: int, force: bool = False, warn: bool = True) -> None:
    """P against this host's cores: a warning past cores x OVERSUBSCRIBE, an error past MAX_LOCAL_PROCESSES."""
    cores = os.cpu_count() or 1
    if local_workers > MAX_LOCAL_PROCESSES and not force:
        raise UsageError(f"{local_workers} worker processes on this host ({cores} cores) exceeds the limit of "
                         f"{MAX_LOCAL_PROCESSES}; use fewer --workers, more --nnodes, or --force")
    if warn and local_workers > cores * OVERSUBSCRIBE:
        print(f"graphpar: warning: {local_workers} worker processes on {cores} cores (over {OVERSUBSCRIBE} per core): "
              "timings will mostly measure oversubscription", file=sys.stderr)


def check_out(out: Path | None) -> None:
    """An --out that cannot take a record fails now, not after training (creates nothing)."""
    if out is None:
        return
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; pass a file path such as {out / 'runs.jsonl'}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if out.exists():
        ok = os.access(out, os.W_OK)
    else:
        ok = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    if not ok:
        raise UsageError(f"--out {out} is not writable ({parent} is not a writable folder); pass a writable path")
    if out.exists():
        try:
            with open(out, "ab"):
                pass
        except OSError as e:
            raise UsageError(f"--out {out} cannot be appended to ({e.strerror}); pass a writable path") from None


def check_cluster(args: argparse.Namespace, workers: list[int]) -> None:
    """Node count, node rank and port consistent with each other and with every worker count."""
    nnodes, rank, port = args.nnodes, args.node_rank, args.master_port
    if nnodes < 1:
        raise UsageError(f"--nnodes {nnodes}: pass 1 or more hosts")
    if not 0 <= rank < nnodes:
        raise UsageError(f"--node-rank {rank} with --nnodes {nnodes}: pass a node rank in 0..{nnodes - 1}")
    if not 0 <= port <= 65535:
        raise UsageError(f"--master-port {port}: pass a TCP port in 0..65535")
    for p in workers:
        if p >= 1 and p % nnodes:
            raise UsageError(f"--workers {p} is not divisible by --nnodes {nnodes}: every host runs P/nnodes ranks; "
                             f"pass a multiple of {nnodes}")


def prepare(cfg, local_workers: int | None = None, force: bool = False) -> dict[str, Any]:
    """Validate everything up front (ranges, strategy, dataset, model, P, device); returns the graph summary."""
    from graphpar.datasets import load_dataset  # noqa: PLC0415
    from graphpar.strategies import get_strategy  # noqa: PLC0415

    cls = get_strategy(cfg.strategy)
    cfg.check()
    local_workers = cfg.workers if local_workers is None else local_workers
    check_processes(local_workers, force, warn=False)
    if cfg.device == "cuda":
        import torch  # noqa: PLC0415
        if not torch.cuda.is_available():
            raise UsageError("--device cuda but no CUDA device is visible; use --device cpu")
    try:
        graph = load_dataset(cfg.dataset)
    except ValueError as e:  # DatasetError, and a graph that breaks the conventions (GraphData.validate)
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"dataset {cfg.dataset}: {e.strerror or e} ({e.filename}); check the path and its "
                         "permissions") from None
    summary = graph.summary()
    cls.validate(cfg, summary)
    check_processes(local_workers, force)  # the oversubscription warning, once everything else holds
    return summary


def _cluster(args: argparse.Namespace):
    from ..runtime.launcher import Cluster  # noqa: PLC0415

    if args.nnodes < 1 or args.workers % args.nnodes or not 0 <= args.node_rank < args.nnodes:
        raise UsageError(f"--workers {args.workers} --nnodes {args.nnodes} --node-rank {args.node_rank}: every host "
                         "starts --workers / --nnodes ranks, so --workers must be a multiple of --nnodes and "
                         "0 <= --node-rank < --nnodes")
    return Cluster(args.nnodes, args.node_rank, args.master_addr, args.master_port)


def run_one(cfg, summary: dict, out: Path | None, cluster=None) -> dict | None:
    """Launch one configuration and append its record; returns the record (None on non-zero node ranks)."""
    from ..runtime.launcher import launch  # noqa: PLC0415
    from ..record import append_record, build_record  # noqa: PLC0415

    ranks = launch(cfg, cluster)
    if ranks is None:
        return None
    rec = build_record(cfg.as_dict(), summary, ranks)
    if out is not None:
        append_record(rec, out)
    return rec


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_cluster(args, [cfg.workers])
    check_out(Path(args.out))
    summary = prepare(cfg, cfg.workers // args.nnodes, args.force)
    from ..tables import bench_table, run_line  # noqa: PLC0415

    records = [run_one(cfg, summary, Path(args.out), _cluster(args)) for _ in range(args.repeat)]
    records = [r for r in records if r is not None]
    for rec in records:
        print(run_line(rec))
    if len(records) > 1:
        print(bench_table(records))
    if records:
        print(f"{len(records)} record(s) appended to {args.out}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from ..check import DEFAULT_TOLERANCE, check_config, compare, run_reference  # noqa: PLC0415
    from ..runtime.launcher import launch  # noqa: PLC0415
    from graphpar.datasets import load_dataset  # noqa: PLC0415

    from ..specs import check_exactness  # noqa: PLC0415

    cfg = check_config(config_from_args(args))
    check_exactness(cfg)
    if args.tolerance is not None and not (math.isfinite(args.tolerance) and args.tolerance > 0):
        raise UsageError(f"--tolerance {args.tolerance}: pass a finite number > 0 (default {DEFAULT_TOLERANCE})")
    check_cluster(args, [cfg.workers])
    prepare(cfg, cfg.workers // args.nnodes, args.force)
    ranks = launch(cfg, _cluster(args), keep_params=True)
    if ranks is None:
        return EXIT_OK
    ref_losses, ref_params = run_reference(cfg, load_dataset(cfg.dataset))
    result = compare([e["loss"] for e in ranks[0]["epochs"]], ranks[0]["params"], ref_losses, ref_params,
                     DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance)
    print(f"check {cfg.strategy} on {cfg.dataset}, P={cfg.workers}, model {cfg.model}, {cfg.epochs} epochs: "
          + result.summary())
    return EXIT_OK if result.passed else EXIT_FAIL


def cmd_bench(args: argparse.Namespace) -> int:
    from graphpar.strategies import ConfigError, get_strategy, registered  # noqa: PLC0415

    from ..runtime.launcher import RunFailed  # noqa: PLC0415
    from ..record import append_record, failed_record  # noqa: PLC0415
    from ..tables import bench_table  # noqa: PLC0415

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
    check_out(Path(args.out))
    for p in workers:  # ranges and P against cores, once, before the first run
        prepare_cfg = config_from_args(args, strategy=names[0], workers=p)
        prepare_cfg.check()
        check_processes(p // args.nnodes, args.force, warn=False)
    records, skipped = [], []
    from tqdm import tqdm  # noqa: PLC0415

    grid = [(s, p) for _ in range(args.repeat) for s in names for p in workers]  # repeats interleaved
    rejected = set()
    for name, p in tqdm(grid, desc="bench", unit="run", disable=not sys.stderr.isatty()):
        if (name, p) in rejected:
            continue
        cfg = config_from_args(args, strategy=name, workers=p)
        try:
            summary = prepare(cfg, p // args.nnodes, args.force)
        except ConfigError as e:
            skipped.append(f"{name} P={p}: {e}")
            rejected.add((name, p))
            continue
        try:
            records.append(run_one(cfg, summary, Path(args.out)))
        except RunFailed as e:
            append_record(failed_record(cfg.as_dict(), str(e)), Path(args.out))
            skipped.append(f"{name} P={p}: FAILED {str(e).splitlines()[0]}")
    print(bench_table([r for r in records if r]))
    for line in skipped:
        print("  skipped " + line)
    print(f"{len(records)} records appended to {args.out}")
    return EXIT_OK if records else EXIT_FAIL


def cmd_datasets(args: argparse.Namespace) -> int:
    from graphpar.datasets import availability, data_root  # noqa: PLC0415

    print(f"data root: {data_root()}  (set GRAPHPAR_DATA to change)")
    print(f"{'name':<20} {'kind':<10} {'here':<5} where / why")
    for row in availability():
        print(f"{row['name']:<20} {row['kind']:<10} {'yes' if row['available'] else 'no':<5} {row['where']}"
              + (f"  [{row['counts']}]" if row["counts"] else ""))
    print("also: rmat:nodes=N,edges=E,feat=F,classes=C,seed=S | npz:PATH | planetoid:DIR/NAME | dgl:PATH | "
          "edgelist:PATH[,feat=F][,label=L][,directed=1]")
    return EXIT_OK


def cmd_strategies(args: argparse.Namespace) -> int:
    from graphpar.strategies import registered  # noqa: PLC0415

    for name, cls in registered().items():
        flags = " ".join(o.name for o in cls.options)
        print(f"{name:<10} {cls.description}  models: {','.join(cls.models)}  options: {flags or '-'}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from graphpar import __version__  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="graphpar", description="distributed full-graph GNN training benchmarks")
    parser.add_argument("--version", action="version", version=f"graphpar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    p = sub.add_parser("run", help="train one configuration on P ranks and record it")
    _training_args(p)
    p.add_argument("--out", default=str(DEFAULT_RESULTS), help="results JSONL to append to")
    p.add_argument("--repeat", type=int, default=1, help="runs of the configuration (table: median, min-max)")
    commands["run"] = cmd_run

    p = sub.add_parser("check", help="compare a strategy with the single-process DGL reference")
    _training_args(p)
    p.set_defaults(epochs=10)
    p.add_argument("--tolerance", type=float, default=None, help="max relative difference (default 1e-4)")
    commands["check"] = cmd_check

    p = sub.add_parser("bench", help="strategies x worker counts on one graph, table in the terminal")
    _training_args(p, strategy_required=False)
    p.set_defaults(epochs=5)
    p.add_argument("--strategies", default="", help="comma list (default: every registered strategy)")
    p.add_argument("--workers-list", "--workers-grid", dest="workers_list", default="1,2,4")
    p.add_argument("--repeat", type=int, default=1, help="runs per configuration, interleaved over the grid")
    p.add_argument("--out", default=str(DEFAULT_RESULTS))
    commands["bench"] = cmd_bench

    sub.add_parser("datasets", help="what graphs are available here, and why not")
    commands["datasets"] = cmd_datasets
    sub.add_parser("strategies", help="registered strategies and their options")
    commands["strategies"] = cmd_strategies

    from ..harness import parity  # noqa: PLC0415
    parity.add_command(sub, commands)
    try:
        from . import harness as harness_cli  # noqa: PLC0415  (sweep, plot, project, regress)
        harness_cli.add_commands(sub, commands)
    except ImportError as e:
        if "harness_cli" not in str(e):
            raise
    parser.set_defaults(_commands=commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # bench takes a list: --workers 1,2,4 or --workers=1,2,4
        argv = ["--workers-list" + a[len("--workers"):] if a == "--workers" or a.startswith("--workers=") else a
                for a in argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    from graphpar.datasets import DatasetError  # noqa: PLC0415
    from graphpar.strategies import ConfigError  # noqa: PLC0415

    from ..runtime.launcher import Interrupted, RunFailed  # noqa: PLC0415

    def on_sigterm(signum, _frame):
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return args._commands[args.command](args)
    except (UsageError, ConfigError, DatasetError) as e:
        print(f"graphpar: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as e:
        print(f"graphpar: run failed: {e}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt as e:  # Ctrl-C (SIGINT) or SIGTERM: workers stopped, no record of this run
        stop = e if isinstance(e, Interrupted) else Interrupted(signal.SIGINT)
        print(f"graphpar: {stop}; the unfinished run was not recorded", file=sys.stderr)
        return stop.exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # python -m graphpar.bench.cli.commands: the package's module, so its error classes are the ones caught
    from graphpar.bench.cli.commands import main as package_main

    sys.exit(package_main())
