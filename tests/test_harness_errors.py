"""Every harness command keeps the promise: bad input is one stderr line, exit 2, nothing written.
Also: sweep exits 1 naming failed configurations, packaged configs, --version, python -m graphpar,
third-party strategies through the ``graphpar.strategies`` entry-point group."""
import os
import subprocess
import sys

import pytest
from helpers import fake_record

from graphpar.bench.cli import commands as cli


def _write(path, text):
    path.write_text(text)
    return str(path)


CASES = [
    (["sweep", "missing.yaml"], "missing.yaml: no such file"),
    (["sweep", "{bad_key}"], "unknown key 'grids'"),
    (["sweep", "{bad_type}"], "workers must be int, got 'one'"),
    (["sweep", "{bad_fixed}"], "fixed: unknown key 'epoch'"),
    (["sweep", "{bad_yaml}"], "not valid YAML at line"),
    (["sweep", "{bad_option}"], "unknown strategy option 'chunkz'"),
    (["sweep", "--datasets", "cora", "--workers", "one"], "--workers: 'one' is not a comma list of integers"),
    (["sweep", "--datasets", "cora", "--workers", "0"], "workers must be >= 1"),
    (["sweep", "--datasets", "nope"], "unknown dataset 'nope'"),
    (["sweep", "--workers", "1"], "a sweep needs datasets"),
    (["plot"], "no results file results/runs.jsonl"),
    (["plot", "--results", "{runs}", "--dataset", "pubmed"], "no successful runs with dataset 'pubmed'"),
    (["project"], "no results file results/runs.jsonl"),
    (["project", "--results", "{runs}", "--workers", "0"], "--workers must be >= 1"),
    (["regress", "--configs", "missing.yaml"], "missing.yaml: no such CI configuration file"),
    (["regress", "--configs", "{bad_ci}"], "unknown key 'margn'"),
    (["regress", "--configs", "{ci}", "--baseline", "none.json"], "no baseline at none.json"),
    (["paper", "neutrontp"], "no results file results/runs.jsonl"),
    (["paper", "gnnpipe", "--results", "{runs}"], "run `graphpar sweep gnnpipe`"),
    (["paper", "neutrontp", "--results", "{runs}", "--target-acc", "70"], "--target-acc 70.0: pass a test accuracy in (0, 1]"),
    (["run", "--strategy", "single", "--dataset", "cora", "--workers", "3", "--nnodes", "2"],
     "is not divisible by --nnodes"),
    (["check", "--strategy", "pipeline", "--dataset", "cora", "--workers", "2"], "check the exact mode with --staleness 0"),
    (["check", "--strategy", "partition", "--dataset", "cora", "--workers", "2", "--stale", "2"],
     "check the exact mode with --stale 1"),
    (["bench", "--workers=1,2", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["bench", "--workers", "1,x", "--dataset", "cora"], "pass a comma list of whole numbers"),
    (["compare", "missing.jsonl", "{runs}"], "missing.jsonl is not a file"),
    (["parity", "--strategy", "single", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["datasets", "extra"], "unrecognized arguments: extra"),
    (["strategies", "--bogus"], "unrecognized arguments: --bogus"),
    (["partition", "cora", "--parts", "0"], "--parts 0"),
    (["partition", "nope", "--parts", "2"], "unknown dataset 'nope'"),
]


@pytest.fixture
def inputs(tmp_path):

    from graphpar.bench.record import append_record

    d = tmp_path / "inputs"
    d.mkdir()
    append_record(fake_record("single", 1, dataset="cora"), d / "runs.jsonl")
    return {"bad_key": _write(d / "k.yaml", "grids:\n  workers: [1]\n"),
            "bad_type": _write(d / "t.yaml", "grid:\n  dataset: cora\n  workers: [one]\n"),
            "bad_fixed": _write(d / "f.yaml", "grid: {dataset: cora}\nfixed: {epoch: 3}\n"),
            "bad_yaml": _write(d / "y.yaml", "grid: [1, 2\n"),
            "bad_option": _write(d / "o.yaml", "grid: {dataset: cora, options: [{chunkz: 4}]}\n"),
            "bad_ci": _write(d / "ci.yaml", "datasets: [cora]\nmargn: 2\n"),
            "ci": _write(d / "ci_ok.yaml", "datasets: [cora]\n"),
            "runs": str(d / "runs.jsonl")}


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("argv, expect", CASES, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, inputs, argv, expect):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(**inputs) for a in argv]
    before = _tree(tmp_path)
    assert cli.main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("graphpar: error: ") and expect in err[0], err
    assert _tree(tmp_path) == before


def test_every_command_has_a_bad_input_case():
    """Each subcommand of ``graphpar`` is driven with bad input by a case here or in test_faults.py (one line,
    exit 2, nothing written): a new command without one fails this test."""
    from test_faults import BAD, SURVEY

    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    covered = {argv[0] for argv, _ in CASES + BAD + SURVEY}
    assert set(sub.choices) - covered == set()
    assert {"run", "check", "bench", "sweep", "plot", "project", "regress", "compare", "paper", "parity", "datasets",
            "strategies"} <= set(sub.choices)


def test_sweep_exits_1_and_names_failed_configurations(tmp_path, monkeypatch, capsys):
    from graphpar.bench.harness import sweep

    real = sweep.run_sweep

    def runner(cfg, out):
        if (cfg["strategy"], cfg["workers"]) == ("tensor", 2):
            raise RuntimeError("rank 1 died")
        return None

    monkeypatch.setattr(sweep, "run_sweep", lambda configs, out, force=False, repeat=1: real(
        configs, out, force=force, repeat=repeat, runner=runner, validator=lambda c: None, progress=False))
    out = tmp_path / "runs.jsonl"
    rc = cli.main(["sweep", "--strategies", "single,tensor", "--datasets", "cora", "--workers", "1,2", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.err.splitlines() == ["graphpar: FAILED tensor P=2 gcn L=2 on cora: rank 1 died",  # as it happens
                                         "graphpar sweep: 1 configuration(s) FAILED: tensor P=2 gcn L=2 on cora"]


def test_packaged_configs_resolve_from_any_directory(tmp_path, monkeypatch):
    from graphpar.bench.specs import CONFIG_DIR, config_path, load_sweep_spec

    monkeypatch.chdir(tmp_path)
    for name in ("default", "quick", "neutrontp", "gnnpipe"):
        assert config_path(name) == CONFIG_DIR / f"{name}.yaml"
        assert config_path(f"results/configs/{name}.yaml") == CONFIG_DIR / f"{name}.yaml"
        assert load_sweep_spec(name)["grid"]["dataset"]


def test_version_and_python_dash_m(tmp_path):
    import graphpar

    res = subprocess.run([sys.executable, "-m", "graphpar", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == f"graphpar {graphpar.__version__}" and res.stderr == ""
    assert graphpar.__version__ != "0+unknown"


PLUGIN = '''
from graphpar.strategies.base import Option, Strategy, register


@register
class Mine(Strategy):
    name = "mine"
    description = "a third-party strategy"
    options = (Option("--mine-knob", int, 4, "what it does"),)

    def setup(self): ...
    def train_epoch(self, epoch): ...
    def evaluate(self): ...
    def full_parameters(self): ...
'''


def test_third_party_strategy_registers_through_entry_point(tmp_path):
    """A distribution installed beside graphpar (a module + dist-info on the path) adds a strategy, no fork."""
    (tmp_path / "mine_plugin.py").write_text(PLUGIN)
    info = tmp_path / "mine_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mine-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[graphpar.strategies]\nmine = mine_plugin\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "graphpar", "strategies"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert any(line.startswith("mine ") and "--mine-knob" in line for line in res.stdout.splitlines()), res.stdout
    (info / "entry_points.txt").write_text("[graphpar.strategies]\nbroken = no_such_module\n")
    res = subprocess.run([sys.executable, "-m", "graphpar", "strategies"], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0 and "single" in res.stdout
    assert res.stderr.count("\n") == 1 and "strategy plugin broken (no_such_module) not loaded" in res.stderr


def test_figures_go_to_untracked_out_and_never_collide(tmp_path, monkeypatch, capsys):

    from graphpar.bench.record import append_record

    runs = tmp_path / "runs.jsonl"
    specs = ["rmat:nodes=3000,edges=24000,feat=32,classes=8,seed=1", "rmat:nodes=3000,edges=24000,feat=32,classes=8,seed=2"]
    for spec in specs:
        for strategy, p in (("single", 1), ("tensor", 2)):
            append_record(fake_record(strategy, p, dataset=spec), runs)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["plot", "--results", str(runs)]) == 0
    speedup = sorted(p.name for p in (tmp_path / "out" / "figures").glob("speedup_*.png"))
    assert len(speedup) == 2 and speedup[0] != speedup[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ignored = subprocess.run(["git", "check-ignore", "out/figures/speedup_x.png", "out/neutrontp_report.md",
                              "results/runs.jsonl"], cwd=repo, capture_output=True, text=True)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert len(ignored.stdout.splitlines()) == 3, "generated reports and figures must be untracked"


def test_dirty_tree_sha_carries_a_hash_of_the_diff(tmp_path, monkeypatch):
    from graphpar.bench import record

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f.py").write_text("a = 1\n")
    subprocess.run(git + ["add", "f.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    monkeypatch.setattr(record, "REPO_ROOT", repo)
    clean = record.git_sha()
    assert "+" not in clean and clean != "unknown"
    (repo / "f.py").write_text("a = 2\n")
    one = record.git_sha()
    assert one.startswith(clean + "+dirty.") and record.git_sha() == one
    (repo / "f.py").write_text("a = 3\n")
    assert record.git_sha() != one


def test_pins_live_once_in_setup_cfg_and_each_is_imported():
    """One list of pins (setup.cfg: install_requires and the dgl/test extras; the Makefile installs the extras and
    pins nothing itself), every pin exact, and no unused dependency: each runtime pin is imported by graphpar's
    command line, its plots, or DGL/ogb themselves (dgl 2.1.0 imports torchdata and pydantic undeclared)."""
    import configparser
    import re
    from importlib.metadata import packages_distributions
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    pins = {}
    for section, key in (("options", "install_requires"), ("options.extras_require", "dgl"),
                         ("options.extras_require", "test")):
        for line in cfg[section][key].split("\n"):
            if line.strip():
                name, _, version = line.strip().partition("==")
                assert version and re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), f"{line!r}: pin an exact version"
                pins[name.lower()] = key
    makefile = (root / "Makefile").read_text()
    assert '-e ".[dgl,test]"' in makefile and not re.search(r"[a-z]==\d", makefile), "pins belong in setup.cfg only"
    probe = ("import sys, graphpar.bench.cli.commands, graphpar.bench.harness.plots, graphpar.bench.harness.paper, "
             "dgl, ogb.nodeproppred; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    imported = {dist.lower() for mod in res.stdout.split() for dist in packages_distributions().get(mod, ())}
    unused = {name for name, extra in pins.items() if extra != "test" and name not in imported}
    assert unused == set(), f"pinned but never imported: {unused}"
