"""No record is lost or torn, and outputs are settled before any work: a full disk rolls the append back
(one line, exit 1), a torn tail never swallows the next record, damaged result lines are named (never a
traceback, never a silently older run), an output that cannot be created is refused before any process
starts, and every output file is written through an exclusive temporary (no planted link is followed)."""
import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fake_record

from graphpar.bench import api, notices
from graphpar.bench.cli import commands as cli
from graphpar.bench.errors import RecordError
from graphpar.bench.files import replace_file
from graphpar.bench.record import append_record, read_records, scan_records

RUN = ["run", "--strategy", "single", "--dataset", "cora", "--epochs", "1"]


def _err_lines(capsys) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    return captured.out, [line for line in captured.err.splitlines() if line.strip()]


def _fake_run(monkeypatch, record: dict) -> list:
    """``run`` without processes: the launch returns at once and the record is ``record``; returns the calls."""
    calls = []

    def launch(cfg, cluster=None, **kw):
        calls.append(cfg)
        return [{}]

    monkeypatch.setattr(api, "launch", launch)
    monkeypatch.setattr(api, "build_record", lambda cfg, summary, ranks: dict(record, run_id=f"r{len(calls)}"))
    return calls


def _no_start(monkeypatch) -> None:
    from graphpar.bench.harness import regress, sweep
    from graphpar.bench.runtime import launcher

    def no_start(*a, **k):
        raise AssertionError("a process was started for bad input")

    for mod, name in ((launcher, "launch"), (api, "launch"), (cli, "launch"), (sweep, "_default_runner"),
                      (regress, "run_ci")):
        monkeypatch.setattr(mod, name, no_start)


def _short_write_then_enospc(monkeypatch, target: Path, keep: int = 40) -> None:
    """os.write on ``target`` writes ``keep`` bytes, then the disk is full (ENOSPC); other files unaffected."""
    real = os.write

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}") != str(target.resolve()):
            return real(fd, data)
        if not getattr(write, "done", False):
            write.done = True
            return real(fd, bytes(data)[:keep])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)


# -- a full disk ------------------------------------------------------------------------------------------
def test_full_disk_rolls_the_append_back_exit_1_and_the_next_append_works(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs.jsonl"
    for i in range(2):
        append_record(fake_record("single", 1, dataset="cora", seed=i), out)
    before = out.read_bytes()
    calls = _fake_run(monkeypatch, fake_record("single", 1, dataset="cora"))
    with monkeypatch.context() as m:
        _short_write_then_enospc(m, out)
        rc = cli.main(RUN + ["--out", str(out)])
    stdout, err = _err_lines(capsys)
    assert calls, "the run did not reach its record"
    assert rc == 1, err
    assert len(err) == 1 and str(out) in err[0] and "No space left on device" in err[0], err
    assert "the file is as it was" in err[0] and "free space" in err[0]
    assert "appended" not in stdout
    assert out.read_bytes() == before, "the partial line was not rolled back"
    assert [r["config"]["seed"] for r in read_records(out)] == [0, 1]
    assert cli.main(RUN + ["--out", str(out)]) == 0  # the disk has room again: the next record lands whole
    records, damaged = scan_records(out)
    assert damaged == [] and len(records) == 3 and records[-1]["run_id"] == "r2"


def test_file_size_limit_in_a_real_process_rolls_back(tmp_path):
    """The kernel's own short write and EFBIG (RLIMIT_FSIZE, SIGXFSZ ignored), not a monkeypatch."""
    out = tmp_path / "runs.jsonl"
    append_record({"n": 1}, out)
    size = out.stat().st_size
    script = ("import sys\nfrom pathlib import Path\nfrom graphpar.bench.record import append_record\n"
              "from graphpar.bench.errors import RecordError\n"
              "try:\n    append_record({'n': 2, 'pad': 'x' * 5000}, Path(sys.argv[1]))\n"
              "except RecordError as e:\n    print(e, file=sys.stderr)\n    sys.exit(1)\n")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, size + 100))

    res = subprocess.run([sys.executable, "-c", script, str(out)], preexec_fn=limit, capture_output=True,
                         text=True, timeout=120)
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 1, res.stderr
    assert len(err) == 1 and "File too large" in err[0] and "the file is as it was" in err[0], err
    assert out.stat().st_size == size
    append_record({"n": 3}, out)
    assert [r["n"] for r in read_records(out)] == [1, 3]


