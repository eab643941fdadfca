"""Tensor files that cannot run code: the safetensors layout, a JSON header, one content hash.

    write_tensors(path, {"src": src, "dst": dst}, {"format": 5, "name": "cora"})
    tensors, header, why = read_tensors(path, version=5, mmap=True)   # (None, None, why) when unusable

Every cache and part file graphpar writes is one of these. The layout is safetensors' (an 8-byte
little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then the raw
bytes): there is no pickle, no zip archive, no TorchScript code path; reading one is parsing JSON and
mapping bytes, so a planted file can at worst be refused. The files open with ``safetensors.safe_open``
and any other safetensors reader.

Our header (JSON, stored as the safetensors metadata entry ``graphpar``) and a sha256 (``graphpar.sha256``)
over that header and every tensor's name, dtype, shape and bytes travel in the file. ``read_tensors``
recomputes the hash on every read (a streaming pass with ``pread``: the pages it reads are not kept in
this process) and refuses a file whose hash differs, so a truncated, garbled or edited file is never used.
The hash is integrity, not authenticity: whoever can write the file can also write a matching hash.

Writes go through ``atomicfile.write_with``: an exclusive temp file beside the target (a planted symlink
is never followed), flushed, then renamed into place.
"""
from __future__ import annotations

import hashlib
import io
import json
import mmap as _mmap
import os
import struct
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import torch
from torch import Tensor

from .atomicfile import write_with

META_HEADER = "graphpar"
META_HASH = "graphpar.sha256"
MAX_HEADER_BYTES = 64 << 20  # safetensors' readers refuse more than 100 MB; ours never come near
_CHUNK = 8 << 20

# safetensors dtype names <-> torch dtypes (the ones a graph or a partition holds)
_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "I64": torch.int64, "I32": torch.int32,
    "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
_NUMPY = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64,
          torch.int32: np.int32, torch.int16: np.int16, torch.int8: np.int8, torch.uint8: np.uint8,
          torch.bool: np.bool_}


class TensorFileError(ValueError):
    """A tensor file is unreadable, malformed, of another format, or fails its hash."""


def _bytes_of(t: Tensor) -> memoryview:
    """The tensor's raw bytes, without a copy when it is contiguous."""
    arr = t.detach().cpu().contiguous().numpy()
    return memoryview(arr.reshape(-1)).cast("B") if arr.size else memoryview(b"")


def _digest_start(header_json: str) -> "hashlib._Hash":
    h = hashlib.sha256()
    h.update(b"graphpar.tensors/1\0")
    h.update(header_json.encode())
    return h


def _tensor_tag(name: str, dtype: str, shape: list[int]) -> bytes:
    return f"\0{name}\0{dtype}\0{shape}\0".encode()


def _canonical(header: dict[str, Any]) -> str:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), default=str)


def write_tensors(path: Path, tensors: dict[str, Tensor], header: dict[str, Any]) -> None:
    """Write ``tensors`` and the JSON-able ``header`` to ``path`` atomically (exclusive temp file + rename).

    Raises OSError when the folder cannot be written (read-only, full disk); no temp file is left."""
    write_with(Path(path), _writer(tensors, header))


def tensors_to_bytes(tensors: dict[str, Tensor], header: dict[str, Any]) -> bytes:
    """The bytes ``write_tensors`` would write (for messages between processes)."""
    buf = io.BytesIO()
    _writer(tensors, header)(buf)
    return buf.getvalue()


def tensors_from_bytes(data: bytes) -> tuple[dict[str, Tensor] | None, dict[str, Any] | None, str]:
    """``read_tensors`` for bytes in memory (tensors are copies)."""
    view = memoryview(data)

    def read(n: int, offset: int) -> bytes:
        return bytes(view[offset:offset + n])

    try:
        return (*_decode(read, len(data), None, lambda: bytearray(data), copy=False)[:2], "")
    except TensorFileError as e:
        return None, None, str(e)


