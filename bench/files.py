"""Output files written whole or not at all, never through a planted link; failures as one line.

    replace_file(Path("results/baseline.json"), text)
    with replacing(Path("out/fig.png")) as f:
        fig.savefig(f, format="png")

``graphpar.datasets.atomicfile`` does the writing (exclusive temp file beside the target, fsync, rename);
here an OSError becomes RecordError (one line naming the path and the fix: the CLI exits 1), and the target
keeps its old content.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, Iterator

from graphpar.datasets import atomicfile

from .errors import RecordError


def _failed(path: Path, e: OSError) -> RecordError:
    return RecordError(f"{path}: not written ({e.strerror or e}), left as it was; free space on that disk or "
                       "pass another path, and rerun")


@contextlib.contextmanager
def replacing(path: Path, mode: str = "wb", **open_kw) -> Iterator[IO]:
    """``atomicfile.replacing`` with OSError turned into RecordError."""
    try:
        with atomicfile.replacing(Path(path), mode, **open_kw) as f:
            yield f
    except OSError as e:
        raise _failed(Path(path), e) from None


def replace_file(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (see ``replacing``); str is written as UTF-8."""
    try:
        atomicfile.write_atomic(Path(path), data)
    except OSError as e:
        raise _failed(Path(path), e) from None
