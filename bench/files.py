"""Output files written whole or not at all, never through a planted link.

    replace_file(Path("results/baseline.json"), text)      # temp created exclusively beside it, then os.replace
    with replacing(Path("out/fig.png")) as f:              # the same, for a writer that takes a file object
        fig.savefig(f, format="png")

The temporary file is made by ``tempfile.mkstemp`` in the destination's folder (a random name, created with
O_EXCL, so a symlink or file planted under a predictable name is never followed or overwritten); the
destination appears complete or keeps its old content, and a failed write leaves no temporary behind and
raises RecordError (one line: the CLI exits 1).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .errors import RecordError


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
    """A file object on a fresh temporary beside ``path`` (folders made); moved over ``path`` on success."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise RecordError(f"{path}: not written ({e.strerror or e}); pass a writable folder and rerun") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() would have given (mkstemp: 0600)
        with os.fdopen(fd, mode, **open_kw) as f:
            fd = -1
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise RecordError(f"{path}: not written ({e.strerror or e}), left as it was; free space on that disk "
                              "or pass another path, and rerun") from None
        raise


def replace_file(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``replacing``); str is written as UTF-8."""
    with replacing(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)
