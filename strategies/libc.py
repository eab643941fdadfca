"""The C library's allocator knobs (glibc; nothing elsewhere), in one place.

    mallopt(M_MMAP_THRESHOLD, 1 << 20)   # True where it was applied
    malloc_trim()                        # hand the heap's free pages back to the OS

Memory figures (peak RSS per rank) and METIS's determinism depend on these; on a C library without them
(musl, macOS) every call is a no-op and says so by returning False.
"""
from __future__ import annotations

import ctypes
import functools

M_MMAP_THRESHOLD = -3  # allocations of at least this many bytes come from mmap, so freeing them returns them
M_PERTURB = -6  # fill fresh allocations with this byte (0: off)


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        lib = ctypes.CDLL(None)
        lib.mallopt, lib.malloc_trim  # noqa: B018  (glibc's, or AttributeError)
        return lib
    except (OSError, AttributeError):
        return None


def mallopt(param: int, value: int) -> bool:
    """glibc ``mallopt(param, value)``; False where there is no such call or it refused."""
    lib = _libc()
    return bool(lib is not None and lib.mallopt(param, value))


def malloc_trim() -> bool:
    """glibc ``malloc_trim(0)``: freed heap pages back to the OS; False where there is no such call."""
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
