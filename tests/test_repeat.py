"""Repeats interleaved over the grid, per-strategy axes, one-line rejections, graphpar compare."""
from __future__ import annotations

import json

from helpers import fake_record

from graphpar.bench import tables
from graphpar.bench.harness import sweep
from graphpar.bench.record import append_record, read_records


def test_repeat_interleaves_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "git_sha", lambda: "abc123")
    spec = {"grid": {"strategy": ["single", "tensor"], "dataset": ["toy"], "workers": [1, 2],
                     "per_strategy": {"single": {"workers": [1]}}}, "fixed": {"epochs": 2}}
    configs = sweep.expand(spec)
    assert [(c["strategy"], c["workers"]) for c in configs] == [("single", 1), ("tensor", 1), ("tensor", 2)]
    order = []

    def runner(cfg, out):
        order.append((cfg["strategy"], cfg["workers"]))
        rec = fake_record(cfg["strategy"], cfg["workers"])
        rec["config"] = cfg
        append_record(rec, out)
        return rec

    def validator(cfg):
        from graphpar.strategies import ConfigError
        if cfg["strategy"] == "tensor" and cfg["workers"] == 1:
            raise ConfigError("tensor wants P > 1 here; pass --workers 2")

    out = tmp_path / "runs.jsonl"
    got = sweep.run_sweep(configs, out, runner=runner, validator=validator, progress=False, repeat=3)
    assert order == [("single", 1), ("tensor", 2)] * 3  # interleaved, not back to back
    assert len(got.skipped) == 1  # rejected once, not once per round
    assert sweep.rejected_summary(got.skipped).startswith("1 combinations rejected by their strategy: tensor wants")
    again = sweep.run_sweep(configs, out, runner=runner, validator=validator, progress=False, repeat=4)
    assert order[6:] == [("single", 1), ("tensor", 2)]  # only the fourth round runs
    table = tables.bench_table(read_records(out))
    row = [line for line in table.splitlines() if line.startswith("tensor")][0]
    assert row.split()[4] == "4" and len(again.resumed) == 6


def test_rejected_summary_is_one_line():
    lines = [f"partition P={p} decoupled L=2 on g: partition does not support model decoupled" for p in (1, 2, 4)]
    lines.append("single P=2 gcn L=2 on g: strategy single runs on 1 worker, not 2; pass --workers 1")
    text = sweep.rejected_summary(lines)
    assert "\n" not in text and text.startswith("4 combinations") and "3 x partition does not support" in text


def test_compare_prints_per_phase_difference(tmp_path, capsys):
    from graphpar.bench.cli.commands import main

    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    append_record(fake_record("alpha", 2, compute_s=0.1), a)
    append_record(fake_record("alpha", 2, compute_s=0.1, time_scale=1.5), b)
    append_record(fake_record("alpha", 4, compute_s=0.1), c)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    agg = [line for line in out.splitlines() if line.startswith("aggregation")][0]
    assert agg.split()[3] == "+50%" and agg.split()[-1] == "+50%"
    assert main(["compare", str(a), str(c)]) == 2
    assert "differ in workers" in capsys.readouterr().err
    json.loads(a.read_text().splitlines()[0])  # untouched