def _writer(tensors: dict[str, Tensor], header: dict[str, Any]) -> Callable[[IO[bytes]], None]:
    """A function writing the file's bytes to a binary stream."""
    for name, t in tensors.items():
        if not isinstance(t, Tensor) or t.dtype not in _NAMES:
            raise TypeError(f"tensor file entry {name!r}: {getattr(t, 'dtype', type(t))} is not storable")
    header_json = _canonical(header)
    # largest element first: every tensor then starts at a multiple of its own element size
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    digest = _digest_start(header_json)
    entries: dict[str, Any] = {}
    offset = 0
    for name in order:
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        entries[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    for name in sorted(tensors):
        e = entries[name]
        digest.update(_tensor_tag(name, e["dtype"], e["shape"]))
        digest.update(_bytes_of(tensors[name]))
    entries["__metadata__"] = {META_HEADER: header_json, META_HASH: digest.hexdigest()}
    raw = json.dumps(entries, separators=(",", ":")).encode()
    raw += b" " * (-(8 + len(raw)) % 8)  # the data starts 8-byte aligned, as safetensors writes it

    def fill(f: IO[bytes]) -> None:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in order:
            f.write(_bytes_of(tensors[name]))

    return fill


Reader = Callable[[int, int], bytes]  # (length, offset) -> bytes


def _parse_layout(read: Reader, size: int) -> tuple[dict[str, Any], int]:
    """(entries, data_start) of a safetensors file, every entry checked against the file's size."""
    if size < 8:
        raise TensorFileError("shorter than a safetensors header")
    (n,) = struct.unpack("<Q", read(8, 0))
    if n > MAX_HEADER_BYTES or 8 + n > size:
        raise TensorFileError(f"header length {n} does not fit the file ({size} bytes)")
    try:
        entries = json.loads(read(n, 8).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TensorFileError(f"header is not JSON ({type(e).__name__})") from None
    if not isinstance(entries, dict):
        raise TensorFileError("header is not a JSON object")
    data_start, data_len = 8 + n, size - 8 - n
    spans = []
    for name, e in entries.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(e, dict) and e.get("dtype") in _DTYPES and isinstance(e.get("shape"), list)
              and all(isinstance(d, int) and d >= 0 for d in e["shape"])
              and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2
              and all(isinstance(o, int) for o in e["data_offsets"]))
        if not ok:
            raise TensorFileError(f"entry {name!r} is malformed")
        begin, end = e["data_offsets"]
        want = int(np.prod(e["shape"], dtype=np.int64)) * torch.empty(0, dtype=_DTYPES[e["dtype"]]).element_size()
        if not 0 <= begin <= end <= data_len or end - begin != want:
            raise TensorFileError(f"entry {name!r} has byte range {begin}..{end}, needs {want} bytes within {data_len}")
        spans.append((begin, end))
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        raise TensorFileError("tensors overlap")
    return entries, data_start


def _hash_of(read: Reader, entries: dict[str, Any], data_start: int, header_json: str) -> str:
    digest = _digest_start(header_json)
    for name in sorted(k for k in entries if k != "__metadata__"):
        e = entries[name]
        digest.update(_tensor_tag(name, e["dtype"], e["shape"]))
        pos, end = data_start + e["data_offsets"][0], data_start + e["data_offsets"][1]
        while pos < end:
            chunk = read(min(_CHUNK, end - pos), pos)
            if not chunk:
                raise TensorFileError("file shrank while being read")
            digest.update(chunk)
            pos += len(chunk)
    return digest.hexdigest()


def _tensor_from(buf: Any, e: dict[str, Any], data_start: int, copy: bool) -> Tensor:
    dtype, shape = _DTYPES[e["dtype"]], tuple(e["shape"])
    begin, end = e["data_offsets"]
    if end == begin:
        return torch.empty(shape, dtype=dtype)
    arr = np.frombuffer(buf, dtype=_NUMPY[dtype], count=int(np.prod(shape, dtype=np.int64)),
                        offset=data_start + begin).reshape(shape)
    t = torch.from_numpy(arr)
    return t.clone() if copy else t


def read_tensors(path: Path, version: int | None = None,
                 mmap: bool = False) -> tuple[dict[str, Tensor] | None, dict[str, Any] | None, str]:
    """(tensors, header, "") of a file ``write_tensors`` wrote, or (None, None, why) when it is unreadable,
    not a graphpar tensor file, of another ``header["format"]`` than ``version``, or fails its hash.

    ``mmap``: the tensors are views of the file mapped copy-on-write (pages read when touched, writes stay
    private); otherwise they are copies and the file is closed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return None, None, f"{type(e).__name__}: {e.strerror}"
    try:
        size = os.fstat(fd).st_size

        def read(n: int, offset: int) -> bytes:
            return os.pread(fd, n, offset)

        def mapping() -> Any:
            return _mmap.mmap(fd, size, flags=_mmap.MAP_PRIVATE, prot=_mmap.PROT_READ | _mmap.PROT_WRITE)

        tensors, header, buf = _decode(read, size, version, mapping, copy=not mmap)
        if not mmap and isinstance(buf, _mmap.mmap):
            try:
                buf.close()
            except BufferError:  # a view still alive somewhere: the mapping goes with it
                pass
        return tensors, header, ""
    except TensorFileError as e:
        return None, None, str(e)
    except OSError as e:
        return None, None, f"{type(e).__name__}: {e.strerror or e}"
    finally:
        os.close(fd)


def _decode(read: Reader, size: int, version: int | None, mapping: Callable[[], Any],
            copy: bool) -> tuple[dict[str, Tensor], dict[str, Any], Any]:
    """(tensors, header, buffer) after every check; raises TensorFileError."""
    entries, data_start = _parse_layout(read, size)
    meta = entries.get("__metadata__")
    if not isinstance(meta, dict) or not isinstance(meta.get(META_HEADER), str) or META_HASH not in meta:
        raise TensorFileError("not a graphpar tensor file (no graphpar header)")
    header_json = meta[META_HEADER]
    try:
        header = json.loads(header_json)
    except ValueError:
        raise TensorFileError("graphpar header is not JSON") from None
    if not isinstance(header, dict):
        raise TensorFileError("graphpar header is not a JSON object")
    if version is not None and header.get("format") != version:
        raise TensorFileError(f"format {header.get('format')!r}, expected {version}")
    stored = meta[META_HASH]
    actual = _hash_of(read, entries, data_start, header_json)
    if actual != stored:
        raise TensorFileError(f"content hash {actual[:16]} differs from the stored {str(stored)[:16]}")
    buf = b"" if size == data_start else mapping()
    tensors = {k: _tensor_from(buf, e, data_start, copy) for k, e in entries.items() if k != "__metadata__"}
    return tensors, header, buf


def read_header(path: Path) -> dict[str, Any] | None:
    """Only the graphpar header of a tensor file (no tensor read, no hash checked), or None when unreadable.

    For cheap consistency checks before a run (a manifest against its parts); ``read_tensors`` still
    verifies everything when the file is used."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        entries, _ = _parse_layout(lambda n, offset: os.pread(fd, n, offset), os.fstat(fd).st_size)
        header = json.loads(entries.get("__metadata__", {}).get(META_HEADER, "null"))
        return header if isinstance(header, dict) else None
    except (TensorFileError, OSError, ValueError, AttributeError, TypeError):
        return None
    finally:
        os.close(fd)
