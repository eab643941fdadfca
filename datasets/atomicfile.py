"""Files replaced whole or not at all, through a temp file that no planted link can redirect.

    write_atomic(Path("out/manifest.json"), text)
    with replacing(Path("out/fig.png")) as f:          # for a writer that takes a file object
        fig.savefig(f, format="png")

The temp file is created with ``mkstemp`` (``O_CREAT | O_EXCL``: a file or symlink already at that name
is never opened, never followed) beside the target, given the mode ``open()`` would give, flushed to disk,
then renamed over the target: the target appears complete or keeps its old content. A failure raises the
original OSError and leaves no temp file. Temp names carry host and pid (``.<file>.<host>.<pid>.<random>.tmp``)
so a later write on the same host removes the ones a killed writer left.
"""
from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator


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


def _umask() -> int:
    """This process's umask, read without changing it where Linux says it (no window for other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path: Path, mode: str = "wb", **open_kw) -> Iterator[IO]:
    """A file object on a fresh exclusive temp file beside ``path`` (folders made); moved over ``path`` when
    the block ends without an exception, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{socket.gethostname()}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() would have given (mkstemp: 0600)
        with os.fdopen(fd, mode, **open_kw) as f:
            fd = -1
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_with(path: Path, fill: Callable[[IO[bytes]], None]) -> None:
    """Create ``path`` atomically, ``fill`` writing its content (see ``replacing``)."""
    with replacing(path) as f:
        fill(f)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically; str is written as UTF-8."""
    with replacing(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)
