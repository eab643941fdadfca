"""Files replaced atomically through a temp file that no planted link can redirect.

    write_atomic(Path("out/manifest.json"), text.encode())

The temp file is created with ``mkstemp`` (``O_CREAT | O_EXCL``: a file or symlink already at that name
is never opened, never followed) beside the target, flushed, then renamed over it. Temp names carry the
host and pid (``.<file>.<host>.<pid>.<random>.tmp``) so a later write on the same host removes the ones
a killed writer left.
"""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import IO, Callable


def remove_orphans(folder: Path) -> None:
    """Delete temp files left in ``folder`` by writers of this host that were killed mid-write (pid gone)."""
    host = socket.gethostname()
    for tmp in Path(folder).glob(f".*.{host}.*.tmp"):
        try:
            os.kill(int(tmp.name.rsplit(".", 3)[-3]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def write_with(path: Path, fill: Callable[[IO[bytes]], None], mode: int = 0o644) -> None:
    """Create ``path`` atomically: ``fill`` writes the content into an exclusive temp file beside it, which
    is then flushed to disk and renamed into place. OSError (read-only, full disk) leaves no temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{socket.gethostname()}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """``write_with`` for content already in memory."""
    write_with(path, lambda f: f.write(data), mode)
