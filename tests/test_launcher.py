"""The launcher: P=2 and P=4 local runs through torch's elastic agent; a dead worker fails the run fast."""
import os
import subprocess
import sys
import time

import pytest

from graphpar.strategies import registered

MULTI = "partition" if "partition" in registered() else next((n for n in registered() if n != "single"), None)
pytestmark = pytest.mark.skipif(MULTI is None, reason="no multi-worker strategy registered")


@pytest.mark.parametrize("workers", [2, 4])
def test_launch_runs_p_ranks(workers):
    from graphpar.bench.runtime.launcher import launch
    from graphpar.strategies import TrainConfig

    cfg = TrainConfig(strategy=MULTI, dataset="cora", workers=workers, epochs=2, hidden=8)
    ranks = launch(cfg)
    assert [r["rank"] for r in ranks] == list(range(workers))
    assert all(len(r["epochs"]) == 2 for r in ranks)
    assert len({round(r["epochs"][-1]["loss"], 6) for r in ranks}) == 1, "every rank reports the global loss"


@pytest.mark.parametrize("mode", ["kill", "raise"])
def test_dead_worker_fails_the_run_fast_with_traceback(tmp_path, mode):
    env = dict(os.environ, GRAPHPAR_FAULT=f"1:1:{mode}")
    out = tmp_path / "runs.jsonl"
    start = time.time()
    res = subprocess.run([sys.executable, "-m", "graphpar.bench.cli", "run", "--strategy", MULTI, "--dataset", "cora",
                          "--workers", "2", "--epochs", "50", "--timeout", "120", "--out", str(out)],
                         capture_output=True, text=True, timeout=180, env=env)
    elapsed = time.time() - start
    assert res.returncode == 1, res.stderr[-2000:]
    assert "run failed: rank 1" in res.stderr
    if mode == "raise":
        assert "injected fault on rank 1" in res.stderr
    assert not out.exists(), "a failed run writes no record"
    assert elapsed < 100, f"failure took {elapsed:.0f}s to surface"


def test_silent_ranks_are_judged_from_their_last_beat_or_the_launch(tmp_path):
    """A rank silent past the limit is named with its silence; one that never beat is judged from the launch
    plus the start-up grace; a beating rank is not."""
    import os

    from graphpar.bench.runtime import heartbeat

    now = 10_000.0
    (tmp_path / "rank-0").write_text("1")
    os.utime(tmp_path / "rank-0", (now - 3, now - 3))
    (tmp_path / "rank-1").write_text("2")
    os.utime(tmp_path / "rank-1", (now - 20, now - 20))
    assert heartbeat.silent_ranks(tmp_path, [0, 1], started=now - 100, limit_s=10, now=now) == [(1, 20.0)]
    grace = heartbeat.STARTUP_GRACE_S
    assert heartbeat.silent_ranks(tmp_path, [2], started=now - 10 - grace + 1, limit_s=10, now=now) == []
    assert heartbeat.silent_ranks(tmp_path, [2], started=now - 10 - grace - 1, limit_s=10, now=now) == [(2, 11 + grace)]
