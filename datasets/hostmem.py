"""This host's memory available now, for the checks that refuse work before anything is allocated.

    have = available_bytes()      # bytes, or None where the OS does not say
    check_fits(need, "its arrays", "pass a smaller graph")   # ValueError: one line with both figures
    f"{gib(have)}"                # '23.1 GiB'

``available_bytes`` is /proc/meminfo's MemAvailable, lowered to a cgroup v2 limit's headroom (memory.max
minus memory.current) where one applies. ``GRAPHPAR_MEM_AVAILABLE`` overrides it: a number of bytes,
optionally with a binary suffix (``512M``, ``24G``, ``1T``). The tests set it to make a refusal
deterministic; a user may set it to claim more (or less) than the host reports.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

ENV = "GRAPHPAR_MEM_AVAILABLE"
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``24G`` -> bytes (binary units; a plain number is bytes); ValueError naming the form otherwise."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"{ENV}={text!r}: pass a number of bytes, optionally with K, M, G or T (e.g. 24G), "
                         "or unset it")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup v2 (None without a limit)."""
    try:
        rel = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
        folder = Path("/sys/fs/cgroup") / rel.strip().lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text()))
    except (OSError, ValueError, StopIteration):
        return None


def available_bytes() -> int | None:
    """Bytes this host can give now (``GRAPHPAR_MEM_AVAILABLE`` if set; ValueError if it is malformed)."""
    override = os.environ.get(ENV)
    if override is not None and override.strip():
        return parse_size(override)
    found = [b for b in (_meminfo_available(), _cgroup_headroom()) if b is not None]
    return min(found) if found else None


def check_fits(need: int, what: str, fix: str, available: int | None = None) -> None:
    """ValueError ``"{what} need about X GiB, Y GiB is available; {fix}"`` when ``need`` bytes exceed the
    memory available now (``available`` if given); nothing where the host does not say."""
    have = available_bytes() if available is None else available
    if have is not None and need > have:
        raise ValueError(f"{what} need about {gib(need)}, {gib(have)} is available; {fix}")


def gib(n: float) -> str:
    """Bytes as GiB for a one-line message (``65.9 GiB``, ``1.04 GiB``, ``0.0012 GiB``)."""
    g = n / (1 << 30)
    return f"{g:.1f} GiB" if g >= 10 else f"{g:.2f} GiB" if g >= 0.1 else f"{g:.2g} GiB"
