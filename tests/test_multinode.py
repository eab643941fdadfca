"""Across hosts for real: launchers in Linux network namespaces agree with one host, and fail together.

    .venv/bin/python -m pytest -q tests/test_multinode.py          # one strategy + the failure test
    GRAPHPAR_FULL_TESTS=1 .venv/bin/python -m pytest -q tests/test_multinode.py   # every strategy

Wraps tests/multinode/run_netns.py (``make test-multinode`` runs it for every registered strategy).
Skips, saying why, where ``ip netns add`` is not permitted (not root, no CAP_SYS_ADMIN, no iproute2).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "multinode" / "run_netns.py"
sys.path.insert(0, str(HERE / "multinode"))
from netns import probe  # noqa: E402

EXIT_NO_NETNS = 77


def _skip_reason() -> str | None:
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (`ip netns add`)"
    return probe()


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=f"multi-host test: {_skip_reason()}")


def _strategies() -> list[str]:
    from graphpar.strategies import registered

    return [n for n in registered() if n != "single"]


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OUTDATED_IGNORE="1")
    res = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                         env=env)
    if res.returncode == EXIT_NO_NETNS:
        pytest.skip(res.stdout.strip())
    return res


def _first_strategy() -> str:
    names = _strategies()
    if not names:
        pytest.skip("no strategy other than single is registered yet")
    return "tensor" if "tensor" in names else names[0]


def test_two_hosts_equal_one_host():
    """P=4 over 2 namespaces x 2 ranks: same per-epoch losses and per-rank per-tag bytes as one host."""
    res = _run("--strategies", _first_strategy())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "losses equal" in res.stdout


def test_rank_failure_ends_every_host():
    """Rank 3 (second host) raises at epoch 1: both launchers exit nonzero, its traceback is shown."""
    res = _run("--strategies", _first_strategy(), "--fault", "3:1:raise")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "injected fault on rank 3" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("strategy", _strategies() or ["(none registered)"])
def test_every_strategy_across_hosts(strategy):
    if strategy == "(none registered)":
        pytest.skip("no strategy other than single is registered yet")
    res = _run("--strategies", strategy)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_three_hosts_kill():
    """Three hosts, a rank killed (no traceback to show): every launcher still exits nonzero."""
    res = _run("--strategies", _first_strategy(), "--hosts", "3", "--workers", "6", "--fault", "4:1:kill")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_slurm_template_over_namespaces(tmp_path):
    """slurm/graphpar.sbatch with a fake srun/scontrol whose nodes are namespaces: one record, rc 0."""
    from netns import Hosts

    fake = HERE / "multinode" / "fakeslurm"
    out = tmp_path / "runs.jsonl"
    with Hosts(2) as hosts:
        env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", NS_PREFIX=hosts.names[0][:-2],
                   FAKE_SLURM_LOGS=str(tmp_path), SLURM_JOB_NODELIST="n0,n1", SLURM_JOB_ID="7",
                   SLURM_JOB_NUM_NODES="2", STRATEGY="partition", DATASET="cora", DEVICE="cpu",
                   WORKERS_PER_NODE="2", EPOCHS="2", OUT=str(out), OUTDATED_IGNORE="1")
        res = subprocess.run(["bash", str(HERE.parent / "slurm" / "graphpar.sbatch")], env=env, cwd=HERE.parent,
                             capture_output=True, text=True, timeout=240)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("node*.log")))
    assert res.returncode == 0, res.stdout + res.stderr + logs
    assert len(out.read_text().splitlines()) == 1, logs
