"""graphpar's tensor files: safetensors layout, JSON header, one hash over everything the loader trusts,
no code path from the file to the interpreter, exclusive temp files."""
import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphpar.datasets.tensorfile import read_header, read_tensors, write_tensors

TENSORS = {
    "f32": torch.randn(5, 3), "i64": torch.arange(7, dtype=torch.int64), "mask": torch.tensor([True, False, True]),
    "i32": torch.arange(4, dtype=torch.int32), "empty": torch.empty(0, 4), "f64": torch.tensor([1.5], dtype=torch.float64),
    "u8": torch.tensor([1, 255], dtype=torch.uint8),
}
HEADER = {"format": 7, "name": "x", "meta": {"nested": [1, 2, {"a": None}]}}


@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip_keeps_every_tensor_and_header(tmp_path, mmap):
    path = tmp_path / "t.safetensors"
    write_tensors(path, TENSORS, HEADER)
    tensors, header, why = read_tensors(path, 7, mmap=mmap)
    assert why == "" and header == HEADER and set(tensors) == set(TENSORS)
    for k, t in TENSORS.items():
        assert tensors[k].dtype == t.dtype and torch.equal(tensors[k], t), k
    tensors["f32"][0, 0] = 99.0  # views of a private mapping: writable, never written back
    assert read_tensors(path, 7)[0]["f32"][0, 0] == TENSORS["f32"][0, 0]
    assert read_header(path) == HEADER


def test_files_are_plain_safetensors(tmp_path):
    """Any safetensors reader opens them; a safetensors file without our header is refused, not guessed at."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "t.safetensors"
    write_tensors(path, TENSORS, HEADER)
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["graphpar"]) == HEADER
        for k in f.keys():
            assert torch.equal(f.get_tensor(k), TENSORS[k]), k
    foreign = tmp_path / "foreign.safetensors"
    save_file({"a": torch.zeros(3)}, str(foreign))
    tensors, header, why = read_tensors(foreign)
    assert tensors is None and "not a graphpar tensor file" in why


def test_wrong_format_is_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    write_tensors(path, TENSORS, HEADER)
    assert read_tensors(path, 8) == (None, None, "format 7, expected 8")


def _set_header(path: Path, edit) -> None:
    """Rewrite the safetensors JSON header in place (same data), as an editor of the file would."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    entries = json.loads(raw[8:8 + n])
    edit(entries)
    head = json.dumps(entries).encode()
    head += b" " * (-(8 + len(head)) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + raw[8 + n:])


def _graphpar_header(edit):
    def apply(entries):
        h = json.loads(entries["__metadata__"]["graphpar"])
        edit(h)
        entries["__metadata__"]["graphpar"] = json.dumps(h)
    return apply


DAMAGE = {
    "flipped data byte": lambda p: p.write_bytes(p.read_bytes()[:-3] + bytes([p.read_bytes()[-3] ^ 1]) + p.read_bytes()[-2:]),
    "header field edited": lambda p: _set_header(p, _graphpar_header(lambda h: h.update(name="y"))),
    "header field added": lambda p: _set_header(p, _graphpar_header(lambda h: h.update(_hash="0" * 16))),
    "shape edited": lambda p: _set_header(p, lambda e: e["i64"].update(shape=[1, 7])),
    "offsets overlap": lambda p: _set_header(p, lambda e: e["u8"].update(data_offsets=[0, 2])),
    "offsets past the end": lambda p: _set_header(p, lambda e: e["u8"].update(data_offsets=[10**9, 10**9 + 2])),
    "hash removed": lambda p: _set_header(p, lambda e: e["__metadata__"].pop("graphpar.sha256")),
    "unknown dtype": lambda p: _set_header(p, lambda e: e["u8"].update(dtype="OBJ")),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-5]),
    "huge header length": lambda p: p.write_bytes(struct.pack("<Q", 2**62) + p.read_bytes()[8:]),
    "empty": lambda p: p.write_bytes(b""),
    "not json": lambda p: p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{]"),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_damaged_or_edited_files_are_refused(tmp_path, damage):
    path = tmp_path / "t.safetensors"
    write_tensors(path, TENSORS, HEADER)
    DAMAGE[damage](path)
    tensors, header, why = read_tensors(path, 7)
    assert tensors is None and header is None and why and "\n" not in why, why


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_carrying_files_are_refused_without_torch_load(tmp_path, monkeypatch):
    """TorchScript archives, torch.save zips and pickles at a tensor file's path: refused by parsing alone
    (torch < 2.6 runs a TorchScript archive from torch.load even with weights_only=True)."""
    marker = tmp_path / "PAYLOAD_RAN"
    script = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(script))
    saved = tmp_path / "saved.pt"
    torch.save({"x": Payload(marker)}, saved)
    pickled = tmp_path / "pickled.pkl"
    pickled.write_bytes(pickle.dumps({"x": Payload(marker)}))
    for owner, name in ((torch, "load"), (torch.jit, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(owner, name, lambda *_a, **_k: pytest.fail("a code path that can run code was reached"))
    for path in (script, saved, pickled):
        tensors, _, why = read_tensors(path)
        assert tensors is None and why, path
        assert read_header(path) is None
    assert not marker.exists()


def test_a_planted_link_at_the_target_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "t.safetensors").symlink_to(outside)
    write_tensors(folder / "t.safetensors", TENSORS, HEADER)
    assert outside.read_text() == "keep me"
    assert not (folder / "t.safetensors").is_symlink() and read_tensors(folder / "t.safetensors")[0] is not None


def test_a_failed_write_raises_oserror_and_leaves_nothing(tmp_path):
    """A full disk (here RLIMIT_FSIZE, SIGXFSZ ignored: EFBIG): OSError, no temp file, no target."""
    code = (
        "import resource, signal, sys, torch\n"
        "from graphpar.datasets.tensorfile import write_tensors\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        "    write_tensors(sys.argv[1], {'x': torch.zeros(100_000)}, {'format': 1})\n"
        "except OSError as e:\n"
        "    print('oserror', e.errno)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.safetensors")], capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.startswith("oserror"), (out.stdout, out.stderr)
    assert list(tmp_path.iterdir()) == []


def test_cache_that_cannot_be_written_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    import errno

    from graphpar.datasets import graph as graph_module
    from graphpar.datasets import load_dataset
    from graphpar.strategies.partitioning import partitioner

    def full_disk(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(graph_module, "write_tensors", full_disk)
    monkeypatch.setattr(partitioner, "write_tensors", full_disk)
    g = load_dataset("rmat:nodes=300,edges=900,feat=4,classes=3,seed=9")
    part = partitioner.partition(g, 2, "metis")
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert g.num_nodes == 300 and part.part_id.numel() == 300
    assert len(err) == 2 and all("No space left" in line and "uncached" in line for line in err), err
