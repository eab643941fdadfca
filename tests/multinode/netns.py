"""Fake hosts on one machine: Linux network namespaces on a private bridge (iproute2, needs root).

    with Hosts(2) as hosts: hosts.popen(0, ["graphpar", "run", ...], env={...})

Each host is a namespace ``gpmn<pid>h<i>`` with loopback up and one veth ``eth0`` at 10.77.0.<i+1>/24,
plugged into a bridge that lives in its own namespace ``gpmn<pid>sw``: nothing is added to the
machine's own network namespace, so the addresses cannot clash with anything outside. Leaving the
``with`` block (normally, by an exception, or by SIGINT/SIGTERM turned into one) kills what runs in
the namespaces and deletes them; namespaces left by a run that was SIGKILLed are removed by the next
run (their owner pid is dead).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import IO, Sequence

PREFIX = "gpmn"
SUBNET = "10.77.0"
IFACE = "eth0"


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be created here (not root, no CAP_SYS_ADMIN, no iproute2)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def probe() -> str | None:
    """None when ``ip netns add`` works here, else the reason it does not."""
    name = f"{PREFIX}{os.getpid()}probe"
    try:
        res = _ip("netns", "add", name, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"cannot run iproute2's `ip`: {e}"
    if res.returncode != 0:
        return f"`ip netns add` is not permitted here: {res.stderr.strip() or res.returncode} (needs root / CAP_SYS_ADMIN)"
    _ip("netns", "del", name, check=False)
    return None


def _kill_namespace_processes(ns: str) -> None:
    res = _ip("netns", "pids", ns, check=False)
    for pid in res.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete(ns: str) -> None:
    _kill_namespace_processes(ns)
    _ip("netns", "del", ns, check=False)


def remove_stale() -> None:
    """Delete namespaces of earlier runs whose owning process is gone (a SIGKILLed run)."""
    res = _ip("netns", "list", check=False)
    for line in res.stdout.splitlines():
        m = re.match(rf"({PREFIX}(\d+)\w*)", line.strip())
        if m and not Path(f"/proc/{m.group(2)}").exists():
            _delete(m.group(1))


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


class Hosts:
    """``n`` namespaces on one bridge; host i has address 10.77.0.<i+1> on interface eth0."""

    def __init__(self, n: int):
        self.n = n
        self.switch = f"{PREFIX}{os.getpid()}sw"
        self.names = [f"{PREFIX}{os.getpid()}h{i}" for i in range(n)]
        self.procs: list[subprocess.Popen] = []
        self._old_handlers: dict[int, object] = {}

    def address(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def __enter__(self) -> "Hosts":
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, _terminate)
        try:
            remove_stale()
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def _create(self) -> None:
        try:
            _ip("netns", "add", self.switch)
        except subprocess.CalledProcessError as e:
            raise NetnsUnavailable(f"`ip netns add` failed: {e.stderr.strip()}") from None
        sw = ("-n", self.switch)
        _ip(*sw, "link", "add", "br0", "type", "bridge")
        _ip(*sw, "link", "set", "br0", "up")
        for i, ns in enumerate(self.names):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip(*sw, "link", "add", f"p{i}", "type", "veth", "peer", "name", IFACE, "netns", ns)
            _ip(*sw, "link", "set", f"p{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", IFACE)
            _ip("-n", ns, "link", "set", IFACE, "up")

    def popen(self, i: int, argv: Sequence[str], env: dict[str, str], log: IO) -> subprocess.Popen:
        """Start ``argv`` inside host i (own session, so it can be killed as a group)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.names[i], *argv], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        for ns in [*self.names, self.switch]:
            _delete(ns)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def __exit__(self, *exc) -> None:
        self.close()
