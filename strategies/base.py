"""The strategy interface, its registry and the run configuration every strategy receives.

    @register
    class MyStrategy(Strategy):
        name = "mine"
        def setup(self): ...; def train_epoch(self, epoch): ...; def evaluate(self): ...

Adding a strategy is adding one module to ``strategies/`` that registers itself (and importing it in
``strategies/__init__.py``). The harness knows strategies only through this interface.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .comm import Communicator
from .errors import ConfigError
from .kernels import resolve_kernel
from .models import MODELS, ModelSpec
from .partitioning.partitioner import METHODS as PARTITION_METHODS
from .training import allreduce_grads, make_optimizer, make_params

MAX_WORKERS, MAX_LAYERS, MAX_HIDDEN, MAX_HEADS = 1 << 16, 1024, 1 << 16, 256  # beyond these a value is a typo
DEFAULT_TIMEOUT_S = 300.0  # a stuck collective (--timeout), and an in-process run as a whole (train_local)




@dataclass(frozen=True)
class Option:
    """A strategy-specific command-line option (``--tp-mode`` becomes key ``tp_mode``)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    old_name: str | None = None  # a deprecated spelling still accepted for one release (``--chunks``)

    @property
    def key(self) -> str:
        return flag_key(self.name)

    @property
    def old_key(self) -> str | None:
        return flag_key(self.old_name) if self.old_name else None


