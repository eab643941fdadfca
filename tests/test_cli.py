"""The command line: bad input is one line + exit 2 and no record; runs append a record; check passes."""
import json
import subprocess
import sys

import pytest

GRAPHPAR = [sys.executable, "-m", "graphpar.bench.cli"]


def _run(args, tmp_path, timeout=240):
    return subprocess.run(GRAPHPAR + args, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


@pytest.mark.parametrize("args, expect", [
    (["run", "--strategy", "nope", "--dataset", "cora"], "unknown strategy 'nope'; known:"),
    (["run", "--strategy", "single", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["run", "--strategy", "single", "--dataset", "cora", "--model", "gat"], "not 'gat'"),
    (["run", "--strategy", "single", "--dataset", "cora", "--workers", "2"], "pass --workers 1"),
    (["run", "--strategy", "single", "--dataset", "rmat:nodes=5"], "nodes= and edges= are required"),
    (["run", "--strategy", "single", "--dataset", "ogbn-products"], "OGB files missing under"),
    (["run", "--strategy", "single", "--dataset", "cora", "--epochs", "0"], "--epochs must be >= 1"),
    (["run", "--strategy", "single", "--dataset", "cora", "--device", "cuda"], "no CUDA device"),
])
def test_bad_input_is_one_line_exit_2_and_no_record(tmp_path, args, expect):
    if "--device" in args:
        import torch
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    out = tmp_path / "runs.jsonl"
    res = _run(args + ["--out", str(out)], tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expect in lines[0], res.stderr
    assert not out.exists()


def test_option_of_another_strategy_is_rejected(tmp_path):
    from graphpar.strategies.base import all_options

    foreign = [flag for flag, (_, owners) in all_options().items() if "single" not in owners]
    if not foreign:
        pytest.skip("no other strategy registered")
    opt, _ = all_options()[foreign[0]]
    value = str(opt.choices[0]) if opt.choices else str(opt.default if opt.default is not None else 1)
    res = _run(["run", "--strategy", "single", "--dataset", "cora", foreign[0], value], tmp_path)
    assert res.returncode == 2 and "not of single" in res.stderr


def test_run_appends_one_record_and_check_passes(tmp_path):
    out = tmp_path / "runs.jsonl"
    res = _run(["run", "--strategy", "single", "--dataset", "cora", "--epochs", "4", "--out", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["status"] == "ok" and record["config"]["strategy"] == "single"
    assert len(record["epochs"]) == 4 and len(record["workers"]) == 1
    assert record["dataset"]["nodes"] == 2708 and record["env"]["torch"]
    res = _run(["check", "--strategy", "single", "--dataset", "cora", "--epochs", "3", "--single-impl", "twin",
                "--kernel", "torch"], tmp_path)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout + res.stderr
