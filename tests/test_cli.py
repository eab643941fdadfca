"""The command line: bad input is one line + exit 2 and no record; runs append a record; check passes."""
import json
import re
import subprocess
import sys

import pytest

from graphpar.bench import notices

GRAPHPAR = [sys.executable, "-m", "graphpar.bench.cli"]


def _run(args, tmp_path, timeout=240):
    return subprocess.run(GRAPHPAR + args, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


@pytest.mark.parametrize("args, expect", [
    (["run", "--strategy", "nope", "--dataset", "cora"], "unknown strategy 'nope'; known:"),
    (["run", "--strategy", "single", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["run", "--strategy", "single", "--dataset", "cora", "--model", "gin"], "not 'gin'"),
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


# -- one name per meaning: --tp-chunks (tensor's row blocks), --pipe-chunks (pipeline's vertex chunks) ------------
def _config(argv, strategy=None):
    import argparse

    from graphpar.bench.cli.args import config_from_args, training_args

    p = argparse.ArgumentParser()
    training_args(p, strategy_required=strategy is None)
    return config_from_args(p.parse_args(argv), strategy=strategy)


def run_help() -> dict[str, str]:
    """``graphpar run --help``: each flag's help text (wrapped lines joined), by flag."""
    res = subprocess.run(GRAPHPAR + ["run", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    options = res.stdout.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", options)
    heads_and_helps = [re.split(r"\s{2,}", e.strip(), maxsplit=1) for e in entries if e.strip().startswith("-")]
    return {hh[0].split()[0].rstrip(","): " ".join(hh[1].split()) if len(hh) > 1 else "" for hh in heads_and_helps}


def test_run_help_shows_each_chunks_flag_with_its_own_meaning_and_default():
    helps = run_help()
    assert "[tensor]" in helps["--tp-chunks"] and "row blocks" in helps["--tp-chunks"]
    assert helps["--tp-chunks"].endswith("(default 1)")
    assert "[pipeline]" in helps["--pipe-chunks"] and "vertex chunks" in helps["--pipe-chunks"]
    assert helps["--pipe-chunks"].endswith("(default 4)")
    assert "deprecated" in helps["--chunks"]


@pytest.mark.parametrize("strategy,new,key", [("tensor", "--tp-chunks", "tp_chunks"),
                                              ("pipeline", "--pipe-chunks", "pipe_chunks")])
def test_chunks_flags_reach_their_strategy_and_the_old_spelling_maps_to_them(capsys, strategy, new, key):
    from graphpar.strategies import get_strategy

    base = ["--strategy", strategy, "--dataset", "cora"]
    cfg = _config(base + [new, "3"])
    assert cfg.options == {key: 3} and capsys.readouterr().err == ""
    old = _config(base + ["--chunks", "3"])
    assert old.options == cfg.options  # the same value reaches the strategy: the same run, the same bytes
    assert capsys.readouterr().err == ""  # deferred until the command's input is known good
    notices.flush()
    (line,) = capsys.readouterr().err.splitlines()
    assert "deprecated" in line and "--tp-chunks (tensor)" in line and "--pipe-chunks (pipeline)" in line
    assert get_strategy(strategy).options_of(old)[key] == 3
    defaults = get_strategy(strategy).options_of(_config(base))
    assert defaults[key] == {"tensor": 1, "pipeline": 4}[strategy]


def test_chunks_alias_conflicts_and_foreign_strategies_are_usage_errors(capsys):
    from graphpar.bench.errors import UsageError

    with pytest.raises(UsageError, match="pass only --tp-chunks"):
        _config(["--strategy", "tensor", "--dataset", "cora", "--chunks", "2", "--tp-chunks", "3"])
    with pytest.raises(UsageError, match="--chunks is an option of pipeline, tensor, not of partition"):
        _config(["--strategy", "partition", "--dataset", "cora", "--chunks", "2"])
    with pytest.raises(UsageError, match="--tp-chunks is an option of tensor, not of pipeline"):
        _config(["--strategy", "pipeline", "--dataset", "cora", "--tp-chunks", "2"])
    # bench: one flag for every strategy; each takes its own meaning, the others ignore it
    assert _config(["--dataset", "cora", "--chunks", "2"], strategy="tensor").options == {"tp_chunks": 2}
    assert _config(["--dataset", "cora", "--chunks", "2"], strategy="single").options == {}


def test_sweep_options_accept_the_new_keys_and_map_the_old_one(tmp_path, capsys):
    from graphpar.bench.harness.sweep import expand
    from graphpar.bench.specs import load_sweep_spec

    def grid(options):
        path = tmp_path / "s.yaml"
        path.write_text("grid:\n  strategy: [tensor, pipeline, single]\n  dataset: cora\n  model: gcn\n"
                        f"  options: [{options}]\n")
        return {c["strategy"]: c["options"] for c in expand(load_sweep_spec(path))}

    assert grid("{tp_chunks: 2, pipe_chunks: 3}") == {"tensor": {"tp_chunks": 2}, "pipeline": {"pipe_chunks": 3},
                                                       "single": {}}
    assert capsys.readouterr().err == ""
    assert grid("{chunks: 2}") == {"tensor": {"tp_chunks": 2}, "pipeline": {"pipe_chunks": 2}, "single": {}}
    notices.flush()
    (line,) = capsys.readouterr().err.splitlines()
    assert "options.chunks is deprecated" in line and "--pipe-chunks (pipeline)" in line


def test_a_refused_command_with_a_deprecated_spelling_is_one_line(capsys):
    """The deprecation notice waits for the input to be good: a refused command prints its error alone."""
    from graphpar.bench.cli import main

    assert main(["run", "--strategy", "tensor", "--dataset", "cora", "--epochs", "1", "--chunks", "0"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--tp-chunks 0 must be" in line


# -- one place for defaults: the training flags are generated from TrainConfig's fields ---------------------------
def test_every_train_config_field_is_a_flag_with_the_fields_default_and_help():
    import argparse
    from dataclasses import MISSING, fields

    from graphpar.bench.cli.args import training_args
    from graphpar.strategies import TrainConfig

    p = argparse.ArgumentParser()
    training_args(p)
    parsed = vars(p.parse_args(["--strategy", "single"]))
    helps = run_help()
    settings = TrainConfig.settings()
    assert set(settings) == {f.name for f in fields(TrainConfig)} - {"options"}
    for name, f in settings.items():
        flag = TrainConfig.flag_of(f)
        assert f.metadata["help"] and helps[flag].startswith(f.metadata["help"]), flag
        if name != "strategy":
            assert f.default is not MISSING and parsed[name] == f.default, flag
    with pytest.raises(SystemExit):
        p.parse_args([])  # --strategy: the one field without a default is required
    cfg = _config(["--strategy", "single"])
    assert cfg == TrainConfig(strategy="single")  # no flag given: exactly the dataclass's defaults


def test_command_defaults_show_in_help():
    res = subprocess.run(GRAPHPAR + ["check", "--help"], capture_output=True, text=True, timeout=120)
    assert "training epochs (default 10)" in " ".join(res.stdout.split())


def test_unknown_or_mistyped_strategy_options_are_one_line_naming_the_valid_ones():
    from graphpar.bench.api import prepare
    from graphpar.strategies import ConfigError, TrainConfig, get_strategy

    with pytest.raises(ConfigError) as e:
        prepare(TrainConfig(strategy="tensor", dataset="cora", options={"tp_chunk": 2}))
    (line,) = str(e.value).splitlines()
    assert "'tp_chunk'" in line and "tp_mode, tp_chunks, memory_budget" in line
    with pytest.raises(ConfigError, match="--pipe-chunks takes int values, got .4."):
        get_strategy("pipeline").check_options({"pipe_chunks": "4"})
    with pytest.raises(ConfigError, match="has no option 'stale'; its options: single_impl"):
        get_strategy("single").check_options({"stale": 2})
    get_strategy("pipeline").check_options({"pipe_chunks": 2, "grad_clip": 1, "chunk_order": "random"})
    get_strategy("tensor").check_options(TrainConfig(strategy="tensor", options={"chunks": 2}).options)  # renamed


def test_each_strategy_parses_its_options_into_a_typed_dataclass_once():
    from dataclasses import FrozenInstanceError, fields, is_dataclass

    from graphpar.strategies import TrainConfig, get_strategy, registered

    for name, cls in registered().items():
        opt = cls.options_of(TrainConfig(strategy=name))
        assert is_dataclass(opt)
        assert [(f.name, f.type, f.default) for f in fields(opt)] == [(o.key, o.type, o.default) for o in cls.options]
    opt = get_strategy("pipeline").options_of(TrainConfig(strategy="pipeline", options={"grad_clip": 1,
                                                                                        "pipe_chunks": 2}))
    assert opt.pipe_chunks == opt["pipe_chunks"] == 2 and opt.staleness == 1
    assert isinstance(opt.grad_clip, float) and opt.grad_clip == 1.0
    with pytest.raises(FrozenInstanceError):
        opt.pipe_chunks = 3  # frozen: parsed once, read everywhere


def test_records_written_with_the_old_chunks_key_read_as_the_new_option():
    from graphpar.bench.results import config_key, run_row
    from graphpar.strategies import TrainConfig

    new = TrainConfig(strategy="pipeline", dataset="cora", options={"pipe_chunks": 2}).as_dict()
    old = {**new, "options": {"chunks": 2}}  # as a record of the previous release stores it
    assert config_key(old) == config_key(new)
    assert config_key({**new, "options": {"pipe_chunks": 3}}) != config_key(new)
    row = run_row({"config": old, "status": "failed"})
    assert row["opt.pipe_chunks"] == 2 and "opt.chunks" not in row
    assert TrainConfig.from_dict(old).options == {"pipe_chunks": 2}
