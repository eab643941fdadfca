"""Bad-input survey of every ``graphpar`` command (issue 12): does each bad input get one line naming the
fix, exit 2, nothing written, before any process starts?

    .venv/bin/python notes/scripts/hostile_inputs.py            # table of the failures + the counts
    .venv/bin/python notes/scripts/hostile_inputs.py --all      # every case

Runs in-process (one import, about a second per case that loads a graph). Whatever would start a process
(the launcher, the sweep's and CI's runners, parity's training, the loopback link probe) is replaced by a
stand-in that raises ``Launched``: a case that gets there is a failure of the promise (bad input reached a
process start), and nothing trains. Each case runs in a fresh sandbox folder (the cwd); "wrote" means a
file appeared or changed under it. Faults after a start (signals, a stopped worker, damaged caches) are
tests/test_faults.py's, not this survey's.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("OUTDATED_IGNORE", "1")

RUN = ["run", "--strategy", "tensor", "--dataset", "cora", "--epochs", "1"]
CHECK = ["check", "--strategy", "tensor", "--dataset", "cora", "--epochs", "1"]
BENCH = ["bench", "--dataset", "cora", "--strategies", "single", "--epochs", "1"]
SWEEP = ["sweep", "--datasets", "cora", "--strategies", "single", "--workers", "1", "--epochs", "1"]
PARITY = ["parity", "--strategy", "single", "--dataset", "cora", "--epochs", "1", "--seeds", "1"]
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from helpers import fake_record  # noqa: E402  (a complete record as build_record writes it)

from graphpar.bench import api  # noqa: E402
from graphpar.bench.cli import commands, harness, parity  # noqa: E402
from graphpar.bench.harness import projection, regress, sweep  # noqa: E402
from graphpar.bench.runtime import launcher, spmd  # noqa: E402

OK_RECORD = fake_record("single", 1, dataset="cora")

# (command line, files to plant in the sandbox {name: text or bytes})
SWEEP_FILES = {
    "unknown_key.yaml": "grid: {dataset: [cora]}\nbogus: 1\n",
    "wrong_type.yaml": "grid: {dataset: [cora], workers: [one]}\n",
    "zero_workers.yaml": "grid: {dataset: [cora], workers: [0]}\n",
    "empty_grid.yaml": "grid: {}\n",
    "empty_axis.yaml": "grid: {dataset: [cora], workers: []}\n",
    "empty.yaml": "",
    "list.yaml": "- a\n- b\n",
    "broken.yaml": "grid: {dataset: [cora\n",
    "grid_not_map.yaml": "grid: [cora]\n",
    "bad_option.yaml": "grid: {dataset: [cora], options: [{nope: 1}]}\n",
    "bad_option_value.yaml": "grid: {dataset: [cora], strategy: [pipeline], options: [{chunks: 0}]}\n",
    "neg_lr.yaml": "grid: {dataset: [cora], strategy: [single]}\nfixed: {lr: -1, epochs: 1}\n",
    "nan_dropout.yaml": "grid: {dataset: [cora], strategy: [single]}\nfixed: {dropout: .nan, epochs: 1}\n",
    "zero_timeout.yaml": "grid: {dataset: [cora], strategy: [single]}\nfixed: {timeout_s: 0, epochs: 1}\n",
    "huge_hidden.yaml": "grid: {dataset: [cora], strategy: [single]}\nfixed: {hidden: 100000000, epochs: 1}\n",
    "bad_dataset.yaml": "grid: {dataset: [nope], strategy: [single]}\n",
    "bad_strategy.yaml": "grid: {dataset: [cora], strategy: [nope]}\n",
    "bad_model.yaml": "grid: {dataset: [cora], strategy: [single], model: [gin]}\nfixed: {epochs: 1}\n",
    "bad_repeat.yaml": "grid: {dataset: [cora]}\nrepeat: 0\n",
    "bad_out.yaml": "grid: {dataset: [cora], strategy: [single]}\nout: ./\nfixed: {epochs: 1}\n",
    "per_strategy_bad.yaml": "grid: {dataset: [cora], per_strategy: {nope: {workers: [1]}}}\n",
}
CI_FILES = {
    "ci_missing_datasets.yaml": "strategies: all\n",
    "ci_unknown.yaml": "datasets: [cora]\nbogus: 1\n",
    "ci_margin.yaml": "datasets: [cora]\nmargin: 0.5\n",
    "ci_workers0.yaml": "datasets: [cora]\nworkers: 0\n",
    "ci_threads0.yaml": "datasets: [cora]\nthreads: 0\n",
    "ci_bad_strategy.yaml": "datasets: [cora]\nstrategies: [nope]\n",
    "ci_bad_dataset.yaml": "datasets: [nope]\n",
    "ci_broken.yaml": "datasets: [cora\n",
    "ci_margins_neg.yaml": "datasets: [cora]\nmargins: {tensor: -2}\n",
    "ci_rounds_str.yaml": "datasets: [cora]\nrounds: many\n",
}
RECORD_FILES = {
    "empty.jsonl": "",
    "garbage.jsonl": "not json at all\n{\"half\": \n",
    "no_config.jsonl": json.dumps({"status": "ok", "run_id": "x"}) + "\n",
    "config_str.jsonl": json.dumps({"status": "ok", "run_id": "x", "config": "cora"}) + "\n",
    "list_line.jsonl": "[1, 2, 3]\n",
    "traversal.jsonl": json.dumps({**OK_RECORD, "config": {**OK_RECORD["config"], "model": "../../evil",
                                                           "dataset": "../../evil"}}) + "\n",
    "failed_only.jsonl": json.dumps({"status": "failed", "run_id": "f", "config": OK_RECORD["config"]}) + "\n",
    "no_epochs.jsonl": json.dumps({k: v for k, v in OK_RECORD.items() if k not in ("epochs", "workers")}) + "\n",
    "ok.jsonl": json.dumps(OK_RECORD) + "\n",
    "other.jsonl": json.dumps(fake_record("single", 2, dataset="cora")) + "\n",
}
OTHER_FILES = {"file.txt": "x", "empty.npz": b"", "garbage.npz": b"PK\x03\x04 not a zip", "empty.bin": b"",
               "garbage.bin": b"\x00\x01garbage", "empty.txt": "", "edges_text.txt": "a b\nc d\n",
               "edges_neg.txt": "0 1\n-3 2\n", "edges_float.txt": "0 1.5\n1 2\n", "edges_one.txt": "0 1 2\n"}


def cases() -> list[tuple[str, list[str]]]:
    """(group, argv); {tmp} is the sandbox."""
    out: list[tuple[str, list[str]]] = []

    def add(group, *argvs):
        out.extend((group, list(a)) for a in argvs)

    # -- run: every flag class ------------------------------------------------------------------------
    numbers = {"--layers": ["0", "-1", "1000000", "two", "1.5"], "--hidden": ["0", "-5", "10000000", "x"],
               "--dropout": ["1.5", "-0.1", "nan", "abc"], "--lr": ["-1", "0", "nan", "inf"],
               "--weight-decay": ["-0.1", "nan"], "--epochs": ["0", "-1", "1000000000000"],
               "--seed": ["-3", "1e3"], "--timeout": ["0", "-1", "nan", "inf"], "--eval-every": ["-1"],
               "--warmup-epochs": ["-1"], "--prop-steps": ["-1", "100000"],
               "--workers": ["0", "-1", "1000", "99999999999999999999", "two"], "--repeat": ["0", "-1"],
               "--nnodes": ["0", "-1"], "--master-port": ["70000", "-1"], "--node-rank": ["-1"]}
    for flag, values in numbers.items():
        add("run numbers", *[RUN + [flag, v] for v in values])
    add("run names",
        ["run", "--strategy", "nope", "--dataset", "cora"], RUN + ["--model", "gin"], RUN + ["--dataset", "nope"],
        RUN + ["--kernel", "nope"], RUN + ["--device", "tpu"], RUN + ["--tp-mode", "nope"],
        RUN + ["--stale", "2"], ["run", "--dataset", "cora"], ["nope"], [],
        RUN + ["--workers", "2", "--model", "decoupled", "--tp-mode", "naive"])
    add("run strategy options",
        RUN + ["--chunks", "0"], RUN + ["--chunks", "-1"], RUN + ["--memory-budget", "-1"],
        RUN + ["--memory-budget", "1"],
        ["run", "--strategy", "pipeline", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--chunks", "0"],
        ["run", "--strategy", "pipeline", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--grad-clip", "-1"],
        ["run", "--strategy", "pipeline", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--grad-clip", "nan"],
        ["run", "--strategy", "pipeline", "--dataset", "cora", "--epochs", "1", "--workers", "2",
         "--pipe-warmup", "-1"],
        ["run", "--strategy", "pipeline", "--dataset", "cora", "--epochs", "1", "--workers", "4",
         "--graph-parts", "3"],
        ["run", "--strategy", "partition", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--stale", "0"],
        ["run", "--strategy", "partition", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--stale", "-2"],
        ["run", "--strategy", "sampling", "--dataset", "cora", "--epochs", "1", "--workers", "2",
         "--batch-size", "-1"],
        ["run", "--strategy", "sampling", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--fanouts", "x,y"],
        ["run", "--strategy", "sampling", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--fanouts", "5,5,5"],
        ["run", "--strategy", "sampling", "--dataset", "cora", "--epochs", "1", "--workers", "2", "--fanouts", "0,0"],
        ["run", "--strategy", "single", "--dataset", "cora", "--epochs", "1", "--workers", "2"])
    add("run cluster",
        RUN + ["--workers", "3", "--nnodes", "2"], RUN + ["--workers", "2", "--nnodes", "2", "--node-rank", "5"],
        RUN + ["--workers", "2", "--nnodes", "2", "--master-addr", "no such host!"])
    spec = "run --strategy tensor --epochs 1 --dataset".split()
    add("run specs", *[spec + [s] for s in [
        "rmat:nodes=5", "rmat:", "rmat:nodes=-5,edges=10", "rmat:nodes=abc,edges=10", "rmat:nodes=100,edges=300,bogus=1",
        "rmat:nodes=100,edges=300,noise=1e400", "rmat:nodes=100,edges=300,noise=nan", "rmat:nodes=100,edges=300,feat=0",
        "rmat:nodes=100,edges=300,classes=0", "rmat:nodes=10,edges=30,classes=20", "rmat:nodes=100,edges=300,seed=-1",
        "rmat:nodes=100000000000,edges=10", "rmat:nodes=100,edges=300,feat=100000000",
        "rmat:nodes=30000000,edges=60000000,feat=2000", "rmat:nodes=100,edges=300,nodes=5",
        "npz:{tmp}/missing.npz", "npz:{tmp}/empty.npz", "npz:{tmp}/garbage.npz", "npz:{tmp}", "npz:",
        "dgl:{tmp}/missing.bin", "dgl:{tmp}/empty.bin", "dgl:{tmp}/garbage.bin", "dgl:{tmp}",
        "edgelist:{tmp}/missing.txt", "edgelist:{tmp}/empty.txt", "edgelist:{tmp}/edges_text.txt",
        "edgelist:{tmp}/edges_neg.txt", "edgelist:{tmp}/edges_float.txt", "edgelist:{tmp}/edges_one.txt",
        "edgelist:{tmp}/edges_one.txt,feat=-1", "edgelist:{tmp}/edges_one.txt,bogus=1",
        "planetoid:{tmp}/nope", "planetoid:{tmp}/file.txt", "foo:bar", ":", "../../etc/passwd"]])
    add("run --out", RUN + ["--out", "{tmp}"], RUN + ["--out", "{tmp}/file.txt/runs.jsonl"],
        RUN + ["--out", "/proc/graphpar.jsonl"], RUN + ["--out", ""])

    # -- check -----------------------------------------------------------------------------------------
    add("check", CHECK + ["--tolerance", "0"], CHECK + ["--tolerance", "-1"], CHECK + ["--tolerance", "nan"],
        CHECK + ["--tolerance", "inf"], CHECK + ["--layers", "0"], CHECK + ["--workers", "3", "--nnodes", "2"],
        ["check", "--strategy", "pipeline", "--dataset", "cora", "--workers", "2", "--epochs", "1"],
        ["check", "--strategy", "partition", "--dataset", "cora", "--workers", "2", "--stale", "4", "--epochs", "1"],
        ["check", "--strategy", "nope", "--dataset", "cora"], CHECK + ["--dataset", "nope"],
        CHECK + ["--workers", "1000"])

    # -- bench -----------------------------------------------------------------------------------------
    add("bench", BENCH + ["--workers", "1,0"], BENCH + ["--workers", "1,x"], BENCH + ["--workers", ""],
        BENCH + ["--workers", ","], BENCH + ["--workers", "1,-2"], BENCH + ["--workers", "1,1000"],
        ["bench", "--dataset", "cora", "--strategies", "single,nope", "--workers", "1"],
        ["bench", "--dataset", "cora", "--strategies", ",", "--workers", "1"],
        BENCH + ["--workers", "1", "--repeat", "0"], BENCH + ["--workers", "1", "--out", "{tmp}"],
        BENCH + ["--workers", "1", "--dataset", "nope"], BENCH + ["--workers", "2,3", "--nnodes", "2"],
        BENCH + ["--workers", "1", "--layers", "0"], BENCH + ["--workers", "1", "--lr", "nan"],
        BENCH + ["--workers", "1", "--model", "gin"], BENCH + ["--workers", "2"],
        BENCH + ["--workers", "1", "--dataset", "npz:{tmp}/garbage.npz"])

    # -- sweep -----------------------------------------------------------------------------------------
    add("sweep files", ["sweep", "{tmp}/missing.yaml"], ["sweep", "nope"],
        *[["sweep", "{tmp}/" + name] for name in SWEEP_FILES])
    add("sweep flags", SWEEP[:-2] + ["--epochs", "0"], SWEEP + ["--repeat", "0"], SWEEP + ["--repeat", "-1"],
        ["sweep", "--datasets", "cora", "--workers", "1,x"], ["sweep", "--datasets", "cora", "--workers", "0"],
        ["sweep", "--datasets", "cora", "--layers", "0"], ["sweep", "--datasets", "cora", "--hidden", "-1"],
        ["sweep", "--datasets", "nope"], ["sweep", "--datasets", "cora", "--strategies", "nope"],
        ["sweep", "--datasets", "cora", "--models", "gin", "--strategies", "single"],
        ["sweep", "--datasets", "cora", "--options", "{"], ["sweep", "--datasets", "cora", "--options", "[1]"],
        ["sweep", "--datasets", "cora", "--options", '{"nope": 1}'],
        ["sweep", "--datasets", "cora", "--options", '{"chunks": "x"}'],
        ["sweep", "--strategies", "single"], SWEEP + ["--out", "{tmp}"], SWEEP + ["--out", "{tmp}/file.txt/r.jsonl"],
        ["sweep", "--datasets", "rmat:nodes=5", "--strategies", "single"])

    # -- records files: plot, compare, project, paper ---------------------------------------------------
    records = ["missing.jsonl", *(r for r in RECORD_FILES if r not in ("ok.jsonl", "other.jsonl"))]  # those two are fine
    add("plot", *[["plot", "--results", "{tmp}/" + r, "--out-dir", "{tmp}/figs"] for r in records],
        ["plot", "--results", "{tmp}/ok.jsonl", "--dataset", "nope", "--out-dir", "{tmp}/figs"],
        ["plot", "--results", "{tmp}/ok.jsonl", "--format", "bmp", "--out-dir", "{tmp}/figs"],
        ["plot", "--results", "{tmp}/ok.jsonl", "--out-dir", "{tmp}/file.txt/figs"],
        ["plot", "--results", "{tmp}/ok.jsonl", "--csv", "{tmp}/file.txt/csv", "--out-dir", "{tmp}/figs"])
    add("compare", ["compare", "{tmp}/missing.jsonl", "{tmp}/ok.jsonl"],
        *[["compare", "{tmp}/" + r, "{tmp}/ok.jsonl"] for r in RECORD_FILES if r != "ok.jsonl"],
        ["compare", "{tmp}/ok.jsonl", "{tmp}/other.jsonl"], ["compare", "{tmp}", "{tmp}/ok.jsonl"])
    add("project", *[["project", "--results", "{tmp}/" + r] for r in records if r != "ok.jsonl"],
        ["project", "--results", "{tmp}/ok.jsonl", "--workers", "0"],
        ["project", "--results", "{tmp}/ok.jsonl", "--bandwidth-gbps", "0"],
        ["project", "--results", "{tmp}/ok.jsonl", "--bandwidth-gbps", "nan"],
        ["project", "--results", "{tmp}/ok.jsonl", "--latency-us", "nan"],
        ["project", "--results", "{tmp}/ok.jsonl", "--latency-us", "-1"],
        ["project", "--results", "{tmp}/ok.jsonl", "--link-workers", "0", "--measure-link"],
        ["project", "--results", "{tmp}/ok.jsonl", "--link-workers", "1000", "--measure-link"],
        ["project", "--results", "{tmp}/ok.jsonl", "--strategy", "nope"])
    add("paper", *[["paper", "neutrontp", "--results", "{tmp}/" + r, "--out-dir", "{tmp}/rep"] for r in records],
        ["paper", "nope"], ["paper", "gnnpipe", "--results", "{tmp}/ok.jsonl", "--target-workers", "0",
                            "--out-dir", "{tmp}/rep"],
        ["paper", "gnnpipe", "--results", "{tmp}/ok.jsonl", "--bandwidth-gbps", "nan", "--out-dir", "{tmp}/rep"],
        ["paper", "gnnpipe", "--results", "{tmp}/ok.jsonl", "--format", "bmp", "--out-dir", "{tmp}/rep"])

    # -- regress ---------------------------------------------------------------------------------------
    add("regress", ["regress", "--configs", "{tmp}/missing.yaml"],
        *[["regress", "--configs", "{tmp}/" + name, "--baseline", "{tmp}/b.json"] for name in CI_FILES],
        ["regress", "--configs", "{tmp}/ci_ok.yaml", "--baseline", "{tmp}/list.yaml"],
        ["regress", "--configs", "{tmp}/ci_ok.yaml", "--baseline", "{tmp}/missing.json"],
        ["regress", "--configs", "{tmp}/ci_ok.yaml", "--baseline", "{tmp}/garbage.bin"],
        ["regress", "--configs", "{tmp}/ci_ok.yaml", "--update", "--baseline", "{tmp}/file.txt/b.json"],
        ["regress", "--configs", "{tmp}/ci_ok.yaml", "--baseline", "{tmp}/b.json", "--out", "{tmp}"])

    # -- parity ----------------------------------------------------------------------------------------
    add("parity", PARITY[:-2] + ["--seeds", "0"], PARITY + ["--tolerance", "-1"], PARITY + ["--tolerance", "nan"],
        PARITY + ["--seed-margin", "nan"], PARITY + ["--nnodes", "2", "--workers", "2"], PARITY + ["--layers", "0"],
        PARITY + ["--dataset", "nope"], PARITY + ["--out-dir", "{tmp}/file.txt/p"],
        PARITY + ["--reuse-reference", "{tmp}/file.txt"], PARITY + ["--epochs", "0"])

    # -- datasets, strategies --------------------------------------------------------------------------
    add("datasets/strategies", ["datasets", "--bogus"], ["strategies", "extra"], ["datasets", "nope"])
    return out


def plant(tmp: Path) -> None:
    for name, text in {**SWEEP_FILES, **CI_FILES, **RECORD_FILES, **OTHER_FILES}.items():
        (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    (tmp / "ci_ok.yaml").write_text("datasets: [cora]\nstrategies: [single]\nworkers: 1\n")
    (tmp / "b.json").write_text("{}")
    np.savez(tmp / "unlabelled.npz", adj_data=np.ones(19), adj_indices=np.arange(1, 20),
             adj_indptr=np.r_[np.arange(20), 19], adj_shape=(20, 20), attr_matrix=np.ones((20, 3)),
             labels=np.full(20, -1))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


class Launched(BaseException):
    """A process would have started (BaseException: no ``except Exception`` records it as a failed run)."""


def no_start(*_a, **_k):
    raise Launched()


def guard() -> None:
    """Every place a process starts raises Launched."""
    for mod in (api, commands, launcher):
        mod.launch = no_start
    sweep._default_runner = no_start
    regress.run_ci = no_start
    parity.run_parity = no_start
    harness.measure_link = projection.measure_link = no_start
    for name in dir(spmd):
        if name in ("run_spmd", "spawn"):
            setattr(spmd, name, no_start)


def run_case(argv: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        plant(tmp)
        argv = [a.replace("{tmp}", str(tmp)) for a in argv]
        out = tmp / "runs.jsonl"
        if argv and argv[0] in ("run", "bench") and "--out" not in argv:  # sweep: its file's out: or results/
            argv = argv + ["--out", str(out)]
        before = snapshot(tmp)
        err, stdout = io.StringIO(), io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)
        rc, tb, launched = None, False, False
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
                try:
                    rc = commands.main(argv)
                except SystemExit as e:
                    rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                except Launched:
                    launched = True
                except Exception:  # noqa: BLE001  (the survey records it)
                    traceback.print_exc()
                    tb = True
                    rc = 1
        finally:
            os.chdir(cwd)
        after = snapshot(tmp)
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        wrote = sorted(k for k in after if before.get(k) != after[k])
        tb = tb or "Traceback" in err.getvalue()
        one_line = rc == 2 and len(lines) == 1 and not launched and not wrote and not tb
        if any("traversal" in a for a in argv):  # crafted names: drawing them is fine, inside the output folder
            ok = not tb and not launched and (one_line or (rc == 0 and all(w.split("/")[0] in ("figs", "rep")
                                                                              for w in wrote)))
        else:
            ok = one_line
        return {"argv": argv, "rc": rc, "lines": len(lines), "first": lines[0] if lines else "",
                "last": lines[-1] if lines else "", "traceback": tb, "launched": launched, "wrote": wrote, "ok": ok}


def run_real(argv: list[str], timeout: float = 120.0) -> dict:
    """The same case through a real ``python -m graphpar.bench.cli`` process, nothing stubbed (run only
    cases that kept the promise in-process, so none of them starts training)."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        plant(tmp)
        argv = [a.replace("{tmp}", str(tmp)) for a in argv]
        if argv and argv[0] in ("run", "bench") and "--out" not in argv:
            argv = argv + ["--out", str(tmp / "runs.jsonl")]
        before = snapshot(tmp)
        res = subprocess.run([sys.executable, "-m", "graphpar.bench.cli", *argv], cwd=tmp, capture_output=True,
                             text=True, timeout=timeout)
        wrote = sorted(k for k, v in snapshot(tmp).items() if before.get(k) != v)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        return {"rc": res.returncode, "lines": len(lines), "wrote": wrote, "last": lines[-1] if lines else "",
                "traceback": "Traceback" in res.stderr}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="print every case, not only the failures")
    ap.add_argument("--group", help="only the cases of groups containing this text")
    ap.add_argument("--json", help="write the rows to this JSON file")
    ap.add_argument("--subprocess", type=int, default=0, metavar="N",
                    help="also run the first N cases of each group that kept the promise as real processes "
                         "(a few seconds each: the import) and report any that differ")
    ap.add_argument("--skip", action="append", default=[],
                    help="leave out cases whose command line contains this text (counted as failures), e.g. a "
                         "spec that would really allocate its graph on a build without the memory check")
    args = ap.parse_args()
    guard()
    rows = []
    for group, argv in cases():
        if args.group and args.group not in group:
            continue
        if any(text in " ".join(argv) for text in args.skip):
            r = {"argv": argv, "rc": None, "lines": 0, "first": "", "last": "skipped (--skip)", "traceback": False,
                 "launched": False, "wrote": [], "ok": False}
        else:
            r = run_case(argv)
        r["group"], r["case"] = group, argv
        rows.append(r)
        shown = " ".join(a if len(a) < 40 else a[:37] + "..." for a in argv)
        if args.all or not r["ok"]:
            flags = "".join([" TRACEBACK" if r["traceback"] else "", " LAUNCHED" if r["launched"] else "",
                             f" WROTE {r['wrote']}" if r["wrote"] else ""])
            print(f"{'ok  ' if r['ok'] else 'FAIL'} rc={r['rc']} lines={r['lines']}{flags} | {group} | {shown}\n"
                  f"      {r['last'][:200]}", flush=True)
    if args.subprocess:
        seen: dict[str, int] = {}
        differ = 0
        for r in rows:
            if not r["ok"] or any("traversal" in a for a in r["argv"]) or seen.get(r["group"], 0) >= args.subprocess:
                continue
            seen[r["group"]] = seen.get(r["group"], 0) + 1
            argv = r["case"]
            real = run_real(argv)
            same = real["rc"] == 2 and real["lines"] == 1 and not real["wrote"] and not real["traceback"]
            differ += not same
            print(f"{'same' if same else 'DIFF'} real process rc={real['rc']} lines={real['lines']} | {r['group']} | "
                  f"{' '.join(argv)[:100]}\n      {real['last'][:200]}", flush=True)
        print(f"real processes: {sum(seen.values())} run, {differ} differ from the in-process result")
    n = len(rows)
    counts = {"kept the promise": sum(r["ok"] for r in rows),
              "one line, exit 2, nothing written": sum(r["rc"] == 2 and r["lines"] == 1 and not r["wrote"]
                                                       and not r["launched"] and not r["traceback"] for r in rows),
              "traceback": sum(r["traceback"] for r in rows), "reached a process start": sum(r["launched"] for r in rows),
              "wrote something": sum(bool(r["wrote"]) for r in rows),
              "exit 2 but more than one line": sum(r["rc"] == 2 and r["lines"] > 1 for r in rows),
              "exit 0 or 1 without a start": sum(r["rc"] in (0, 1) and not r["launched"] and not r["traceback"]
                                                  for r in rows)}
    print(f"\n{n} cases")
    for k, v in counts.items():
        print(f"  {k}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts, "rows": rows}, indent=1))
    return 0 if counts["kept the promise"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
