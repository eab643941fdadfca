"""Reading pickled graph files without running code from them.

    from graphpar.datasets.safeload import restricted_load
    x = restricted_load(open("ind.cora.x", "rb"))      # a scipy CSR matrix, or an UnsafeDataError

Planetoid's ``ind.*`` files and the npz graphs' object arrays are pickles. ``pickle.load`` on them would
run whatever a planted file names; this unpickler admits only the types those files contain (numpy
arrays and dtypes, scipy's sparse matrices, dict/list/defaultdict) and refuses every other global with
one line naming it, so a crafted file can build data but never call a function of its choosing.
"""
from __future__ import annotations

import collections
import functools
import pickle
from typing import Any, BinaryIO

import numpy as np
from numpy.core import multiarray


class UnsafeDataError(ValueError):
    """A data file names a type outside the allowed set (a crafted or foreign pickle)."""


@functools.lru_cache(maxsize=1)
def _allowed() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for every global the graph files may name (built lazily: scipy is optional)."""
    allowed: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "defaultdict"): collections.defaultdict,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for module in ("__builtin__", "builtins"):
        for name, obj in (("list", list), ("dict", dict), ("tuple", tuple), ("set", set), ("int", int),
                          ("float", float), ("bool", bool), ("str", str), ("bytes", bytes)):
            allowed[(module, name)] = obj
    try:
        import scipy.sparse as sp  # noqa: PLC0415
    except ImportError:  # no scipy: sparse pickles are refused like any other type
        return allowed
    for kind in ("csr", "csc", "coo"):
        cls = getattr(sp, f"{kind}_matrix")
        for module in (f"scipy.sparse.{kind}", f"scipy.sparse._{kind}", "scipy.sparse"):
            allowed[(module, f"{kind}_matrix")] = cls
    return allowed


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed()[(module, name)]
        except KeyError:
            raise UnsafeDataError(f"refusing to load {module}.{name} from a data file: only numpy arrays, "
                                  "scipy sparse matrices and plain containers are read") from None


def restricted_load(f: BinaryIO, encoding: str = "latin1") -> Any:
    """Unpickle ``f`` admitting only numpy/scipy data types; UnsafeDataError names anything else."""
    try:
        return _Restricted(f, encoding=encoding).load()
    except UnsafeDataError:
        raise
    except Exception as e:  # noqa: BLE001  (a truncated or garbled pickle: one line, not a traceback)
        raise ValueError(f"unreadable pickle data ({type(e).__name__}: {e})") from None