def test_real_run_past_the_file_size_limit_exits_1_and_keeps_the_file(tmp_path):
    """The issue's case end to end: ``graphpar run`` trains, its record does not fit (RLIMIT_FSIZE, SIGXFSZ
    ignored): exit 1, one error line and no traceback, no "appended", the earlier records byte for byte."""
    from graphpar.datasets import load_dataset

    load_dataset("cora")  # the graph cache exists before the limit (its own writer is not under test here)
    out = tmp_path / "runs.jsonl"
    earlier = '{"n": 1}\n' + json.dumps({"n": 2, "pad": "x" * 3400}) + "\n"
    out.write_text(earlier)

    def limit():  # room for the run's own small files (its file stores: < 4000 bytes) but not for the record
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))

    res = subprocess.run([sys.executable, "-m", "graphpar.bench.cli", *RUN, "--out", str(out)], preexec_fn=limit,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    errors = [line for line in res.stderr.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert res.returncode == 1, res.stderr
    assert len(errors) == 1 and errors[0].startswith(f"graphpar: error: {out}: record not written (File too large)")
    assert "appended" not in res.stdout
    assert out.read_text() == earlier


def test_write_that_makes_no_progress_is_a_failure_not_a_hang(tmp_path, monkeypatch):
    out = tmp_path / "runs.jsonl"
    append_record({"n": 1}, out)
    before = out.read_bytes()
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: 0 if os.readlink(f"/proc/self/fd/{fd}") == str(out.resolve())
                        else real(fd, data))
    with pytest.raises(RecordError, match="record not written"):
        append_record({"n": 2}, out)
    assert out.read_bytes() == before


def test_no_lock_is_one_line_and_nothing_written(tmp_path, monkeypatch):
    import fcntl

    out = tmp_path / "runs.jsonl"
    append_record({"n": 1}, out)
    before = out.read_bytes()

    def no_lock(fd, op):
        if op == fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_lock)
    with pytest.raises(RecordError, match="No locks available"):
        append_record({"n": 2}, out)
    assert out.read_bytes() == before


def test_sweep_stops_when_no_record_can_be_written(tmp_path):
    from graphpar.bench.harness import sweep

    def runner(cfg, out):
        raise RecordError(f"{out}: record not written (No space left on device)")

    configs = sweep.expand({"grid": {"dataset": ["cora"], "strategy": ["single"], "workers": [1]}, "fixed": {}})
    with pytest.raises(RecordError):
        sweep.run_sweep(configs * 2, tmp_path / "runs.jsonl", force=True, runner=runner, validator=lambda c: None,
                        progress=False)
    assert not (tmp_path / "runs.jsonl").exists(), "a failed record was attempted after the disk filled"


