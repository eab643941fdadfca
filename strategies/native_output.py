"""Capture what native code (DGL's C++ METIS wrapper, its dmlc LOG lines) writes to file descriptors 1 and 2.

    with captured_native_output() as log:
        part = dgl.metis_partition_assignment(g, k)
    record_info["partition_log"] = log.text

Python's ``redirect_stdout`` cannot see C++ writes; this swaps the process's fd 1/2 for a temporary file
for the duration, so those lines end up in the record instead of on the user's terminal.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Iterator


@dataclass
class NativeLog:
    text: str = ""


@contextlib.contextmanager
def captured_native_output() -> Iterator[NativeLog]:
    """Redirect fds 1 and 2 into a temporary file; on exit restore them and put the text in ``.text``."""
    log = NativeLog()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield log
        finally:
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).fflush(None)  # C stdio buffers written while redirected
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            log.text = tmp.read().decode(errors="replace").strip()
