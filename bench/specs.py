"""Typed validation of the harness's input files (sweep files, the CI configuration set) and names.

    load_sweep_spec("bench/configs/default.yaml")   # or a packaged name: "default", "neutrontp", ...
    load_ci_spec("results/ci_configs.yaml")

Every problem is a ``SpecError``: one line naming the file, the key and the fix; ``graphpar`` prints it
and exits 2 before any process starts or anything is written. Sweep files shipped with graphpar live in
``bench/configs/`` (installed with the package) and are found by name or by their old
``results/configs/NAME.yaml`` path from any directory.
"""
from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from graphpar.datasets import DatasetError, validate_spec
from graphpar.strategies import TrainConfig, get_strategy, registered
from graphpar.strategies.base import all_options

from .errors import UsageError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SWEEP_KEYS = {"out": str, "grid": dict, "fixed": dict, "name": str, "description": str, "repeat": int}
CI_KEYS = {"strategies": (str, list), "workers": int, "datasets": list, "models": list, "fixed": dict,
           "rounds": int, "margin": float, "margins": dict, "threads": int}
AT_LEAST_ONE = {"workers", "layers", "hidden", "epochs", "prop_steps", "rounds", "threads", "repeat"}
NON_NEGATIVE = {"seed", "eval_every", "warmup_epochs"}
CHOICES = {name: f.metadata["choices"] for name, f in TrainConfig.settings().items() if f.metadata.get("choices")}


class SpecError(UsageError):
    """A sweep or CI file problem: one line, exit 2."""


def config_path(name: str | Path) -> Path:
    """An existing path as given; else a config shipped with graphpar (``default``, ``results/configs/quick.yaml``...)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    packaged = CONFIG_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if packaged.is_file() and (path.parent in (Path("."), Path("results/configs"))):
        return packaged
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise SpecError(f"{name}: no such file; give a sweep YAML path or one shipped with graphpar: {known}")


def load_yaml(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML mapping from ``path``, or a one-line SpecError."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such {what} file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError(f"{path}: line {line} is not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as "
                        "UTF-8") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        if mark is None and isinstance(getattr(e, "position", None), int):  # yaml.reader.ReaderError
            where = f" at line {text[:e.position].count(chr(10)) + 1}"
        else:
            where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or getattr(e, "reason", None) or type(e).__name__
        raise SpecError(f"{path}: not valid YAML{where} ({problem})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: a {what} file is a mapping (key: value lines), not a {type(doc).__name__}")
    return doc


def _type_name(t: Any) -> str:
    return " or ".join(x.__name__ for x in t) if isinstance(t, tuple) else t.__name__


def _is(value: Any, t: Any) -> bool:
    """isinstance with YAML's reading: an int is a float, a bool is not an int."""
    ts = t if isinstance(t, tuple) else (t,)
    if isinstance(value, bool):
        return bool in ts
    if float in ts and isinstance(value, int):
        return True
    return isinstance(value, ts)


def _check_value(where: str, key: str, value: Any, t: Any) -> None:
    if not _is(value, t):
        raise SpecError(f"{where}: {key} must be {_type_name(t)}, got {value!r} ({type(value).__name__})")
    if key in AT_LEAST_ONE and isinstance(value, int) and value < 1:
        raise SpecError(f"{where}: {key} must be >= 1, got {value}")
    if key in NON_NEGATIVE and isinstance(value, int) and value < 0:
        raise SpecError(f"{where}: {key} must be >= 0, got {value}")
    if key in CHOICES and value not in CHOICES[key]:
        raise SpecError(f"{where}: {key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    if key == "dropout" and not 0 <= value < 1:
        raise SpecError(f"{where}: dropout must be in [0, 1), got {value}")


def _field_types() -> dict[str, Any]:
    """TrainConfig's fields and the Python types a YAML value may have for each."""
    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for f in fields(TrainConfig):
        args = typing.get_args(hints[f.name])
        base = typing.get_origin(hints[f.name]) or hints[f.name]
        if type(None) in args:  # int | None
            out[f.name] = tuple(a for a in args if a is not type(None)) + (type(None),)
        else:
            out[f.name] = dict if base is dict else base
    return out


def _check_options(where: str, options: Any) -> None:
    if not isinstance(options, dict):
        raise SpecError(f"{where}: options must be a mapping like {{pipe_chunks: 4}}, got {options!r}")
    known = {opt.key: opt for opt, _ in all_options().values()}
    known.update({opt.old_key: opt for opt, _ in all_options().values() if opt.old_key})  # deprecated: chunks
    for key, value in options.items():
        if key not in known:
            raise SpecError(f"{where}: unknown strategy option {key!r}; known: {', '.join(sorted(known))}")
        opt = known[key]
        _check_value(where, f"options.{key}", value, float if opt.type is float else opt.type)
        if opt.choices and value not in opt.choices:
            raise SpecError(f"{where}: options.{key} must be one of {', '.join(map(str, opt.choices))}, got {value!r}")


def _check_settings(where: str, settings: dict[str, Any], as_axes: bool) -> None:
    """TrainConfig values (lists of them on grid axes) by field type; datasets and strategies by name."""
    types = _field_types()
    for key, value in settings.items():
        if key == "per_strategy" and as_axes:  # {strategy: {axis: [...]}}: each strategy's own axes
            if not isinstance(value, dict):
                raise SpecError(f"{where}: per_strategy must map strategy names to axes, got {value!r}")
            for name, axes in value.items():
                if name not in registered():
                    raise SpecError(f"{where}: per_strategy: strategy {name!r} is not registered; "
                                    f"known: {', '.join(registered())}")
                if not isinstance(axes, dict):
                    raise SpecError(f"{where}: per_strategy: {name}: give a mapping of axes, got {axes!r}")
                _check_settings(f"{where}: per_strategy: {name}", axes, as_axes=True)
            continue
        if key not in types:
            raise SpecError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(types))}")
        values = value if as_axes and isinstance(value, list) else [value]
        if as_axes and not values:
            raise SpecError(f"{where}: {key} is an empty list; give at least one value")
        for v in values:
            if key == "options":
                _check_options(where, v)
                continue
            _check_value(where, key, v, types[key])
            if key == "strategy" and v != "all" and v not in registered():
                raise SpecError(f"{where}: strategy {v!r} is not registered; known: all, {', '.join(registered())}")
            if key == "dataset":
                try:
                    validate_spec(v)
                except DatasetError as e:
                    raise SpecError(f"{where}: dataset: {e}") from None


