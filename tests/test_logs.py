"""Quiet, useful logs: no DGL backend warning, METIS's C++ lines in the record not on the terminal,
progress lines off a terminal (one per epoch at most, none from other ranks)."""
import ctypes
import json
import os
import subprocess
import sys
from types import SimpleNamespace

from graphpar.bench.runtime.progress import epoch_progress, run_done
from graphpar.strategies.native_output import captured_native_output

CFG = SimpleNamespace(strategy="single", workers=1, model="gcn", layers=2, dataset="cora", epochs=3)


def _drive(rank, monkeypatch, interval):
    monkeypatch.setenv("GRAPHPAR_PROGRESS_S", str(interval))
    epochs = []
    for e in epoch_progress(CFG, rank, epochs):
        epochs.append({"loss": 1.0 / (e + 1), "wall_s": 0.01})
    return epochs


def test_progress_lines_off_a_terminal(monkeypatch, capsys):
    assert len(_drive(0, monkeypatch, 0)) == 3
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": epoch ")[1].split()[0] for line in lines] == ["1/3", "2/3", "3/3"]
    assert lines[0].startswith("graphpar: single P=1 gcn L=2 on cora: epoch 1/3 loss 1.0000")
    _drive(0, monkeypatch, 10)
    assert len(capsys.readouterr().err.splitlines()) == 1, "a fast run prints its last epoch only"
    _drive(1, monkeypatch, 0)
    monkeypatch.setenv("GRAPHPAR_PROGRESS", "0")
    _drive(0, monkeypatch, 0)
    run_done("x", {"summary": {"epoch_s": 0.01}})
    assert capsys.readouterr().err == "", "other ranks and GRAPHPAR_PROGRESS=0 print nothing"
    monkeypatch.delenv("GRAPHPAR_PROGRESS")
    run_done("single P=1 on cora", {"summary": {"epoch_s": 0.0123}, "accuracy": {"test_acc": 0.8}})
    run_done("tensor P=2 on cora", None, "RuntimeError: boom")
    assert capsys.readouterr().err.splitlines() == ["graphpar: done single P=1 on cora: epoch 12.3 ms, test acc 0.800",
                                                    "graphpar: FAILED tensor P=2 on cora: RuntimeError: boom"]


def test_native_writes_are_captured_not_printed(capfd):
    with captured_native_output() as log:
        os.write(2, b"from fd 2\n")
        ctypes.CDLL(None).printf(b"from C printf\n")
    assert capfd.readouterr() == ("", "")
    assert sorted(log.text.splitlines()) == ["from C printf", "from fd 2"]
    print("after")
    assert capfd.readouterr().out == "after\n"


def test_metis_log_goes_to_the_partition_record(cora, capfd):
    from graphpar.strategies.partitioning.partitioner import compute_partition

    part = compute_partition(cora.src, cora.dst, cora.num_nodes, 2, "metis")
    assert "Partition a graph with 2708 nodes" in part.info()["partition_log"]
    out, err = capfd.readouterr()
    assert "metis" not in (out + err).lower()


def test_a_run_prints_no_backend_warning_and_no_native_lines(tmp_path):
    out = tmp_path / "runs.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "DGLBACKEND"}
    env["GRAPHPAR_DATA"] = str(tmp_path / "data")  # no cached partition: METIS runs and its log is captured
    res = subprocess.run([sys.executable, "-m", "graphpar", "run", "--strategy", "partition", "--dataset", "cora",
                          "--workers", "2", "--epochs", "1", "--out", str(out)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    for line in res.stderr.splitlines():
        assert line.startswith("graphpar: partition P=2"), f"unexpected stderr line: {line!r}"
    assert "appended to" in res.stdout and "metis" not in res.stdout.lower()
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert "edge cuts" in rec["info"]["partition_log"]


def test_a_terminal_gets_a_tqdm_bar_and_no_plain_lines(monkeypatch):
    """On a terminal rank 0 draws one tqdm bar (epochs done, the loss) instead of the plain lines; run_done is
    silent there (the sweep has its own bar)."""
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    from functools import partial

    from graphpar.bench.runtime import progress

    monkeypatch.setattr(progress, "tqdm", partial(progress.tqdm, mininterval=0, miniters=1))  # redraw every update
    assert len(_drive(0, monkeypatch, 0)) == 3
    run_done("single P=1 on cora", {"summary": {"epoch_s": 0.01}})
    shown = term.getvalue()
    assert "single P=1 gcn L=2 on cora" in shown and "3/3" in shown and "loss 0.5000" in shown and "\r" in shown
    assert "graphpar: " not in shown