# -- torn and damaged lines ---------------------------------------------------------------------------------
def test_a_torn_tail_gets_its_own_line_and_is_named(tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    append_record({"n": 1}, out)
    with open(out, "ab") as f:
        f.write(b'{"n": 2, "sch')  # an earlier writer died mid-line
    append_record({"n": 3}, out)
    lines = out.read_bytes().split(b"\n")
    assert lines[1] == b'{"n": 2, "sch' and json.loads(lines[2]) == {"n": 3}
    assert [r["n"] for r in read_records(out)] == [1, 3]
    notices.flush()  # the CLI prints pending notices as a command ends
    _, err = _err_lines(capsys)
    assert len(err) == 1 and f"{out}: line 2 damaged" in err[0], err


def test_non_utf8_and_garbled_lines_are_named_in_one_line_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "runs.jsonl"
    good = json.dumps(fake_record("single", 1, dataset="cora"))
    path.write_bytes(good.encode() + b"\n\xff\xfe\x00garbage\n" + b"{not json\n\n" + good.encode() + b"\n")
    records, damaged = scan_records(path)
    assert len(records) == 2 and damaged == [2, 3]
    rc = cli.main(["project", "--results", str(path)])
    _, err = _err_lines(capsys)
    assert rc == 0
    assert len(err) == 1 and err[0].startswith("graphpar: warning: ") and f"{path}: lines 2, 3 damaged" in err[0]


def test_compare_refuses_a_file_whose_newest_line_is_damaged(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    old = {**fake_record("single", 1, dataset="cora"), "time_utc": "2020-01-01T00:00:00Z"}
    append_record(old, a)
    append_record(old, b)
    with open(b, "ab") as f:  # the newest run of B, cut short: comparing B's older run would mislead
        f.write(json.dumps(fake_record("single", 1, dataset="cora")).encode()[:300] + b"\n")
    before = {p: p.read_bytes() for p in (a, b)}
    rc = cli.main(["compare", str(a), str(b)])
    out, err = _err_lines(capsys)
    assert rc == 2 and out == ""
    assert len(err) == 1 and f"{b}: line 2 damaged" in err[0] and "cannot be told" in err[0], err
    assert {p: p.read_bytes() for p in (a, b)} == before
    b.write_bytes(b"\xff\n" + before[b].split(b"\n")[0] + b"\n")  # not UTF-8: one line, not a traceback
    assert cli.main(["compare", str(a), str(b)]) == 2
    _, err = _err_lines(capsys)
    assert len(err) == 1 and f"{b}: line 1 damaged" in err[0], err


# -- outputs settled before any work ----------------------------------------------------------------------
@pytest.mark.parametrize("argv", [RUN, ["bench", "--dataset", "cora", "--workers", "1", "--strategies", "single"],
                                  ["sweep", "--datasets", "cora", "--strategies", "single", "--workers", "1"]],
                         ids=["run", "bench", "sweep"])
def test_an_out_that_cannot_be_created_is_refused_before_any_start(tmp_path, monkeypatch, capsys, argv):
    _no_start(monkeypatch)
    monkeypatch.chdir(tmp_path)
    rc = cli.main(argv + ["--out", "/proc/nope/r.jsonl"])
    _, err = _err_lines(capsys)
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("graphpar: error: --out /proc/nope/r.jsonl") and "pass a" in err[0]
    assert not Path("/proc/nope").exists() and list(tmp_path.iterdir()) == []


def test_an_out_fifo_nobody_reads_is_refused_not_waited_on(tmp_path, monkeypatch, capsys):
    _no_start(monkeypatch)
    fifo = tmp_path / "runs.jsonl"
    os.mkfifo(fifo)
    previous = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("the output check waited on a FIFO"))
    signal.alarm(30)
    try:
        rc = cli.main(RUN + ["--out", str(fifo)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    _, err = _err_lines(capsys)
    assert rc == 2 and len(err) == 1 and f"--out {fifo} cannot be written" in err[0], err


def test_out_dirs_that_cannot_be_created_are_refused(tmp_path, monkeypatch, capsys):
    _no_start(monkeypatch)
    runs = tmp_path / "runs.jsonl"
    append_record(fake_record("single", 1, dataset="cora"), runs)
    for argv in (["plot", "--results", str(runs), "--out-dir", "/proc/nope/figs"],
                 ["plot", "--results", str(runs), "--out-dir", str(tmp_path / "f"), "--csv", "/proc/nope/csv"],
                 ["paper", "neutrontp", "--results", str(runs), "--out-dir", "/proc/nope"]):
        assert cli.main(argv) == 2, argv
        _, err = _err_lines(capsys)
        assert len(err) == 1 and "/proc/nope" in err[0] and "pass a writable folder" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.jsonl"]


def test_a_new_out_folder_is_tried_then_left_as_it_was_on_later_bad_input(tmp_path, monkeypatch, capsys):
    _no_start(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert cli.main(RUN + ["--workers", "1000", "--out", str(tmp_path / "a" / "b" / "runs.jsonl")]) == 2
    _, err = _err_lines(capsys)
    assert len(err) == 1 and "exceeds the limit" in err[0]
    assert list(tmp_path.iterdir()) == [], "the output check left folders or a file behind"


def test_the_output_check_never_creates_the_output_itself(tmp_path, monkeypatch):
    """The probe is a random name beside the output: a run appending to the output meanwhile (whose file
    the check would otherwise create and then remove) cannot lose its record to the check."""
    out = tmp_path / "new" / "runs.jsonl"
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, flags, *a: opened.append((str(path), flags)) or real_open(path, flags, *a))
    api.check_out(out)
    assert not [p for p, flags in opened if p == str(out) and flags & os.O_CREAT], opened
    assert any(Path(p).parent == out.parent and Path(p).name.startswith(".runs.jsonl.") for p, _ in opened), opened
    assert list(tmp_path.iterdir()) == []


def test_append_makes_its_folder_again_if_it_disappears_before_the_open(tmp_path, monkeypatch):
    from graphpar.bench import record

    out = tmp_path / "new" / "runs.jsonl"
    real = record._open_for_append
    gone = []

    def racing(path):  # another run's output check removes the empty folder it made, just before our open
        if not gone:
            gone.append(True)
            path.parent.rmdir()
        return real(path)

    monkeypatch.setattr(record, "_open_for_append", racing)
    append_record({"n": 1}, out)
    assert gone and read_records(out) == [{"n": 1}]


def test_a_new_out_folder_is_made_and_the_record_lands(tmp_path, monkeypatch, capsys):
    _fake_run(monkeypatch, fake_record("single", 1, dataset="cora"))
    out = tmp_path / "a" / "b" / "runs.jsonl"
    assert cli.main(RUN + ["--out", str(out)]) == 0
    assert "1 record(s) appended" in capsys.readouterr().out
    assert len(read_records(out)) == 1


# -- regress and plot inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("baseline", ["{}", '{"entries": {}}', '{"schema": "graphpar.baseline/3", "margin": 1.2}',
                                      '{"entries": [1, 2]}', '{"entries": {"single P=1": 3}}'])
def test_regress_refuses_a_baseline_without_entries(tmp_path, monkeypatch, capsys, baseline):
    _no_start(monkeypatch)
    (tmp_path / "ci.yaml").write_text("datasets: [cora]\nstrategies: [single]\n")
    (tmp_path / "base.json").write_text(baseline)
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = cli.main(["regress", "--configs", str(tmp_path / "ci.yaml"), "--baseline", str(tmp_path / "base.json"),
                   "--control", "stored"])
    out, err = _err_lines(capsys)
    assert rc == 2 and "bench-ci ok" not in out
    assert len(err) == 1 and "not a baseline (no entries to compare with)" in err[0] and "--update" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("prefix", ["../../x_", "sub/x_", "..x_", "/tmp/x_"])
def test_plot_prefix_with_a_path_is_refused(tmp_path, monkeypatch, capsys, prefix):
    runs = tmp_path / "runs.jsonl"
    append_record(fake_record("single", 1, dataset="cora"), runs)
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["plot", "--results", str(runs), "--out-dir", str(tmp_path / "figs"), "--prefix", prefix])
    _, err = _err_lines(capsys)
    assert rc == 2
    assert len(err) == 1 and f"--prefix {prefix!r}" in err[0] and "--out-dir" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.jsonl"]


