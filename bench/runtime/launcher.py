"""Start P worker processes with torch's elastic launcher (the code path ``torchrun`` uses).

    ranks = launch(cfg)                      # one host, rendezvous on localhost:0 (no port clashes)
    ranks = launch(cfg, nnodes=2, node_rank=0, master_addr="10.0.0.1", master_port=29500)   # per host

A worker that dies ends the run on every host: max_restarts=0, the agent tears the group down and
raises with the failing rank's traceback (workers are wrapped in ``@record``).

Faults end the run, never hang it: once a worker has failed (a peer's collective timed out after
``--timeout``, a crash), the ones still alive get STRAGGLER_GRACE_S to exit and are then SIGKILLed (a
stopped or wedged worker ignores torch's SIGTERM, and torch 2.2 joins it without a limit). Every worker
also beats (``heartbeat``): a rank of this host silent for ``--timeout`` (stopped, wedged) gets every local
worker killed at once, at any P (P=1 included, where no peer's collective would notice), and the error
names that rank, whichever noticed first. SIGINT or
SIGTERM to the launcher stops the workers and raises ``Interrupted`` (exit 130/143 in the CLI, no
record). torch's per-run log folders go under a temp folder of the run's own, removed afterwards.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from torch.distributed.elastic.multiprocessing import api as elastic_api
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import _EMPTY_ERROR_DATA, ChildFailedError
from torch.distributed.elastic.rendezvous import RendezvousError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from graphpar.strategies import TrainConfig

from . import heartbeat
from .dist import PG_STORE_ENV, peer_died
from .netaddr import interface_of, multinode_settings
from .worker import worker_main

# The agent logs a SIGTERM warning for every clean shutdown, and its own traceback of the spawn machinery
# (ProcessExitedException, ~8 lines) for a worker that died; the failure surfaces once, as RunFailed, with
# the worker's own traceback or the signal that ended it.
logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.CRITICAL)
# ... and a warning when it cannot close the rendezvous of a run that already failed (the store's file on a
# full disk): the run's own error says what went wrong
logging.getLogger("torch.distributed.elastic.rendezvous.dynamic_rendezvous").setLevel(logging.ERROR)


STRAGGLER_GRACE_S = 10.0  # after the first worker failure, how long the others get before SIGKILL
# (GRAPHPAR_KILL_GRACE_S overrides it; tests shorten it)


class RunFailed(RuntimeError):
    """A worker failed; the message carries its traceback."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM ended the run (a KeyboardInterrupt, so no ``except Exception`` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum

    def __str__(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}"


class _Reaper(threading.Thread):
    """SIGKILLs the workers still alive ``grace_s`` after one of them failed (stopped, wedged, deaf), and all
    of them at once when a rank of this host stops beating for ``watch.limit_s`` (``heartbeat``)."""

    def __init__(self, grace_s: float | None = None, watch: "_Watch | None" = None):
        super().__init__(name="graphpar-reaper", daemon=True)
        if grace_s is None:
            grace_s = float(os.environ.get("GRAPHPAR_KILL_GRACE_S", STRAGGLER_GRACE_S))
        self.grace_s, self.done, self.killed = grace_s, threading.Event(), []
        self.watch = watch
        self.silent: tuple[int, float] | None = None  # (rank, seconds) of the rank that stopped beating
        self.failed_wall: float | None = None  # wall time the first worker failure was seen
        self._seen: dict[int, multiprocessing.Process] = {}

    def _kill(self, procs: list) -> None:
        for p in procs:
            if p.exitcode is None and p.pid not in self.killed:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                    self.killed.append(p.pid)
                except ProcessLookupError:
                    pass

    def run(self) -> None:
        failed_at = None
        while not self.done.wait(0.25):
            for proc in multiprocessing.active_children():
                self._seen.setdefault(proc.pid, proc)
            procs = list(self._seen.values())
            if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
                failed_at, self.failed_wall = time.monotonic(), time.time()
            if failed_at is None and self.silent is None and self.watch is not None:
                silent = heartbeat.silent_ranks(self.watch.folder, self.watch.ranks, self.watch.started,
                                                self.watch.limit_s)
                if silent:
                    self.silent = max(silent, key=lambda rs: rs[1])
                    self._kill(procs)
            if failed_at is not None and time.monotonic() - failed_at > self.grace_s:
                self._kill(procs)

    def stalled_rank(self) -> tuple[int, float] | None:
        """The rank of this host that stopped beating: the one the watchdog caught, or, when a peer's
        collective timed out first, a rank silent since well before that failure."""
        if self.silent is not None or self.watch is None or self.failed_wall is None:
            return self.silent
        quiet = heartbeat.silent_ranks(self.watch.folder, self.watch.ranks, self.watch.started,
                                       2 * heartbeat.BEAT_S + 1.0, now=self.failed_wall)
        return max(quiet, key=lambda rs: rs[1]) if quiet else None


@dataclass
class _Watch:
    """What the reaper's watchdog watches: this host's ranks' heartbeat files, and the silence it allows."""

    folder: str
    ranks: list[int]
    started: float
    limit_s: float


@dataclass
class Cluster:
    """Where the ranks run: torchrun's multi-node flags, passed straight through."""

    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0
    run_id: str = ""


