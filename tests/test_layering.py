"""The package is layered and imports only point down; there is no import cycle anywhere in graphpar.*.

    cli -> harness -> api/records (bench/*.py) -> runtime -> strategies -> datasets

Read from the source with ``ast`` (nothing is imported), so a function-level import counts as much as one
at the top of a file.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"graphpar": ROOT / "graphpar", "graphpar.bench": ROOT / "bench",
            "graphpar.strategies": ROOT / "strategies", "graphpar.datasets": ROOT / "datasets"}
# top to bottom; a module belongs to the longest prefix that names it
LAYERS = ["graphpar.bench.cli", "graphpar.bench.harness", "graphpar.bench", "graphpar.bench.runtime",
          "graphpar.strategies", "graphpar.datasets"]
ENTRY_POINTS = {"graphpar.__main__"}  # may import the CLI (python -m graphpar)


def modules() -> dict[str, Path]:
    found = {}
    for pkg, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            if "data" in rel.parts[:1] or any(p.startswith(".") for p in rel.parts):
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if pkg == "graphpar" and parts and f"graphpar.{parts[0]}" in PACKAGES:
                continue
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """graphpar modules ``name`` imports (a ``from pkg import sub`` names the submodule)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names]
            # ``from pkg import sub`` imports the submodule; the package itself only when a name is not one
            targets = subs + ([mod] if any(s not in known for s in subs) else [])
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def layer_of(name: str) -> int:
    if name == "graphpar":  # the root package holds only __version__: below every layer
        return len(LAYERS)
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len, default=None)
    return -1 if best is None else LAYERS.index(best)


GRAPH = None


def graph() -> dict[str, set[str]]:
    global GRAPH
    if GRAPH is None:
        mods = modules()
        GRAPH = {m: imports_of(m, p, set(mods)) for m, p in mods.items()}
    return GRAPH


def test_the_package_is_found():
    g = graph()
    for expected in ("graphpar.bench.api", "graphpar.bench.cli.commands", "graphpar.bench.harness.sweep",
                     "graphpar.bench.runtime.loop", "graphpar.strategies.partitioning.halo", "graphpar.datasets.graph"):
        assert expected in g
    assert "graphpar.strategies.comm" in g["graphpar.strategies.partitioning.halo"]


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_only_point_down(layer):
    upward = [f"{m} imports {t} ({t} is above {layer})"
              for m, targets in graph().items() if layer_of(m) == LAYERS.index(layer) and m not in ENTRY_POINTS
              for t in targets if layer_of(t) < layer_of(m)]
    assert not upward, "\n".join(upward)


def test_nothing_imports_the_cli():
    cli = LAYERS[0]
    users = [f"{m} imports {t}" for m, targets in graph().items() if layer_of(m) != 0 and m not in ENTRY_POINTS
             for t in targets if layer_of(t) == 0]
    assert not users, "\n".join(users) + f"\n{cli} is the top: argparse only, nothing imports it"


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    cycles = strongly_connected(graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_an_upward_import_and_a_cycle():
    fake = {"graphpar.strategies.comm": {"graphpar.bench.runtime.loop"},
            "graphpar.bench.runtime.loop": {"graphpar.strategies.comm"}}
    assert layer_of("graphpar.bench.runtime.loop") < layer_of("graphpar.strategies.comm")
    assert strongly_connected(fake) == [["graphpar.bench.runtime.loop", "graphpar.strategies.comm"]]


# -- inside strategies/: families never import each other; partitioning sits below the strategy API ----------
STRATEGIES = ROOT / "strategies"
FAMILIES = sorted(p.name for p in STRATEGIES.iterdir() if (p / "strategy.py").is_file())
LIBRARIES = {"graphpar.strategies.partitioning"}  # shared below the strategy API: no base, no family


def family_of(name: str) -> str | None:
    """``graphpar.strategies.<family>`` for a module inside a family package, else None."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[:2] == ["graphpar", "strategies"] and parts[2] in FAMILIES:
        return ".".join(parts[:3])
    return None


def family_crossings(g: dict[str, set[str]]) -> list[str]:
    return [f"{m} imports {t}" for m, targets in g.items() if family_of(m)
            for t in targets if family_of(t) and family_of(t) != family_of(m)]


def library_violations(g: dict[str, set[str]]) -> list[str]:
    api = "graphpar.strategies.base"
    return [f"{m} imports {t}" for m, targets in g.items() if any(m == lib or m.startswith(lib + ".") for lib in LIBRARIES)
            for t in targets if t == api or family_of(t)]


def test_families_are_found():
    assert {"partition", "pipeline", "sampling", "tensor"} <= set(FAMILIES)
    assert "partitioning" not in FAMILIES  # a library, not a family: it registers no strategy


def test_no_family_imports_another():
    crossings = family_crossings(graph())
    assert not crossings, "\n".join(crossings) + "\nshared pieces belong in a library below the families"


def test_partitioning_imports_neither_the_strategy_api_nor_a_family():
    bad = library_violations(graph())
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_family_crossing_and_a_library_reaching_up():
    fake = {"graphpar.strategies.pipeline.hybrid": {"graphpar.strategies.partition.strategy"},
            "graphpar.strategies.partitioning.halo": {"graphpar.strategies.base"}}
    assert family_crossings(fake) == ["graphpar.strategies.pipeline.hybrid imports graphpar.strategies.partition.strategy"]
    assert library_violations(fake) == ["graphpar.strategies.partitioning.halo imports graphpar.strategies.base"]