class Options:
    """A strategy's options, parsed once: typed attributes (``opt.pipe_chunks``), each one's default where
    the run did not set it; ``opt["pipe_chunks"]`` reads the same. ``Strategy.options_type()`` builds the
    dataclass from the strategy's ``Option`` declarations."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def flag_key(flag: str) -> str:
    """``--tp-chunks`` -> ``tp_chunks``: the key of a flag in ``TrainConfig.options`` and in sweep files."""
    return flag.lstrip("-").replace("-", "_")


def deprecation_line(old_key: str) -> str:
    """One line telling a user of a deprecated option spelling what each strategy calls it now."""
    names = [f"{o.name} ({name})" for name, cls in registered().items() for o in cls.options if o.old_key == old_key]
    return f"graphpar: --{old_key.replace('_', '-')} / options.{old_key} is deprecated and goes in the next " \
           f"release; use {' or '.join(names)}"


PARTITION_OPTION = Option("--partition", str, "metis", "which vertex partitioner cuts the graph into the ranks' "
                          "parts (METIS: fewest cut edges)", PARTITION_METHODS)  # one flag, declared once: partition, sampling


def setting(default: Any, help: str, flag: str | None = None, choices: tuple | None = None) -> Any:
    """A TrainConfig field with its default and its command-line help: the one place both live
    (``graphpar``'s training flags are generated from them). ``flag`` where it is not ``--field-name``."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


@dataclass
class TrainConfig:
    """Everything a run needs; recorded verbatim in the results."""

    strategy: str = field(metadata={"help": "a registered strategy (graphpar strategies)"})
    dataset: str = setting("rmat-arxiv", "catalog name or spec (graphpar datasets)")
    workers: int = setting(1, "number of ranks P (all hosts together)")
    model: str = setting("gcn", "gcn | sage | gat | decoupled")
    layers: int = setting(2, "GNN layers L")
    hidden: int = setting(16, "hidden width")
    dropout: float = setting(0.5, "dropout rate in [0, 1)")
    dropout_masks: str = setting("stream", "dropout noise: 'stream' (each rank's torch generator) or 'keyed' (a "
                                 "hash of seed, epoch, layer, vertex, column: every strategy drops what the "
                                 "reference drops)", choices=("stream", "keyed"))
    lr: float = setting(0.01, "Adam learning rate")
    weight_decay: float = setting(5e-4, "Adam weight decay")
    epochs: int = setting(200, "training epochs")
    seed: int = setting(0, "seed of weights, dropout and random partitions")
    device: str = setting("cpu", "where each rank computes", choices=("cpu", "cuda"))
    kernel: str = setting("auto", "aggregation backend", choices=("auto", "torch", "dgl"))
    residual: bool = setting(False, "residual connections between equal-width layers")
    prop_steps: int | None = setting(None, "decoupled: propagation steps K (default: --layers)")
    heads: int = setting(4, "gat: attention heads of each hidden layer (concatenated; --hidden is their total width)")
    out_heads: int = setting(1, "gat: attention heads of the output layer (averaged)")
    eval_every: int = setting(0, "evaluate every N epochs (accuracy curve)")
    warmup_epochs: int = setting(1, "epochs left out of the timing summary")
    timeout_s: float = setting(DEFAULT_TIMEOUT_S, "seconds before a stuck collective fails the run", flag="--timeout")
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.options = options_now(self.strategy, self.options)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """Raise ConfigError naming the flag and the range when a value cannot run (before any work)."""
        ints = {"--workers": (self.workers, 1, MAX_WORKERS), "--epochs": (self.epochs, 1, 10**7),
                "--layers": (self.layers, 1, MAX_LAYERS), "--hidden": (self.hidden, 1, MAX_HIDDEN),
                "--eval-every": (self.eval_every, 0, 10**7), "--warmup-epochs": (self.warmup_epochs, 0, 10**7),
                "--seed": (self.seed, 0, 2**63 - 1), "--heads": (self.heads, 1, MAX_HEADS),
                "--out-heads": (self.out_heads, 1, MAX_HEADS)}
        if self.prop_steps is not None:
            ints["--prop-steps"] = (self.prop_steps, 0, MAX_LAYERS)
        for flag, (value, low, high) in ints.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{flag} must be a whole number, got {value!r}")
            if not low <= value <= high:
                raise ConfigError(f"{flag} must be {f'>= {low}' if value < low else f'<= {high}'}, got {value}")
        floats = {"--dropout": (self.dropout, "in [0, 1)", lambda v: 0 <= v < 1),
                  "--lr": (self.lr, "> 0", lambda v: v > 0),
                  "--weight-decay": (self.weight_decay, ">= 0", lambda v: v >= 0),
                  "--timeout": (self.timeout_s, "> 0 (seconds)", lambda v: v > 0)}
        for flag, (value, need, ok) in floats.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not ok(value):
                raise ConfigError(f"{flag} must be a finite number {need}, got {value!r}")
        if self.model == "gat" and self.layers > 1 and self.hidden % self.heads:
            raise ConfigError(f"--hidden {self.hidden} must be a multiple of --heads {self.heads} (gat concatenates "
                              f"the heads); pass --hidden {self.heads * -(-self.hidden // self.heads)}")
        if not isinstance(self.options, dict):
            raise ConfigError(f"options must be a mapping of strategy options, got {type(self.options).__name__}")
        for key, value in self.options.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{key.replace('_', '-')} must be a finite number, got {value}")

    @classmethod
    def settings(cls) -> dict[str, Any]:
        """The fields a flag sets (every one but ``options``), by name: each with its default and help."""
        return {f.name: f for f in fields(cls) if f.metadata}

    @staticmethod
    def flag_of(f) -> str:
        """The command-line flag of a field (``--weight-decay``; ``--timeout`` for ``timeout_s``)."""
        return f.metadata.get("flag") or "--" + f.name.replace("_", "-")

    @classmethod
    def from_dict(cls, d: dict[str, Any], strict: bool = True) -> "TrainConfig":
        """A config from its dict; a key that is no field is an error (``strict=False``: dropped, for
        records written by older versions)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown and strict:
            raise ConfigError(f"unknown configuration keys {unknown}; known: {sorted(names)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def model_spec(self, in_dim: int, out_dim: int) -> ModelSpec:
        return ModelSpec.build(self.model, in_dim, self.hidden, out_dim, self.layers, self.dropout,
                               self.residual, self.prop_steps, self.heads, self.out_heads, self.dropout_masks)


class Strategy(ABC):
    """One way of training a full-graph GNN on P workers. One instance per rank."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    models: ClassVar[tuple[str, ...]] = MODELS
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, cfg: TrainConfig, graph, comm: Communicator, device: torch.device):
        self.cfg, self.graph, self.comm, self.device = cfg, graph, comm, torch.device(device)
        self.spec = cfg.model_spec(graph.num_features, graph.num_classes)
        self.opt = self.options_of(cfg)

    # -- options ------------------------------------------------------------------------------------
    @classmethod
    def options_type(cls) -> type[Options]:
        """This strategy's options as a frozen dataclass (field per ``Option``: its type, default and help)."""
        if cls.__dict__.get("_options_type") is None or cls._options_type.declared is not cls.options:
            made = make_dataclass(f"{cls.__name__}Options", [
                (o.key, o.type, field(default=o.default, metadata={"help": o.help, "flag": o.name}))
                for o in cls.options], bases=(Options,), frozen=True)
            made.declared = cls.options
            cls._options_type = made
        return cls._options_type

    @classmethod
    def options_of(cls, cfg: TrainConfig) -> Options:
        """This strategy's options in ``cfg``, checked (``check_options``) and typed, each one's default where
        it is not set."""
        cls.check_options(cfg.options)
        typed = {o.key: float(cfg.options[o.key]) if o.type is float else cfg.options[o.key]
                 for o in cls.options if o.key in cfg.options}
        return cls.options_type()(**typed)

    @classmethod
    def exact_options(cls) -> dict[str, Any]:
        """Options under which this strategy trains exactly the reference. ``graphpar check`` fills them in
        where the user did not set the option (e.g. sampling: full fanout, one batch), unless
        ``check_fills_exact`` is False: then a value other than these (set or default) is refused with the
        flag that makes the run exact (stale modes: not meant to match, so not silently switched off)."""
        return {}

    check_fills_exact: ClassVar[bool] = True

    # -- helpers for setup and the training step ------------------------------------------------------
    def kernel_name(self) -> str:
        """The aggregation backend: ``--kernel``, else the fastest measured on this device (``kernels.FASTEST``)."""
        return resolve_kernel(self.cfg.kernel, self.device)

    def rows_of(self, rows) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Features, labels and train/val/test masks of the vertices ``rows`` on this rank's device."""
        g, dev = self.graph, self.device
        masks = [m[rows].to(dev) for m in (g.train_mask, g.val_mask, g.test_mask)]
        return g.feat[rows].to(dev), g.label[rows].to(dev), masks

    def init_model(self, params: dict[str, Tensor]) -> None:
        """``self.params`` (leaf tensors on this rank's device) and their Adam optimizer."""
        self.params = make_params(params, self.device)
        self.optimizer = make_optimizer(self.params, self.cfg.lr, self.cfg.weight_decay)

    def data_parallel_step(self, loss_of) -> Tensor:
        """One optimizer step on replicated weights: ``loss_of()`` (this rank's share of the global mean
        loss), backward, weight gradients summed over ranks, step. Returns the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        allreduce_grads(self.comm, self.params)
        self.optimizer.step()
        return loss

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Every key one of this strategy's options and every value of its type, else one ConfigError line
        naming the valid options (``validate`` runs it before any work; the CLI and sweep files come here too)."""
        known = {o.key: o for o in cls.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(f"strategy {cls.name} has no option {', '.join(map(repr, unknown))}; its options: "
                              f"{', '.join(known) or 'none'}")
        for key, value in options.items():
            want = (int, float) if known[key].type is float else known[key].type
            if isinstance(value, bool) is not (known[key].type is bool) or not isinstance(value, want):
                raise ConfigError(f"{known[key].name} takes {known[key].type.__name__} values, got {value!r}")

    @classmethod
    def validate(cls, cfg: TrainConfig, graph_summary: dict[str, Any]) -> None:
        """Raise ConfigError when this strategy cannot run ``cfg`` on a graph with these counts."""
        cls.check_options(cfg.options)
        if cfg.model not in cls.models:
            raise ConfigError(f"strategy {cls.name} trains models {', '.join(cls.models)}, not {cfg.model!r}; "
                              f"pass --model {cls.models[0]}")
        if cfg.workers > graph_summary["nodes"]:
            raise ConfigError(f"--workers {cfg.workers} exceeds the graph's {graph_summary['nodes']} vertices")

    @classmethod
    def graph_summary(cls, cfg: TrainConfig) -> dict[str, Any] | None:
        """The graph's summary without loading the graph, for a run whose ranks never load it whole
        (``partition --partition-dir``: from the manifest, checked against ``cfg``); None: load the dataset."""
        return None

    @classmethod
    def rank_graph(cls, cfg: TrainConfig, rank: int) -> Any | None:
        """What rank ``rank`` trains on when it loads only its own piece; None: the whole dataset."""
        return None

    @abstractmethod
    def setup(self) -> None:
        """Build this rank's view of the graph (partition, placement) and its model replica."""

    @abstractmethod
    def train_epoch(self, epoch: int) -> float:
        """One full-graph training step; returns the global mean training loss (same on every rank)."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Global train/val/test accuracy (same on every rank); communication tagged ``eval/``."""

    def full_parameters(self) -> dict[str, Tensor]:
        """The model's parameters in the reference's names, complete on rank 0 (for checks); replicated
        weights by default, a strategy that splits them gathers them."""
        return {k: v.detach().cpu().clone() for k, v in self.params.items()}

    def worker_stats(self) -> dict[str, Any]:
        """Per-rank facts for the record: local_vertices, local_edges, and anything strategy-specific."""
        return {}

    def info(self) -> dict[str, Any]:
        """Run-level facts for the record (partition cut, stage cut, ...), from rank 0."""
        return {}


_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy available by its ``name``; a duplicate name is an error."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute 'name'")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """The registered class, or a ConfigError listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def registered() -> dict[str, type[Strategy]]:
    return dict(sorted(_REGISTRY.items()))


def renamed_options(cls: type[Strategy], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with each deprecated key (``chunks``) under the name ``cls`` gives it now (``pipe_chunks``);
    a key given under both names keeps the new one. Keys ``cls`` does not know are left as they are."""
    new = {o.old_key: o.key for o in cls.options if o.old_key}
    if not any(k in new for k in options):
        return options
    out = {k: v for k, v in options.items() if k not in new}
    for old, key in new.items():
        if old in options:
            out.setdefault(key, options[old])
    return out


def options_now(strategy: str, options: Any) -> Any:
    """A run's options under today's names (``chunks`` -> ``pipe_chunks``): configs and records written
    before a rename read as new ones. Unchanged for a strategy not registered here."""
    if isinstance(options, dict) and strategy in _REGISTRY:
        return renamed_options(_REGISTRY[strategy], options)
    return options


def deprecated_keys(options: dict[str, Any]) -> list[str]:
    """The deprecated option keys (``chunks``) in ``options``, for a deprecation line."""
    old = {o.old_key for cls in _REGISTRY.values() for o in cls.options if o.old_key}
    return sorted(k for k in options if k in old)


def all_options() -> dict[str, tuple[Option, list[str]]]:
    """Every option flag of every strategy, with the strategies that declare it."""
    out: dict[str, tuple[Option, list[str]]] = {}
    for name, cls in registered().items():
        for opt in cls.options:
            if opt.name in out:
                out[opt.name][1].append(name)
            else:
                out[opt.name] = (opt, [name])
    return out
