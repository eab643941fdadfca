"""Results between processes as data only: JSON for the structure, a tensor file for the tensors.

    blob = pack({"loss": [0.7, 0.6], "params": {"w": torch.ones(3)}})
    obj = unpack(blob)      # the same structure; ValueError when the bytes are not such a message

What a rank sends back to rank 0 (or to the launching process) is never unpickled and never goes
through ``torch.load`` (whose TorchScript path runs code in torch < 2.6 even with ``weights_only``):
containers, strings, numbers, booleans, None and tensors only; anything else is refused by the sender.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch

from graphpar.datasets.tensorfile import tensors_from_bytes, tensors_to_bytes

FORMAT = "graphpar.wire/1"


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return {"__float__": repr(obj)} if isinstance(obj, float) and not math.isfinite(obj) else obj
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors)
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, tensors) for v in obj]
        return items if isinstance(obj, list) else {"__tuple__": items}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"cannot send a {type(obj).__name__} between processes (data only: containers, numbers, "
                    "strings, tensors)")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_freeze(_decode(k, tensors)): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _freeze(key: Any) -> Any:
    return tuple(_freeze(k) for k in key) if isinstance(key, (list, tuple)) else key


def pack(obj: Any) -> bytes:
    """``obj`` as bytes (TypeError for anything that is not data)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(obj, tensors)
    return tensors_to_bytes(tensors, {"format": FORMAT, "structure": json.dumps(structure, allow_nan=False)})


def unpack(data: bytes) -> Any:
    """The object ``pack`` encoded; ValueError naming why when the bytes are not such a message."""
    tensors, header, why = tensors_from_bytes(bytes(data))
    if tensors is None or header.get("format") != FORMAT:
        raise ValueError(f"not a graphpar message ({why or 'another format'})")
    try:
        return _decode(json.loads(header["structure"]), tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a graphpar message ({type(e).__name__}: {e})") from None
