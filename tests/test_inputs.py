"""Every input is checked before work (issue #28): a sweep grid is sized before it is expanded, a sweep or CI
file that is not UTF-8 is named by line, the ranks' memory is compared with what the host has before any
process starts (``--ignore-memory-check`` runs anyway), worker counts far beyond the cores are refused,
GRAPHPAR_THREADS and GRAPHPAR_MEM_AVAILABLE are checked, neither an edge list's largest id nor an npz file's
sparse shape can imply arrays the host cannot hold, class ids are bounded, and the Slurm template passes
every value as one argument. Each bad input: one stderr line, exit 2, nothing written, no process started.
``GRAPHPAR_MEM_AVAILABLE`` pins "available memory", so every verdict is the same on any host; nothing here
allocates more than a small graph.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphpar.bench.cli import commands as cli

CLI = [sys.executable, "-m", "graphpar.bench.cli"]
HERE = Path(__file__).resolve().parent

# 10 axes of 10 values: 10**10 configurations from about 500 bytes
HOSTILE = "grid:\n  dataset: [cora]\n  strategy: [single]\n" + "".join(
    f"  {axis}: [{', '.join(values)}]\n" for axis, values in (
        ("hidden", map(str, range(1, 11))), ("layers", map(str, range(1, 11))), ("epochs", map(str, range(1, 11))),
        ("seed", map(str, range(10))), ("eval_every", map(str, range(10))), ("warmup_epochs", map(str, range(10))),
        ("prop_steps", map(str, range(1, 11))), ("heads", map(str, range(1, 11))),
        ("lr", (f"0.0{i}" for i in range(1, 10))), ("dropout", (f"0.{i}" for i in range(10)))))
# lr has 9 values: 9 * 10**9 configurations


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _plant(tmp: Path) -> None:
    files = {"hostile.yaml": HOSTILE.encode(),
             "latin1.yaml": b"grid:\n  dataset: [cora]\n  workers: [1]  # caf\xe9\n",
             "ci_latin1.yaml": b"datasets: [cora]\n# r\xe9sum\xe9\n",
             "control.yaml": b"grid:\n  dataset: [cora]\n  workers: [1]  # a\x01b\n",
             "big_model.yaml": b"grid: {dataset: [cora], strategy: [single], hidden: [65536], layers: [3]}\n"
                               b"fixed: {epochs: 1}\n",
             "huge_id.txt": b"0 49999999\n",  # 11 bytes: 5*10**7 vertices
             "edges.txt": b"0 1\n1 2\n",
             "big_label.txt": b"0\n1\n1000000000\n",
             "file.txt": b"x"}
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    import numpy as np

    np.save(tmp / "feat.npy", np.ones((3, 4), np.float32))
    raw = (tmp / "feat.npy").read_bytes()
    (tmp / "lying.npy").write_bytes(raw.replace(b"'shape': (3, 4)", b"'shape': (99999, 4)"))  # header > file
    import scipy.sparse as sp

    def npz(name: str, n: int, attr: dict, labels) -> None:
        adj = sp.csr_matrix((np.ones(1), ([0], [1])), shape=(n, n))
        np.savez_compressed(tmp / name, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr,
                            adj_shape=adj.shape, labels=labels, **attr)

    n = 1_000_000  # a 25 kB file whose sparse attr_shape densifies to 372 GiB
    npz("bomb.npz", n, {"attr_data": np.ones(1, np.float32), "attr_indices": np.array([0]),
                        "attr_indptr": np.r_[0, np.ones(n, np.int64)], "attr_shape": np.array([n, 100_000])},
        np.zeros(n, np.int64))
    npz("big_label.npz", 50, {"attr_matrix": np.ones((50, 3), np.float32)}, np.r_[np.zeros(49, np.int64), 10**9])


RUN = ["run", "--strategy", "tensor", "--dataset", "cora", "--epochs", "1"]
EDGES = ["run", "--strategy", "single", "--epochs", "1", "--dataset"]
CASES = [  # (argv, environment, expected part of the one line)
    (["sweep", "{tmp}/hostile.yaml", "--dry-run"], {}, "the grid has 9,000,000,000 configurations, above the cap of "
     "10,000"),
    (["sweep", "{tmp}/hostile.yaml"], {}, "narrow its longest axes"),
    (["sweep", "{tmp}/latin1.yaml", "--dry-run"], {}, "latin1.yaml: line 3 is not UTF-8 text (byte 0xe9)"),
    (["sweep", "{tmp}/control.yaml", "--dry-run"], {}, "not valid YAML at line 3"),
    (["regress", "--configs", "{tmp}/ci_latin1.yaml"], {}, "ci_latin1.yaml: line 2 is not UTF-8 text"),
    (["sweep", "{tmp}/big_model.yaml"], {"GRAPHPAR_MEM_AVAILABLE": "24G"}, "no configuration can run"),
    (RUN + ["--hidden", "65536", "--layers", "3"], {"GRAPHPAR_MEM_AVAILABLE": "24G"}, "but 24.0 GiB is available"),
    (RUN + ["--hidden", "65536", "--layers", "3", "--force"], {"GRAPHPAR_MEM_AVAILABLE": "24G"},
     "or --ignore-memory-check to run anyway"),
    (["check"] + RUN[1:] + ["--hidden", "65536", "--layers", "3"], {"GRAPHPAR_MEM_AVAILABLE": "24G"}, "needs about"),
    (["bench", "--strategies", "tensor", "--dataset", "cora", "--workers", "1,2", "--hidden", "65536", "--layers",
      "3"], {"GRAPHPAR_MEM_AVAILABLE": "24G"}, "no configuration can run"),
    (["parity", "--strategy", "single", "--dataset", "cora", "--hidden", "65536", "--layers", "3"],
     {"GRAPHPAR_MEM_AVAILABLE": "24G"}, "needs about"),
    (RUN + ["--workers", "2"], {"GRAPHPAR_MEM_AVAILABLE": "100M"}, "2 ranks, about"),
    (RUN + ["--workers", "17"], {}, "17 worker processes on this host exceeds 8 per core (2 cores: at most 16)"),
    (RUN + ["--workers", "64", "--force"], {"GRAPHPAR_MEM_AVAILABLE": "24G"}, "(64 ranks, about"),
    (RUN + ["--workers", "2"], {"GRAPHPAR_THREADS": "abc"}, "GRAPHPAR_THREADS='abc': pass a whole number"),
    (RUN + ["--workers", "2"], {"GRAPHPAR_THREADS": "-1"}, "GRAPHPAR_THREADS='-1'"),
    (RUN + ["--workers", "2"], {"GRAPHPAR_MEM_AVAILABLE": "lots"}, "GRAPHPAR_MEM_AVAILABLE='lots': pass a number"),
    (EDGES + ["edgelist:{tmp}/huge_id.txt"], {"GRAPHPAR_MEM_AVAILABLE": "24G"},
     "50,000,000 vertices and 1 edges need about"),
    (EDGES + ["edgelist:{tmp}/edges.txt,label={tmp}/big_label.txt"], {}, "class 1000000000"),
    (EDGES + ["edgelist:{tmp}/edges.txt,feat={tmp}/lying.npy"], {}, "lying.npy is not a readable .npy array"),
    (EDGES + ["npz:{tmp}/bomb.npz"], {"GRAPHPAR_MEM_AVAILABLE": "24G"}, "1,000,000 x 100,000 dense features need "
     "about 372.5 GiB, 24.0 GiB is available"),
    (EDGES + ["npz:{tmp}/big_label.npz"], {}, "label 1000000000; labels are class ids 0..C-1 with C <= 50"),
]


@pytest.mark.parametrize("argv, env, expect", CASES, ids=[f"{i}-{' '.join(a)[:50]}" for i, (a, _, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_before_any_start(tmp_path, capsys, monkeypatch, argv, env, expect):
    """In-process, with every place a process starts raising and nothing expanded past the cap."""
    from graphpar.bench import api
    from graphpar.bench.cli import harness, parity
    from graphpar.bench.harness import regress, sweep
    from graphpar.bench.runtime import launcher

    def no_start(*a, **k):
        raise AssertionError("a process was started for bad input")

    for mod, name in ((launcher, "launch"), (api, "launch"), (cli, "launch"), (sweep, "_default_runner"),
                      (regress, "run_ci"), (parity, "run_parity"), (harness, "measure_link")):
        monkeypatch.setattr(mod, name, no_start)
    real_expand = sweep.expand
    monkeypatch.setattr(sweep, "expand", lambda spec, *a: real_expand(spec, *a) if sweep.grid_size(spec) <= 10_000
                        else pytest.fail("a grid above the cap was expanded"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for key in ("GRAPHPAR_THREADS", "GRAPHPAR_MEM_AVAILABLE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _plant(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if args[0] in ("run", "bench") and "--out" not in args:
        args += ["--out", str(tmp_path / "runs.jsonl")]
    if args[0] == "parity":
        args += ["--out-dir", str(tmp_path / "parity")]
    before = _files(tmp_path)
    rc = cli.main(args)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith("graphpar: error: ") and expect in lines[0], lines
    assert _files(tmp_path) == before, "bad input wrote something"


def test_hostile_sweep_dry_run_returns_at_once(tmp_path):
    """The 10**10-configuration file as a user runs it: a subprocess that answers in seconds (it never
    returned before the grid was sized from its axes)."""
    (tmp_path / "hostile.yaml").write_text(HOSTILE)
    start = time.monotonic()
    res = subprocess.run(CLI + ["sweep", "hostile.yaml", "--dry-run"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == "", res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "9,000,000,000 configurations" in lines[0], res.stderr
    assert time.monotonic() - start < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.yaml"]


def test_memory_refusal_and_threads_as_a_user_sees_them(tmp_path):
    """Subprocesses with the environment a user would set: one line each, exit 2, no record."""
    env = dict(os.environ, GRAPHPAR_MEM_AVAILABLE="24G")
    env.pop("GRAPHPAR_THREADS", None)
    out = tmp_path / "runs.jsonl"
    base = CLI + RUN + ["--out", str(out)]
    res = subprocess.run(base + ["--hidden", "65536", "--layers", "3"], capture_output=True, text=True, timeout=120,
                         env=env, cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "needs about" in res.stderr and "24.0 GiB is available (set by GRAPHPAR_MEM_AVAILABLE)" in res.stderr
    res = subprocess.run(base, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=dict(env, GRAPHPAR_THREADS="abc"))
    assert res.returncode == 2 and res.stderr.splitlines() == [
        "graphpar: error: GRAPHPAR_THREADS='abc': pass a whole number of threads per rank >= 1 (0 or unset: cores "
        "divided among the host's ranks)"], res.stderr
    assert not out.exists()


def test_ignore_memory_check_starts_the_run(tmp_path, monkeypatch, capsys):
    """--ignore-memory-check (run, sweep) goes past the refusal: the launcher (stubbed) is reached."""
    from graphpar.bench import api
    from graphpar.bench.harness import sweep

    started = []
    monkeypatch.setattr(api, "launch", lambda cfg, cluster=None: started.append(cfg.hidden))
    monkeypatch.setattr(sweep, "_default_runner", lambda cfg, out, ignore_memory: started.append((cfg["hidden"], ignore_memory)))
    monkeypatch.setenv("GRAPHPAR_MEM_AVAILABLE", "1M")
    monkeypatch.chdir(tmp_path)
    argv = RUN + ["--out", str(tmp_path / "runs.jsonl")]
    assert cli.main(argv) == 2 and started == []
    assert cli.main(argv + ["--ignore-memory-check"]) == 0 and started == [16]
    _plant(tmp_path)
    assert cli.main(["sweep", "big_model.yaml", "--out", str(tmp_path / "runs.jsonl"), "--ignore-memory-check"]) == 0
    assert started == [16, (65536, True)]
    capsys.readouterr()


def test_memory_estimate_covers_the_model_state_and_the_ranks():
    from graphpar.bench.hostcheck import check_memory, host_estimate, parameter_count

    cora = {"nodes": 2708, "edges": 10556, "features": 1433, "classes": 7}
    assert parameter_count("gcn", 1433, 16, 7, 2) == 1433 * 16 + 16 + 16 * 7 + 7
    assert parameter_count("sage", 10, 4, 3, 2) == 2 * (10 * 4 + 4 * 3) + 4 + 3
    big = {"strategy": "single", "workers": 1, "model": "gcn", "hidden": 65536, "layers": 3}
    assert host_estimate(big, cora, 1) > 16 * 65536 ** 2  # hidden x hidden weights, gradients, Adam's moments
    small = {"strategy": "tensor", "workers": 4, "model": "gcn", "hidden": 16, "layers": 2}
    one, four = host_estimate(small, cora, 1), host_estimate(small, cora, 4)
    assert four == 4 * one and one > 0.45 * 2**30  # each rank is a whole interpreter
    check_memory(small, cora, 4, available=four)
    with pytest.raises(cli.UsageError, match="needs about"):
        check_memory(small, cora, 4, available=four - 1)
    check_memory(small, cora, 4, ignore=True, available=1)


def test_grid_size_matches_expand_without_expanding():
    from graphpar.bench.harness import sweep
    from graphpar.strategies import registered

    spec = {"grid": {"dataset": ["cora"], "workers": [1, 2], "hidden": [8, 16, 32],
                     "per_strategy": {"single": {"workers": [1]}}}, "fixed": {"epochs": 1}}
    others = len(registered()) - 1
    assert sweep.grid_size(spec) == 3 + others * 6 == len(sweep.expand(spec))
    at_cap = {"grid": {"strategy": ["single"], "dataset": ["cora"], "seed": list(range(10_000))}}
    assert sweep.check_grid_size(at_cap) == 10_000  # the cap itself is allowed
    with pytest.raises(cli.UsageError, match=f"the grid has {10_000 * len(registered()):,} configurations"):
        sweep.check_grid_size({"grid": {**at_cap["grid"], "strategy": "all"}})  # 'all': every registered one
    with pytest.raises(cli.UsageError, match=r"the grid has 100,000,000 configurations.*seed \(10000 values\)"):
        sweep.check_grid_size({"grid": {"strategy": "single", "dataset": ["cora"], "seed": list(range(10_000)),
                                        "hidden": list(range(1, 10_001))}})


def test_edgelist_size_is_checked_before_allocating(tmp_path):
    from graphpar.datasets.user_graphs import check_edgelist_size, edgelist_bytes

    need = edgelist_bytes(50_000_000, 1, 64, True, True)
    assert need > 50_000_000 * 64 * 4 * 3  # the synthetic features' three n x 64 float32 arrays
    check_edgelist_size(tmp_path, 50_000_000, 1, 64, True, True, available=need)
    with pytest.raises(ValueError, match="number the vertices 0..N-1"):
        check_edgelist_size(tmp_path, 50_000_000, 1, 64, True, True, available=need - 1)
    with pytest.raises(ValueError, match="above the 4,294,967,296"):
        check_edgelist_size(tmp_path, 1 << 33, 1, 64, True, True, available=1 << 60)


def test_slurm_template_passes_each_value_as_one_argument(tmp_path):
    """DATASET, OUT, ... with spaces, quotes, ';' and $(...) reach graphpar verbatim, as one argument each,
    and run nothing; EXTRA splits into flags; a WORKERS_PER_NODE that is not a number is refused."""
    bin_dir, venv = tmp_path / "bin", tmp_path / ".venv" / "bin"
    bin_dir.mkdir()
    venv.mkdir(parents=True)
    (bin_dir / "scontrol").write_text("#!/bin/bash\necho n0\n")
    (bin_dir / "srun").write_text('#!/bin/bash\nif [[ "$*" == *hostname* ]]; then echo 10.0.0.1; exit 0; fi\n'
                                  'SLURM_NODEID=0 exec bash -c "${@: -1}"\n')
    (venv / "graphpar").write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    for f in (bin_dir / "scontrol", bin_dir / "srun", venv / "graphpar"):
        f.chmod(0o755)
    marker = tmp_path / "PWNED"
    dataset = f"edgelist:my graph.txt; touch {marker}"
    out = f"runs $(touch {marker}) 'q\".jsonl"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_NODELIST="n0", SLURM_JOB_ID="7",
               SLURM_JOB_NUM_NODES="1", STRATEGY="single", DATASET=dataset, DEVICE="cpu", WORKERS_PER_NODE="1",
               EPOCHS="2", OUT=out, EXTRA="--hidden 32  --layers 3", ARGS_FILE=str(tmp_path / "args"))
    script = str(HERE.parent / "slurm" / "graphpar.sbatch")
    res = subprocess.run(["bash", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    args = (tmp_path / "args").read_text().splitlines()
    assert args[args.index("--dataset") + 1] == dataset and args[args.index("--out") + 1] == out
    assert args[args.index("--hidden") + 1] == "32" and args[args.index("--layers") + 1] == "3"
    assert args[-2:] == ["--node-rank", "0"] and not marker.exists()
    res = subprocess.run(["bash", script], env=dict(env, WORKERS_PER_NODE=f"a[$(touch {marker})]"), cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "WORKERS_PER_NODE" in res.stderr and not marker.exists()
