"""One metrics model: the record summary, the results row and the terminal table agree on a real run
(a stale partition run included); every record carries per-phase wall and CPU seconds."""
from __future__ import annotations

import math
import time

import pytest
from helpers import fake_record

from graphpar.bench import metrics, results, tables
from graphpar.bench.record import build_record
from graphpar.bench.runtime.loop import train_local
from graphpar.datasets import load_dataset
from graphpar.strategies import TrainConfig
from graphpar.strategies.phases import PHASES, TIMER, phase

CORA = "cora"


def _record(strategy: str, workers: int, epochs: int = 6, **options) -> dict:
    cfg = TrainConfig(strategy=strategy, dataset=CORA, workers=workers, epochs=epochs, dropout=0.0,
                      options=options)
    graph = load_dataset(CORA)
    return build_record(cfg.as_dict(), graph.summary(), train_local(cfg, graph, keep_params=False))


@pytest.fixture(scope="module")
def stale_record() -> dict:
    return _record("partition", 2, epochs=10, stale=4)


def test_summary_equals_results_row_on_a_stale_run(stale_record):
    """Before the metrics module the record summary took the mean of per-epoch bytes and the results row
    the median: for ``--stale 4`` the table and the figures disagreed (257.5 vs 10.0)."""
    row = results.run_row(stale_record)
    shared = set(stale_record["summary"]) & set(row)
    assert {"epoch_s", "bytes_per_epoch", "compute_s", "compute_max_over_mean", "cpu_compute_s"} <= shared
    for key in shared:
        a, b = stale_record["summary"][key], row[key]
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), key
    per_epoch = [sum(w["sent_bytes"][i] for w in stale_record["workers"]) for i in range(1, 10)]
    assert len(set(per_epoch)) > 1  # stale epochs send fewer bytes: mean and median differ here
    assert row["bytes_per_epoch"] == pytest.approx(sum(per_epoch) / len(per_epoch))
    table = tables.bench_table([stale_record])
    assert f"{row['bytes_per_epoch'] / 1e6:.2f}" in table


@pytest.mark.parametrize("strategy,workers,options", [("single", 1, {"single_impl": "twin"}), ("tensor", 2, {})])
def test_every_record_carries_phases(strategy, workers, options):
    rec = _record(strategy, workers, **options)
    for w in rec["workers"]:
        assert set(w["phase_wall_s"]) == set(PHASES) and set(w["phase_cpu_s"]) == set(PHASES)
        for i in range(len(rec["epochs"])):
            busy = w["wall_s"][i] - w["idle_s"][i]
            assert sum(w["phase_wall_s"][p][i] for p in PHASES) == pytest.approx(busy, rel=0.05, abs=2e-3)
        assert all(x > 0 for x in w["phase_cpu_s"]["aggregation"])
        assert all(x > 0 for x in w["phase_cpu_s"]["optimizer"])
        assert all(x > 0 for x in w["phase_cpu_s"]["dense"])
    s = rec["summary"]
    assert s["cpu_compute_s"] > 0
    if strategy == "tensor":
        assert s["phase.layout.wall_s"] > 0 and s["phase.comm.wall_s"] > 0
    assert "agg" in tables.run_line(rec) and "%" in tables.run_line(rec)


def test_phase_timer_overhead_is_small():
    """One phase entered and left costs about a microsecond (a few hundred per epoch)."""
    TIMER.start()
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        with phase("aggregation"):
            pass
    per_call = (time.perf_counter() - t0) / n
    TIMER.stop()
    assert per_call < 20e-6, f"{per_call * 1e6:.1f} us per phase"


def test_latest_and_repeats_have_one_definition():
    old = fake_record("alpha", 2)
    new = fake_record("alpha", 2, compute_s=0.3)
    new["time_utc"] = "2099-01-01T00:00:00Z"
    other_sha = fake_record("alpha", 2, compute_s=0.5)
    other_sha["env"] = {**other_sha["env"], "git_sha": "older"}
    other_sha["time_utc"] = "2000-01-01T00:00:00Z"
    recs = [old, new, other_sha]
    (key,) = metrics.latest(recs)
    assert metrics.latest(recs)[key] is new
    assert metrics.repeats(recs)[key] == [old, new]
    df = results.load_runs(recs, latest=True)
    assert len(df) == 1 and df.iloc[0]["repeats"] == 2
    assert df.iloc[0]["epoch_s_max"] == pytest.approx(metrics.summary(new)["epoch_s"])
    table = tables.bench_table(recs)
    assert " 2 " in table.splitlines()[2]  # one row, two repeats