# -- exclusive temporaries ----------------------------------------------------------------------------------
def test_outputs_replace_a_planted_link_instead_of_writing_through_it(tmp_path):
    from graphpar.bench.harness import regress
    from graphpar.bench.results import export_csv

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("baseline.json", "runs.csv", "report.md"):
        (shared / name).symlink_to(victim)
    regress.write_json({"entries": {}}, shared / "baseline.json")
    export_csv([fake_record("single", 1, dataset="cora")], shared)
    replace_file(shared / "report.md", "# report\n")
    assert victim.read_text() == "precious\n"
    for name in ("baseline.json", "runs.csv", "report.md"):
        assert not (shared / name).is_symlink() and (shared / name).is_file()
    mask = os.umask(0)
    os.umask(mask)
    assert (shared / "report.md").stat().st_mode & 0o777 == 0o666 & ~mask
    assert not [p for p in shared.iterdir() if p.name.endswith(".tmp")]


def test_figures_are_written_through_a_temporary_not_a_planted_link(tmp_path, monkeypatch):
    import tempfile

    from graphpar.bench.harness.plots import plot_all

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    made = []
    real = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: made.append(k.get("dir")) or real(*a, **k))
    figs = tmp_path / "figs"
    first = plot_all([fake_record("single", 1, dataset="cora")], str(figs))
    assert first and len(made) >= len(first)
    for p in first:  # plant links under every figure name, then draw again
        p.unlink()
        p.symlink_to(victim)
    again = plot_all([fake_record("single", 1, dataset="cora")], str(figs))
    assert sorted(again) == sorted(first)
    assert victim.read_text() == "precious\n"
    assert all(p.is_file() and not p.is_symlink() for p in again)


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    path = tmp_path / "baseline.json"
    path.write_text("old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RecordError, match="No space left on device"):
        replace_file(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.json"]
