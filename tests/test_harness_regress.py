"""CI regression gate: passes on a rerun, fails when communication grows or compute gets 2x slower."""
from __future__ import annotations

import copy

import pytest
from helpers import fake_record

from graphpar.bench.harness import regress

TAGS = {"layer1/halo/fwd": ("all_to_all", 2, 40_000), "grad/allreduce": ("all_reduce", 1, 8_000)}


def _ci_records(time_scale: float = 1.0, extra_bytes: int = 0, noise: float = 1.0,
               probe_s: float = 0.01) -> list[dict]:
    tags = dict(TAGS)
    if extra_bytes:
        op, calls, nbytes = tags["layer1/halo/fwd"]
        tags["layer1/halo/fwd"] = (op, calls, nbytes + extra_bytes)
    recs = []
    for _ in range(2):  # two interleaved rounds
        recs.append(fake_record("single", 1, compute_s=0.1 * noise, probe_s=probe_s * noise))
        recs.append(fake_record("alpha", 2, compute_s=0.06 * noise, tags=tags, comm_s=0.01, time_scale=time_scale,
                                probe_s=probe_s * noise))
    return recs


def _verdict(records: list[dict]) -> tuple[list, bool]:
    base = {"entries": regress.measure(_ci_records())}
    return regress.compare(base, regress.measure(records))


def test_same_numbers_pass_and_noise_is_tolerated():
    rows, failed = _verdict(_ci_records())
    assert not failed and all(r[-1] in ("ok", "info") for r in rows)
    rows, failed = _verdict(_ci_records(noise=1.3))  # a 30% slower machine (or a loaded one): probe moves too
    assert not failed
    rows, failed = _verdict(_ci_records(time_scale=1.2))  # 20% more compute: inside the margin
    assert not failed


def test_larger_communication_fails():
    rows, failed = _verdict(_ci_records(extra_bytes=4))
    assert failed
    moved = [r for r in rows if r[-1] == "FAIL"]
    assert moved and moved[0][1] == "bytes train:layer1/halo/fwd" and moved[0][0] == "alpha@toy@gcn@P2"
    assert "FAIL" in regress.table(rows, only_moved=True)


def test_slower_compute_fails():
    rows, failed = _verdict(_ci_records(time_scale=1.5))
    assert failed
    (row,) = [r for r in rows if r[-1] == "FAIL"]
    assert row[1] == "cpu/probe" and row[4].startswith("1.50x")  # compute CPU only: comm is not in it
    assert any(r[1] == "wall/single" and r[-1] == "info" for r in rows)  # wall: advisory, never FAIL


def test_failed_run_and_new_entries():
    recs = _ci_records()
    broken = copy.deepcopy(recs)
    broken[1] = {"status": "failed", "error": "rank 1 died", "config": recs[1]["config"]}
    broken[3] = {"status": "failed", "error": "rank 1 died", "config": recs[3]["config"]}
    rows, failed = _verdict(broken)
    assert failed and any(r[1] == "run" for r in rows)
    base = {"entries": {}}
    rows, failed = regress.compare(base, regress.measure(recs))
    assert not failed and {r[-1] for r in rows} == {"NEW"}


@pytest.mark.slow  # timed on real CPU: a timing test does not belong in the fast tier (it flaked under load)
def test_single_gated_against_probe_end_to_end(monkeypatch, tmp_path):
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("GRAPHPAR_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        _single_gate(monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _single_gate(monkeypatch):
    """Real in-process training of ``single``: GRAPHPAR_SLOWDOWN=single:1.5 (a CPU busy-loop) makes the gate
    fail, and an unchanged rerun passes (the load proof is tests/test_ci_gate.py, slow tier)."""
    from graphpar.bench.record import build_record
    from graphpar.bench.runtime.loop import train_local
    from graphpar.datasets import load_dataset
    from graphpar.strategies import TrainConfig

    def runner(cfg):
        c = TrainConfig.from_dict(cfg)
        return build_record(cfg, {"name": cfg["dataset"]}, train_local(c, load_dataset(c.dataset), keep_params=False))

    spec = {
        "strategies": ["single"], "workers": 2, "rounds": 2, "margin": 1.25, "margins": {}, "threads": 1,
        "datasets": ["rmat:nodes=400,edges=4000,feat=64,classes=4,seed=2"],
        "fixed": {"epochs": 6, "hidden": 64, "dropout": 0.0}}
    records, _ = regress.run_ci(spec, runner=runner)
    base = {"entries": regress.measure(records)}
    assert base["entries"]["single@rmat:nodes=400,edges=4000,feat=64,classes=4,seed=2@gcn@P1"]["cpu_per_probe"] > 0
    rows, failed = regress.compare(base, regress.measure(regress.run_ci(spec, runner=runner)[0]))
    assert not failed, regress.table(rows)
    monkeypatch.setenv("GRAPHPAR_SLOWDOWN", "single:1.5")
    rows, failed = regress.compare(base, regress.measure(regress.run_ci(spec, runner=runner)[0]))
    assert failed, regress.table(rows)


@pytest.mark.parametrize("key", ["strategies", "rounds", "margin"])
def test_ci_spec_in_repo_is_complete(key):
    spec = regress.load_spec("results/ci_configs.yaml")
    assert key in spec and len(spec["datasets"]) == 2
