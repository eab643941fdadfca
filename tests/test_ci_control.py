"""The CI gate's A/B control: the baseline's commit rebuilt from git and measured beside the code under test.

- which commit is the control (recorded sha, dirty or unknown ones refused with the reason);
- "same code" means the same package, pins and CI set (docs and results do not count);
- the rebuilt tree imports as ``graphpar`` ahead of the installed one;
- the verdict: compute against the control (a 1.5x slower current fails, A/A passes), bytes always
  against the stored baseline, and the baseline's own code shown but not gated;
- end to end, ``graphpar regress --control HEAD`` runs both sides interleaved and passes on unchanged code.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graphpar.bench.harness import control, regress

REPO = control.REPO_ROOT
IN_GIT = control.head_sha(REPO) is not None


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def toy_repo(tmp_path):
    """A git repository laid out like graphpar's (package_dir folders), one commit."""
    repo = tmp_path / "repo"
    for rel, text in {"graphpar/__init__.py": "", "bench/__init__.py": "X = 1\n", "strategies/__init__.py": "",
                      "datasets/__init__.py": "", "setup.cfg": "[metadata]\n", "README.md": "docs\n",
                      "results/ci_configs.yaml": "datasets: [cora]\n", "results/baseline.json": "{}\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "one")
    return repo


def test_control_commit_is_the_recorded_one_or_refused_with_why(toy_repo):
    sha = _git(toy_repo, "rev-parse", "HEAD")
    assert control.control_sha({"code_sha": sha}, toy_repo) == (sha, "")
    assert control.control_sha({"git_sha": sha[:12]}, toy_repo) == (sha, "")  # older baselines: short sha
    got, why = control.control_sha({"git_sha": sha[:12] + "+dirty.1234abcd"}, toy_repo)
    assert got is None and "uncommitted" in why
    got, why = control.control_sha({"git_sha": "unknown"}, toy_repo)
    assert got is None and "uncommitted" in why
    got, why = control.control_sha({"code_sha": "0" * 40}, toy_repo)
    assert got is None and "not in this clone" in why


def test_same_code_counts_package_pins_and_ci_set_only(toy_repo):
    sha = _git(toy_repo, "rev-parse", "HEAD")
    assert control.same_code(sha, toy_repo) and not control.code_dirty(toy_repo)
    (toy_repo / "README.md").write_text("other docs\n")
    (toy_repo / "results" / "baseline.json").write_text('{"entries": {}}\n')
    assert control.same_code(sha, toy_repo) and not control.code_dirty(toy_repo)
    (toy_repo / "strategies" / "new.py").write_text("")  # untracked code counts
    assert not control.same_code(sha, toy_repo) and control.code_dirty(toy_repo)
    (toy_repo / "strategies" / "new.py").unlink()
    (toy_repo / "results" / "ci_configs.yaml").write_text("datasets: [citeseer]\n")
    assert not control.same_code(sha, toy_repo)


def test_control_tree_is_laid_out_as_the_package(toy_repo):
    sha = _git(toy_repo, "rev-parse", "HEAD")
    (toy_repo / "bench" / "__init__.py").write_text("X = 2\n")  # the working tree's edit is not the control
    with control.control_tree(sha, toy_repo) as root:
        assert (root / "graphpar" / "bench" / "__init__.py").read_text() == "X = 1\n"
        assert {p.name for p in (root / "graphpar").iterdir()} >= {"__init__.py", "bench", "strategies", "datasets"}
        kept = root
    assert not kept.exists()


@pytest.mark.skipif(not IN_GIT, reason="needs the project's git history (a clone, not an unpacked archive)")
def test_control_tree_of_head_imports_ahead_of_the_installed_package():
    with control.control_tree(control.head_sha(REPO), REPO) as root:
        code = "import graphpar.bench.harness.regress as r, graphpar.strategies as s; print(r.__file__, s.__file__)"
        out = subprocess.run([sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert all(Path(p).resolve().is_relative_to(root.resolve()) for p in out.stdout.split()), out.stdout


def _entry(cpu: float, sent: int = 100) -> dict:
    return {"bytes": {"train:layer0/halo/fwd": {"0": ["all_to_all", 2, sent, sent]}}, "cpu_per_probe": cpu,
            "cpu_per_probe_rounds": [cpu], "cpu_spread": 0.0, "wall_ratio": 1.2, "epoch_s": 0.01,
            "cpu_compute_s": 0.01}


def test_merge_rounds_takes_the_median_and_keeps_failures():
    merged = regress.merge_rounds([{"a": _entry(1.0), "b": {"failed": "rank 1 died"}},
                                   {"a": _entry(3.0), "b": {"failed": "rank 1 died"}},
                                   {"a": _entry(1.2)}])
    assert merged["a"]["cpu_per_probe"] == 1.2 and merged["a"]["cpu_per_probe_rounds"] == [1.0, 3.0, 1.2]
    assert merged["a"]["cpu_spread"] == pytest.approx(2.0 / 1.2)
    assert merged["b"] == {"failed": "rank 1 died"}


def test_compute_is_judged_against_the_control_bytes_against_the_stored_baseline():
    stored = {"entries": {"s@g@gcn@P2": _entry(9.0), "t@g@gcn@P2": _entry(9.0)}}  # another machine's numbers
    ctl = {"s@g@gcn@P2": _entry(2.0), "t@g@gcn@P2": _entry(2.0)}
    rows, failed = regress.compare(stored, {"s@g@gcn@P2": _entry(2.1), "t@g@gcn@P2": _entry(1.9)}, 1.3,
                                   control=ctl, control_name="control abc")
    assert not failed, regress.table(rows)
    assert all("vs control abc" in r[4] for r in rows if r[1] == "cpu/probe")
    rows, failed = regress.compare(stored, {"s@g@gcn@P2": _entry(3.0), "t@g@gcn@P2": _entry(2.0)}, 1.3, control=ctl)
    assert failed and [r[0] for r in rows if r[-1] == "FAIL"] == ["s@g@gcn@P2"]
    rows, failed = regress.compare(stored, {"s@g@gcn@P2": _entry(2.0, sent=101), "t@g@gcn@P2": _entry(2.0)}, 1.3,
                                   control=ctl)
    assert failed and any(r[1].startswith("bytes") and r[-1] == "FAIL" for r in rows)
    rows, failed = regress.compare(stored, {"s@g@gcn@P2": _entry(2.0), "t@g@gcn@P2": _entry(2.0)}, 1.3,
                                   control={"s@g@gcn@P2": _entry(2.0)})
    assert not failed and any(r[0] == "t@g@gcn@P2" and "no such entry" in r[4] for r in rows)


def test_the_baselines_own_code_is_shown_not_gated():
    stored = {"entries": {"s@g@gcn@P2": _entry(1.0)}}
    rows, failed = regress.compare(stored, {"s@g@gcn@P2": _entry(2.0)}, 1.3, gated=False)
    (row,) = [r for r in rows if r[1] == "cpu/probe"]
    assert not failed and row[-1] == "info" and "not gated" in row[4]
    rows, failed = regress.compare(stored, {"s@g@gcn@P2": _entry(2.0, sent=7)}, 1.3, gated=False)
    assert failed  # bytes still gate


@pytest.mark.skipif(not IN_GIT, reason="needs the project's git history (a clone, not an unpacked archive)")
def test_ab_gate_end_to_end_against_head(tmp_path):
    """``graphpar regress --control HEAD``: the committed code rebuilt and run beside this tree, one
    round each on a small graph (the interleaving is the next test's); unchanged (or unrelated) code
    passes and both sides ran."""
    spec = tmp_path / "ci.yaml"
    spec.write_text("strategies: [single]\nworkers: 2\ndatasets: ['rmat:nodes=400,edges=4000,feat=32,classes=4,"
                    "seed=2']\nmodels: [gcn]\nfixed: {epochs: 6, warmup_epochs: 1, hidden: 16, dropout: 0.0}\n"
                    "rounds: 1\nmargin: 3.0\nthreads: 1\n")
    base = tmp_path / "base.json"
    cmd = [sys.executable, "-m", "graphpar", "regress", "--configs", str(spec), "--baseline", str(base)]
    env = {**os.environ, "OUTDATED_IGNORE": "1"}
    done = subprocess.run(cmd + ["--update"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(cmd + ["--control", "HEAD", "--all"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "A/B against" in done.stdout and done.stdout.count("control code") == 1, done.stdout
    assert "bench-ci ok" in done.stdout and "vs control" in done.stdout, done.stdout
    assert json.loads((tmp_path / "base.proposed.json").read_text())["entries"]


def test_ab_rounds_interleave_the_sides_in_fresh_processes(monkeypatch, tmp_path):
    """Round i runs control then current when i is even, current then control when odd (ABBA...), each
    side one round in its own process; the medians are per side; a side that fails is named."""
    calls = []

    def fake_side(spec_path, out_json, root, cwd, extra=None):
        side = "control" if root is not None else "current"
        calls.append(side)
        assert yaml.safe_load(spec_path.read_text())["rounds"] == 1
        return {"s@g@gcn@P2": _entry({"control": 2.0, "current": 2.0 + len(calls) / 100}[side])}

    spec = tmp_path / "ci.yaml"
    spec.write_text("datasets: [cora]\nrounds: 3\n")
    monkeypatch.setattr(control, "run_side", fake_side)
    current, ctl = regress.run_ab(spec, tmp_path, rounds=3, announce=lambda _: None)
    assert calls == ["control", "current", "current", "control", "control", "current"]
    assert ctl["s@g@gcn@P2"]["cpu_per_probe"] == 2.0 and len(current["s@g@gcn@P2"]["cpu_per_probe_rounds"]) == 3

    def failing(spec_path, out_json, root, cwd, extra=None):
        if root is None:
            raise control.SideFailed("exit 1: boom")
        return {}

    monkeypatch.setattr(control, "run_side", failing)
    with pytest.raises(control.SideFailed) as err:
        regress.run_ab(spec, tmp_path, rounds=1, announce=lambda _: None)
    assert err.value.side == "current" and "current code" in str(err.value)
