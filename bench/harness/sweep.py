"""Grid sweeps: strategies x datasets x worker counts x models x options, one record per run, resumable.

    graphpar sweep default                                  # bench/configs/default.yaml (shipped with graphpar)
    graphpar sweep my.yaml --workers 1,2 --force            # override a grid axis, rerun all

A sweep file (YAML)::

    out: results/runs.jsonl          # where records are appended (the CLI's --out wins)
    grid:                            # every combination runs; a scalar is a one-value axis
      strategy: all                  # 'all' = every registered strategy
      dataset: [cora, rmat-arxiv]
      workers: [1, 2, 4]
      model: [gcn]
      options: [{}]                  # strategy options; a key a strategy does not have is dropped for it
      per_strategy:                  # optional: axes that differ per strategy (override the ones above)
        single: {workers: [1]}
        partition: {model: [gcn]}
    fixed: {epochs: 5, hidden: 16}   # any other TrainConfig field

A configuration the strategy rejects (``validate``) is skipped (``rejected_summary``: one line for all);
one that fails while running is recorded as failed and the sweep goes on. ``repeat=N`` runs the grid N
times, interleaved (round 1 runs every configuration, then round 2...), so a slow spell of the machine
hits every configuration alike. Resumable: a configuration already recorded ``ok`` N times with the same
git sha is skipped unless ``force``.
"""
from __future__ import annotations

import itertools
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from graphpar.strategies import TrainConfig, get_strategy, registered
from graphpar.strategies.base import deprecated_keys, deprecation_line, renamed_options

from .. import notices
from ..api import prepare, run_one
from ..errors import BAD_INPUT, RecordError, UsageError
from ..record import append_record, failed_record, git_sha, read_records
from ..results import config_key
from ..runtime.progress import run_done
from ..specs import load_sweep_spec

MAX_CONFIGS = 10_000  # configurations one sweep may hold (a grid is sized before it is expanded)


@dataclass
class SweepOutcome:
    """What a sweep did, for the terminal and the tests."""

    ran: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def load_spec(path: str | Path) -> dict[str, Any]:
    """A sweep file (a path or a shipped config's name) as a dict with ``grid`` and ``fixed``, checked key by key."""
    return load_sweep_spec(path)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _strategy_axes(spec: dict[str, Any]) -> dict[str, dict[str, list]]:
    """Each strategy of the grid and its own axes (the shared ones, overridden by ``per_strategy``)."""
    grid = dict(spec.get("grid") or {})
    strategies = _as_list(grid.pop("strategy", "all"))
    per_strategy = grid.pop("per_strategy", None) or {}
    if strategies == ["all"]:
        strategies = list(registered())
    axes = {k: _as_list(v) for k, v in grid.items()}
    axes.setdefault("options", [{}])
    return {s: {**axes, **{k: _as_list(v) for k, v in (per_strategy.get(s) or {}).items()}} for s in strategies}


def grid_size(spec: dict[str, Any]) -> int:
    """How many configurations ``expand`` would make at most (the product of each strategy's axis lengths,
    summed over strategies), computed without expanding."""
    return sum(math.prod(len(v) for v in own.values()) for own in _strategy_axes(spec).values())


def check_grid_size(spec: dict[str, Any], where: str = "sweep") -> int:
    """The grid's size, or a UsageError naming the cap, the size and the longest axes when it is above
    MAX_CONFIGS (a grid that large would not finish, nor even list, in any useful time)."""
    size = grid_size(spec)
    if size > MAX_CONFIGS:
        lengths = Counter()
        for own in _strategy_axes(spec).values():
            for k, v in own.items():
                lengths[k] = max(lengths[k], len(v))
        longest = ", ".join(f"{k} ({n} values)" for k, n in lengths.most_common(3) if n > 1)
        raise UsageError(f"{where}: the grid has {size:,} configurations, above the cap of {MAX_CONFIGS:,}; narrow "
                         f"its longest axes ({longest}) with fewer values or flags such as --workers, or split it "
                         "into several sweep files")
    return size


