"""The training flags every command shares, and the TrainConfig they make."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from graphpar.strategies import TrainConfig, get_strategy
from graphpar.strategies.base import all_options, deprecation_line, flag_key, registered

from ..api import MAX_LOCAL_PROCESSES
from ..errors import UsageError
from ..runtime.launcher import Cluster


def training_args(p: argparse.ArgumentParser, strategy_required: bool = True) -> None:
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
    for old, (owners, type_) in deprecated_flags().items():
        p.add_argument(old, type=type_, default=None,
                       help=f"deprecated alias (one release) of {', '.join(owners)}")


def deprecated_flags() -> dict[str, tuple[list[str], type]]:
    """Each deprecated option spelling, the flags that replace it (``--tp-chunks (tensor)``) and its type."""
    out: dict[str, tuple[list[str], type]] = {}
    for name, cls in registered().items():
        for opt in cls.options:
            if opt.old_name:
                out.setdefault(opt.old_name, ([], opt.type))[0].append(f"{opt.name} ({name})")
    return out


def config_from_args(args: argparse.Namespace, strategy: str | None = None, workers: int | None = None):
    """TrainConfig from parsed flags; a flag of another strategy is a usage error."""
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
    for old in deprecated_flags():
        value = getattr(args, flag_key(old), None)
        if value is None:
            continue
        new = next((o for o in cls.options if o.old_name == old), None)
        if new is None:
            if strategy is None:
                owners = [n for n, c in registered().items() if any(o.old_name == old for o in c.options)]
                raise UsageError(f"{old} is an option of {', '.join(owners)}, not of {name}; drop it or pick that "
                                 "strategy")
            continue
        if options.setdefault(new.key, value) != value:
            raise UsageError(f"{old} {value} and {new.name} {options[new.key]}: {old} is the deprecated spelling "
                             f"of {new.name}; pass only {new.name}")
        if not getattr(args, "_deprecation_said", False):  # once per command, however many configs it makes
            print(deprecation_line(flag_key(old)), file=sys.stderr)
            args._deprecation_said = True
    return TrainConfig(
        strategy=name, dataset=args.dataset, workers=workers or args.workers, model=args.model, layers=args.layers,
        hidden=args.hidden, dropout=args.dropout, lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs,
        seed=args.seed, device=args.device, kernel=args.kernel, residual=args.residual, prop_steps=args.prop_steps,
        eval_every=args.eval_every, warmup_epochs=args.warmup_epochs, timeout_s=args.timeout, options=options)


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


def cluster_of(args: argparse.Namespace):
    if args.nnodes < 1 or args.workers % args.nnodes or not 0 <= args.node_rank < args.nnodes:
        raise UsageError(f"--workers {args.workers} --nnodes {args.nnodes} --node-rank {args.node_rank}: every host "
                         "starts --workers / --nnodes ranks, so --workers must be a multiple of --nnodes and "
                         "0 <= --node-rank < --nnodes")
    return Cluster(args.nnodes, args.node_rank, args.master_addr, args.master_port)