def _root_cause(err: ChildFailedError) -> str:
    def secondary(f) -> bool:  # a rank that failed only because a peer died first
        text = str(f.message)
        return peer_died(text)

    rank, failure = min(err.failures.items(), key=lambda kv: (secondary(kv[1]), kv[1].timestamp, kv[0]))
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "") + "\n" + message.get("extraInfo", {}).get("py_callstack", "")
    if failure.error_file_data == _EMPTY_ERROR_DATA or not message:  # died without raising
        how = f"killed by {failure.signal_name()}" if failure.exitcode < 0 else "exited without raising"
        message = f"no traceback: the process {how} (os._exit, out of memory, or a signal)"
    return f"rank {rank} (exit {failure.exitcode}): {message}"


def launch(cfg: TrainConfig, cluster: Cluster | None = None, keep_params: bool = False) -> list[dict[str, Any]] | None:
    """Run ``cfg`` on cfg.workers ranks; rank results on the host holding rank 0, else None."""
    cluster = cluster or Cluster()
    if cluster.nnodes < 1 or not 0 <= cluster.node_rank < cluster.nnodes or cfg.workers % cluster.nnodes:
        raise ValueError(f"--workers {cfg.workers}, --nnodes {cluster.nnodes}, --node-rank {cluster.node_rank}: "
                         "need nnodes >= 1, 0 <= node-rank < nnodes and workers divisible by nnodes")
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    local = cluster.nnodes == 1
    multi: dict[str, Any] = {}
    if local:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    else:
        multi = multinode_settings(cluster.master_addr, cluster.master_port, cluster.node_rank)
        if os.environ.get("GLOO_SOCKET_IFNAME", "lo") in ("", "lo"):  # loopback reaches no other host
            iface = interface_of(multi["local_addr"])
            if iface:
                os.environ["GLOO_SOCKET_IFNAME"] = iface
            else:
                os.environ.pop("GLOO_SOCKET_IFNAME", None)  # gloo falls back to the hostname's address
    log_dir = tempfile.mkdtemp(prefix="graphpar-run-")  # torch's torchelastic_* folders go here, then away
    # one host: both stores are files in this run's private folder (no TCP listener at all; gloo's own
    # links stay on loopback); several hosts: TCP stores on the master, unauthenticated (trusted network only)
    endpoint = os.path.join(log_dir, "rendezvous.store") if local else f"{cluster.master_addr}:{cluster.master_port}"
    config = LaunchConfig(
        min_nodes=cluster.nnodes, max_nodes=cluster.nnodes, nproc_per_node=cfg.workers // cluster.nnodes,
        run_id=cluster.run_id or ("local-" + uuid.uuid4().hex[:8] if local else "graphpar"),
        rdzv_backend="c10d", rdzv_endpoint=endpoint,
        rdzv_configs={"rank": cluster.node_rank, "timeout": max(1, int(cfg.timeout_s)), "is_host": multi["is_host"]}
        if not local else {"timeout": 60, "store_type": "file"},
        local_addr=multi.get("local_addr"),
        max_restarts=0, monitor_interval=0.2, start_method="spawn", log_dir=log_dir,
    )
    # torch installs its own handlers for these when the workers start and never puts ours back
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)}
    received: list[int] = []

    def on_signal(signum: int, _frame) -> None:
        # torch's agent stops the workers with the signal in the exception: SIGTERM ends them quietly at any
        # point (a SIGINT would print a KeyboardInterrupt traceback from every worker still starting up)
        received.append(signum)
        raise SignalException(f"graphpar launcher got {signal.Signals(signum).name}", sigval=signal.SIGTERM)

    torch_handler, elastic_api._terminate_process_handler = elastic_api._terminate_process_handler, on_signal
    nproc = cfg.workers // cluster.nnodes
    watch = _Watch(os.path.join(log_dir, "heartbeat"), [cluster.node_rank * nproc + r for r in range(nproc)],
                   time.time(), float(cfg.timeout_s))
    os.makedirs(watch.folder)
    run_env = {heartbeat.ENV: watch.folder, PG_STORE_ENV: os.path.join(log_dir, "group.store") if local else None}
    previous_env = {k: os.environ.get(k) for k in run_env}
    for k, v in run_env.items():  # the spawned workers inherit them
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    reaper = _Reaper(watch=watch)
    reaper.start()
    try:
        results = elastic_launch(config, worker_main)(cfg.as_dict(), keep_params)
    except SignalException as err:  # the agent has already stopped the workers
        raise Interrupted(received[0] if received else err.sigval) from None
    except ChildFailedError as err:
        stalled = reaper.stalled_rank()
        if stalled is not None:
            rank, quiet = stalled
            raise RunFailed(f"rank {rank} on {socket.gethostname()} made no progress for {quiet:.0f} s (stopped, "
                            f"wedged or holding the GIL: no heartbeat; --timeout {cfg.timeout_s:g}); every worker "
                            "of this host was killed") from None
        raise RunFailed(_root_cause(err)) from None
    except RendezvousError as err:  # another host's agent ended (its rank failed) or the master is unreachable
        raise RunFailed(f"lost the rendezvous with the other hosts at {endpoint} ({type(err).__name__}: {err}); "
                        "a rank on another host failed (see that host's output) or the master is unreachable"
                        ) from None
    finally:
        reaper.done.set()
        for k, v in previous_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        elastic_api._terminate_process_handler = torch_handler
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        shutil.rmtree(log_dir, ignore_errors=True)
    for value in results.values():
        if value is not None:
            return value
    return None
