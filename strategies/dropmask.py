"""Dropout masks keyed by (seed, epoch, layer, vertex, column): ``--dropout-masks keyed``.

    graphpar parity --strategy pipeline --dataset cora --workers 4 --layers 4 --seeds 8   # keyed by default

With the default 'stream' masks, each rank draws its dropout noise from torch's generator, so a strategy's
ranks drop other entries than the single-process reference does: an exact strategy matches the reference
only at dropout 0, and a parity comparison of two runs of the same seed sees two dropout draws as well as
the strategy's own error (at 4 layers the masks alone moved Cora's exact pipeline 0.8-1.6 points over seeds,
notes/staleness.md section 10). Keyed masks are a hash of (seed, epoch, layer, global vertex id, column):
every strategy drops the entries the reference drops wherever it computes a row, exact strategies match the
reference with dropout on, and a stale run differs from its reference by its staleness alone (paired
samples). Each entry is still kept with probability 1 - p, independently: the same training distribution.

The hash is murmur3's 32-bit finaliser (wrapping int64 arithmetic, low 32 bits kept), applied to the row's
vertex id under a per-(seed, epoch, layer) key, then to the column; an entry is kept when its 32-bit value is
at least p * 2^32. The training loop names the epoch (``begin_epoch``) before each ``train_epoch``; a
strategy names the rows (their global vertex ids) and, when it holds a column slice, the first column.
"""
from __future__ import annotations

import torch
from torch import Tensor

MASKS = ("stream", "keyed")
_LOW32 = 0xFFFFFFFF
_BLOCK = 1 << 20  # entries hashed at once: bounds the int64 temporaries on big graphs
_state: dict[str, int] = {}


def begin_epoch(seed: int, epoch: int, num_nodes: int) -> None:
    """Key this process's masks to (seed, epoch); ``num_nodes``: a row-less call must cover the whole graph."""
    _state.update(seed=seed, epoch=epoch, nodes=num_nodes)


def _mix(x):
    """murmur3 fmix32 on values in [0, 2^32) (a Python int or an int64 tensor)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _LOW32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _LOW32
    return x ^ (x >> 16)


def layer_key(seed: int, epoch: int, layer: int) -> int:
    """The 32-bit key of one (seed, epoch, layer)."""
    k = _mix(seed & _LOW32) ^ _mix((seed >> 32) & _LOW32 ^ 0x5BD1E995)
    k = _mix((k + 0x9E3779B9 * (epoch + 1)) & _LOW32)
    return _mix((k ^ (0x27D4EB2F * (layer + 1))) & _LOW32)


def keyed_noise(p: float, layer: int, rows: Tensor | None, n: int, width: int, first_col: int = 0,
                device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """[n, width] dropout noise (0 or 1 / (1 - p)) of layer ``layer``'s input rows ``rows`` (global vertex ids;
    None: vertices 0..n-1, which must be the whole graph), columns first_col.. first_col + width - 1."""
    if not _state:
        raise RuntimeError("keyed dropout masks need the epoch: call dropmask.begin_epoch before training")
    if rows is None:
        if n != _state["nodes"]:
            raise RuntimeError(f"keyed dropout on {n} rows of a {_state['nodes']}-vertex graph: pass their vertex ids")
        rows = torch.arange(n)
    key = layer_key(_state["seed"], _state["epoch"], layer)
    threshold = min(int(round(p * 2.0 ** 32)), 2 ** 32)
    ids = rows.to(device=device, dtype=torch.int64)
    cols = (torch.arange(first_col, first_col + width, device=device, dtype=torch.int64) * 0x165667B1) & _LOW32
    out = torch.empty(n, width, device=device, dtype=dtype)
    step = max(_BLOCK // max(width, 1), 1)
    for lo in range(0, n, step):
        r = _mix((ids[lo:lo + step] & _LOW32) ^ key).unsqueeze(1)
        h = _mix((r + cols) & _LOW32)
        out[lo:lo + step] = (h >= threshold).to(dtype)
    return out.div_(1.0 - p)
