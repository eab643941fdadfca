"""What a strategy costs at P=1 beyond the reference's own work: P=1 time / ``single`` time, per phase.

    python -m graphpar.bench.overhead [--dataset rmat-arxiv] [--rounds 3] [--epochs 5] [--target 1.10]
    make bench-overhead

At P=1 a strategy has no one to talk to, so anything it spends beyond ``single`` (same model, same kernel,
same seed, dropout as configured) is framework overhead that would pollute every speedup it reports.
Each case sets up ``single`` (``--single-impl twin``: the model through the kernel seam, so both sides
aggregate with the same kernel) and the strategy in its exact mode (pipeline ``--staleness 0``, sampling
``--fanouts -1 --batch-size 0``) side by side on a one-rank world, in-process, one torch thread (so the
thread's CPU clock sees all the work), and alternates their training epochs (ABBA) after one untimed
epoch each. The figure is the compute CPU seconds of an epoch (the phase timer's aggregation, dense,
layout, optimizer; comm listed apart); a round's ratio is the strategy's median over its ``--epochs``
epochs / the reference's, and a case reports the median and min-max over ``--rounds`` rounds. Exit 1 when a
ratio's median exceeds ``--target``, 0 otherwise, 2 on bad input. ``sampling``'s exact mode at P=1 has nothing
random and no one to fetch from: it builds its blocks (the training vertices' L-hop neighbourhoods) in its
first epoch, the untimed one, and trains on them after, as the reference trains on its graph.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # run as a program: before torch and DGL load, their OpenMP pools at one thread
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
from dataclasses import dataclass, field

from graphpar.strategies.base import TrainConfig

CASES = (  # (strategy, model, hidden, options): every strategy's exact P=1 mode on the models it trains
    ("tensor", "gcn", 64, {}),
    ("tensor", "decoupled", 128, {}),
    ("partition", "gcn", 64, {}),
    ("pipeline", "gcn", 64, {"staleness": 0}),
    ("sampling", "gcn", 64, {"fanouts": "-1", "batch_size": 0}),
)
PHASES = ("aggregation", "dense", "layout", "optimizer", "comm")


@dataclass
class Case:
    strategy: str
    model: str
    hidden: int
    options: dict
    informational: bool = False  # printed, not judged: the strategy's own method costs more than the reference
    ratios: list[float] = field(default_factory=list)
    ref: list[dict] = field(default_factory=list)  # per round: per-phase CPU s of single
    mine: list[dict] = field(default_factory=list)  # per round: per-phase CPU s of the strategy

    @property
    def name(self) -> str:
        opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.options.items())
        return f"{self.strategy} {self.model} h{self.hidden}" + (f" {opts}" if opts else "")


def epoch_phases(strategy, epoch: int) -> dict[str, float]:
    """One training epoch of a set-up strategy: CPU seconds per phase and of the compute phases together."""
    from graphpar.strategies.phases import TIMER  # noqa: PLC0415

    TIMER.start()
    strategy.train_epoch(epoch)
    cpu = TIMER.stop()["cpu_s"]
    out = {p: cpu.get(p, 0.0) for p in PHASES}
    out["compute"] = sum(v for p, v in out.items() if p != "comm")
    return out


def build(graph, strategy: str, model: str, hidden: int, options: dict, dataset: str):
    """A set-up strategy on a one-rank world (what the launcher's rank 0 trains at P=1)."""
    import torch  # noqa: PLC0415

    from graphpar.strategies import Communicator, TrainConfig, get_strategy  # noqa: PLC0415

    cfg = TrainConfig(strategy=strategy, dataset=dataset, workers=1, model=model, hidden=hidden, options=options)
    get_strategy(strategy).validate(cfg, graph.summary())
    torch.manual_seed(cfg.seed)
    s = get_strategy(strategy)(cfg, graph, Communicator(), torch.device("cpu"))
    s.setup()
    return s


def _median_phases(rows: list[dict]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def measure(dataset: str, cases: list[Case], rounds: int, epochs: int, progress=print) -> list[Case]:
    """Per case: the reference and the strategy set up side by side, one untimed epoch each, then ``rounds``
    rounds of ``epochs`` epoch pairs alternating which goes first (ABBA), so both see the same machine."""
    from graphpar.datasets import load_dataset  # noqa: PLC0415

    graph = load_dataset(dataset)
    for c in cases:
        ref = build(graph, "single", c.model, c.hidden, {"single_impl": "twin"}, dataset)
        mine = build(graph, c.strategy, c.model, c.hidden, c.options, dataset)
        epoch_phases(ref, 0), epoch_phases(mine, 0)  # warm-up: allocator, caches, lazily built pieces
        e = 1
        for r in range(rounds):
            a, b = [], []
            for i in range(epochs):
                if i % 2 == 0:
                    a.append(epoch_phases(ref, e)), b.append(epoch_phases(mine, e))
                else:
                    b.append(epoch_phases(mine, e)), a.append(epoch_phases(ref, e))
                e += 1
            c.ref.append(_median_phases(a))
            c.mine.append(_median_phases(b))
            c.ratios.append(c.mine[-1]["compute"] / c.ref[-1]["compute"])
            progress(f"# round {r + 1}/{rounds}: {c.name}: {c.ratios[-1]:.3f}")
        del ref, mine
    return cases


def report(cases: list[Case], target: float) -> tuple[str, bool]:
    lines = ["| case | single CPU ms/epoch | P=1 CPU ms/epoch | ratio median (min-max) | "
             + " | ".join(f"{p} ms (single / P=1)" for p in PHASES) + " | verdict |",
             "|---|---|---|---|" + "---|" * len(PHASES) + "---|"]
    ok = True
    for c in cases:
        med = statistics.median(c.ratios)
        verdict = "info" if c.informational else ("ok" if med <= target else f"OVER {target:.2f}")
        ok &= c.informational or med <= target

        def ms(rows, key):
            return 1e3 * statistics.median(x[key] for x in rows)
        phases = " | ".join(f"{ms(c.ref, p):.0f} / {ms(c.mine, p):.0f}" for p in PHASES)
        lines.append(f"| {c.name} | {ms(c.ref, 'compute'):.0f} | {ms(c.mine, 'compute'):.0f} | {med:.3f} "
                     f"({min(c.ratios):.3f}-{max(c.ratios):.3f}) | {phases} | "
                     f"{verdict} |")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphpar.bench.overhead", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default=TrainConfig.settings()["dataset"].default)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4, help="epoch pairs per round")
    p.add_argument("--target", type=float, default=1.10)
    p.add_argument("--strategies", default="", help="comma list to restrict the cases (default: all)")
    a = p.parse_args(argv)
    wanted = [s for s in a.strategies.split(",") if s]
    known = sorted({c[0] for c in CASES})
    if a.rounds < 1 or a.epochs < 1 or a.target <= 0 or any(s not in known for s in wanted):
        print(f"overhead: pass --rounds >= 1, --epochs >= 1, --target > 0 and --strategies from "
              f"{','.join(known)}", file=sys.stderr)
        return 2
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    cases = [Case(*c) for c in CASES if not wanted or c[0] in wanted]
    measure(a.dataset, cases, a.rounds, a.epochs, progress=lambda m: print(m, file=sys.stderr, flush=True))
    text, ok = report(cases, a.target)
    print(f"P=1 compute CPU / single (twin, same kernel) on {a.dataset}: {a.rounds} rounds of {a.epochs} "
          f"alternating epoch pairs after one warm-up each, 1 thread; target <= {a.target:.2f}")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
