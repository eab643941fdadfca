"""The training flags every command shares, and the TrainConfig they make."""
from __future__ import annotations

import argparse
import socket
import typing
from typing import Any

from graphpar.strategies import TrainConfig, get_strategy
from graphpar.strategies.base import all_options, deprecation_line, flag_key, registered

from .. import notices
from ..api import MAX_LOCAL_PROCESSES, MAX_PER_CORE
from ..errors import EXIT_USAGE, UsageError
from ..runtime.launcher import Cluster


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors keep the bad-input promise: one line naming the fix (no usage block), exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def at_least_one(text: str) -> int:
    """argparse type of a count (--repeat, --seeds): a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: pass 1 or more")
    return value


def training_args(p: argparse.ArgumentParser, strategy_required: bool = True) -> None:
    """Every TrainConfig field as a flag (default and help from the field), the cluster flags, then every
    strategy's options."""
    hints = typing.get_type_hints(TrainConfig)
    for name, f in TrainConfig.settings().items():
        if name == "strategy":
            if strategy_required:
                p.add_argument("--strategy", required=True, help=f.metadata["help"])
            continue
        kind = next((t for t in typing.get_args(hints[name]) if t is not type(None)), hints[name])  # int | None
        if kind is bool:
            p.add_argument(TrainConfig.flag_of(f), action="store_true", default=f.default, help=f.metadata["help"])
            continue
        shown = "" if f.default is None else " (default %(default)s)"  # %(default)s: a command's own default
        flag, choices = TrainConfig.flag_of(f), f.metadata["choices"]
        p.add_argument(flag, dest=name, metavar=None if choices else flag_key(flag).upper(), type=kind,
                       default=f.default, choices=choices, help=f.metadata["help"] + shown)
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29500)
    p.add_argument("--force", action="store_true",
                   help=f"allow more than {MAX_LOCAL_PROCESSES} worker processes on this host (or {MAX_PER_CORE} per core)")
    p.add_argument("--ignore-memory-check", action="store_true",
                   help="start even when the ranks' estimated memory exceeds what this host has available")
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
        notices.defer(deprecation_line(flag_key(old)))  # once per command, printed as it ends
    values = {f: getattr(args, f) for f in TrainConfig.settings() if f != "strategy"}
    return TrainConfig(**{**values, "strategy": name, "workers": workers or args.workers, "options": options})


def check_cluster(args: argparse.Namespace, workers: list[int]) -> None:
    """Node count, node rank and port consistent with each other and with every worker count."""
    nnodes, rank, port = args.nnodes, args.node_rank, args.master_port
    if nnodes < 1:
        raise UsageError(f"--nnodes {nnodes}: pass 1 or more hosts")
    if not 0 <= rank < nnodes:
        raise UsageError(f"--node-rank {rank} with --nnodes {nnodes}: pass a node rank in 0..{nnodes - 1}")
    if not 0 <= port <= 65535:
        raise UsageError(f"--master-port {port}: pass a TCP port in 0..65535")
    if nnodes > 1:
        try:
            socket.getaddrinfo(args.master_addr, port)
        except (socket.gaierror, UnicodeError) as e:
            raise UsageError(f"--master-addr {args.master_addr!r} does not resolve ({e}); pass the rank-0 host's "
                             "name or IP address") from None
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