def _check_keys(path: Path, doc: dict[str, Any], allowed: dict[str, Any], what: str) -> None:
    for key, value in doc.items():
        if key not in allowed:
            raise SpecError(f"{path}: unknown key {key!r} in a {what} file; known: {', '.join(allowed)}")
        _check_value(str(path), key, value, allowed[key])


def validate_sweep(doc: dict[str, Any], path: str | Path = "sweep") -> dict[str, Any]:
    """A sweep spec checked key by key; returns it with ``grid`` and ``fixed`` present."""
    path = Path(path)
    _check_keys(path, doc, SWEEP_KEYS, "sweep")
    doc.setdefault("grid", {})
    doc.setdefault("fixed", {})
    _check_settings(f"{path}: grid", doc["grid"], as_axes=True)
    _check_settings(f"{path}: fixed", doc["fixed"], as_axes=False)
    return doc


def load_sweep_spec(path: str | Path) -> dict[str, Any]:
    """Read and check a sweep file (a path, or the name of one shipped with graphpar)."""
    where = config_path(path)
    return validate_sweep(load_yaml(where, "sweep"), where)


def load_ci_spec(path: str | Path) -> dict[str, Any]:
    """Read and check the CI configuration set (``graphpar regress --configs``)."""
    path = Path(path)
    doc = load_yaml(path, "CI configuration")
    _check_keys(path, doc, CI_KEYS, "CI configuration")
    if "datasets" not in doc:
        raise SpecError(f"{path}: datasets: is required (a list of catalog names or specs)")
    strategies = doc.get("strategies", "all")
    axes = {"dataset": doc["datasets"], "model": doc.get("models") or ["gcn"]}
    if strategies != "all":
        axes["strategy"] = strategies if isinstance(strategies, list) else [strategies]
    _check_settings(f"{path}", axes, as_axes=True)
    _check_settings(f"{path}: fixed", doc.get("fixed") or {}, as_axes=False)
    for key, margin in (doc.get("margins") or {}).items():
        _check_value(f"{path}: margins", str(key), margin, float)
        if not margin > 1:
            raise SpecError(f"{path}: margins: {key} must be > 1 (a slowdown factor), got {margin}")
    if "margin" in doc and doc["margin"] <= 1:
        raise SpecError(f"{path}: margin must be > 1 (a slowdown factor), got {doc['margin']}")
    return doc


def check_exactness(cfg) -> None:
    """``graphpar check`` compares against the reference to 1e-4: a strategy's ``exact_options()`` say under
    which options it is meant to match. Where it may not fill them in itself (stale modes), a run set or
    defaulted otherwise is refused, naming the flag of the exact mode."""
    cls = get_strategy(cfg.strategy)
    opts = cls.options_of(cfg)
    flags = {o.key: o.name for o in cls.options}
    for key, exact in cls.exact_options().items():
        if opts[key] == exact or (cls.check_fills_exact and key not in cfg.options):
            continue
        default = "" if key in cfg.options else " (the default)"
        raise UsageError(f"{cfg.strategy} with {flags[key]} {opts[key]}{default} is not meant to equal the reference "
                         f"(a stale or sampled mode); check the exact mode with {flags[key]} {exact}, or this mode's final "
                         "accuracy against the reference's with --parity (graphpar parity)")