def expand(spec: dict[str, Any], where: str = "sweep") -> list[dict[str, Any]]:
    """Every configuration of the grid as a TrainConfig dict (strategy options filtered per strategy); a grid
    above MAX_CONFIGS is refused first (``check_grid_size``)."""
    check_grid_size(spec, where)
    grid = dict(spec.get("grid") or {})
    grid.pop("strategy", None)
    per_strategy = grid.pop("per_strategy", None) or {}
    axes = {k: _as_list(v) for k, v in grid.items()}
    axes.setdefault("options", [{}])
    by_strategy = _strategy_axes(spec)
    names = {f.name for f in fields(TrainConfig)}
    bad = (set(axes) | set(spec.get("fixed") or {}) | {k for v in per_strategy.values() for k in v}) - names
    if bad:
        raise ValueError(f"unknown configuration fields {sorted(bad)}; known: {sorted(names)}")
    old = sorted({k for v in axes["options"] for k in deprecated_keys(v or {})})
    for key in old:  # options.chunks: each strategy's own name for it (tp_chunks, pipe_chunks)
        notices.defer(deprecation_line(key))
    out, seen = [], set()
    for strategy, own in by_strategy.items():
        cls = get_strategy(strategy)
        mine = {o.key for o in cls.options}
        keys = list(own)
        for combo in itertools.product(*(own[k] for k in keys)):
            values = dict(zip(keys, combo))
            options = {k: v for k, v in renamed_options(cls, values.pop("options") or {}).items() if k in mine}
            raw = {"strategy": strategy, **(spec.get("fixed") or {}), **values, "options": options}
            if "dataset" not in raw:
                raise ValueError("a sweep needs a dataset: put dataset: [...] under grid:")
            d = TrainConfig.from_dict(raw).as_dict()
            key = json.dumps(d, sort_keys=True, default=str)  # a set, not `d in out`: linear in the grid
            if key not in seen:
                seen.add(key)
                out.append(d)
    return out


def done_counts(out: Path, sha: str) -> Counter:
    """How many times each configuration was already recorded ok by this code version."""
    return Counter(config_key(r["config"]) for r in read_records(out)
                   if r.get("status") == "ok" and r.get("env", {}).get("git_sha") == sha)


def rejected_summary(skipped: list[str]) -> str:
    """One line for every rejected combination: how many, and each distinct reason once."""
    reasons = Counter(line.split(": ", 1)[-1].split(";")[0] for line in skipped)
    return f"{len(skipped)} combinations rejected by their strategy: " + "; ".join(
        f"{n} x {reason}" if n > 1 else reason for reason, n in reasons.most_common())


def _default_runner(cfg_dict: dict[str, Any], out: Path, ignore_memory: bool = False) -> dict | None:
    cfg = TrainConfig.from_dict(cfg_dict)
    return run_one(cfg, prepare(cfg, ignore_memory=ignore_memory), out)


def _validate(cfg_dict: dict[str, Any], ignore_memory: bool = False) -> None:
    prepare(TrainConfig.from_dict(cfg_dict), ignore_memory=ignore_memory)


def run_sweep(configs: list[dict[str, Any]], out: Path, force: bool = False,
              runner: Callable[[dict, Path], dict | None] = _default_runner,
              validator: Callable[[dict], None] = _validate, progress: bool | None = None,
              repeat: int = 1) -> SweepOutcome:
    """Run each configuration ``repeat`` times, interleaved over the grid (resumable); failures are
    recorded and the sweep goes on. Every configuration still to run is validated first: those their
    strategy rejects are skipped, and a grid that is rejected whole is bad input (UsageError, nothing run)."""
    result = SweepOutcome()
    done = Counter() if force else done_counts(out, git_sha())
    show = sys.stderr.isatty() if progress is None else progress
    rejected: set[str] = set()
    for cfg in configs:
        if done[config_key(cfg)] >= repeat or config_key(cfg) in rejected:
            continue
        try:
            validator(cfg)
        except BAD_INPUT as e:
            label = f"{cfg['strategy']} P={cfg['workers']} {cfg['model']} L={cfg['layers']} on {cfg['dataset']}"
            result.skipped.append(f"{label}: {e}")
            rejected.add(config_key(cfg))
    if configs and len(rejected) == len({config_key(c) for c in configs}):
        raise UsageError(f"no configuration can run: {rejected_summary(result.skipped)}")
    bar = tqdm(total=len(configs) * repeat, desc="sweep", unit="run", disable=not show)
    for round_ in range(repeat):
        for cfg in configs:
            bar.update()
            key = config_key(cfg)
            label = f"{cfg['strategy']} P={cfg['workers']} {cfg['model']} L={cfg['layers']} on {cfg['dataset']}"
            bar.set_postfix_str(label[:60])
            if key in rejected:
                continue
            if done[key] > round_:
                result.resumed.append(label)
                continue
            try:
                rec = runner(cfg, out)
                if rec is not None:
                    result.ran.append(rec)
                run_done(label, rec)
            except (KeyboardInterrupt, RecordError):  # Ctrl-C/SIGTERM, or no record can be written (disk full):
                raise  # stop; finished records stay, a rerun resumes
            except Exception as e:  # noqa: BLE001  (a failed configuration must not stop the sweep)
                append_record(failed_record(cfg, f"{type(e).__name__}: {e}"), out)
                result.failed.append(f"{label}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                run_done(label, None, result.failed[-1].split(": ", 1)[1])
    bar.close()
    return result
