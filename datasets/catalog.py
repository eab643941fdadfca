"""Dataset names and specs -> GraphData, cached on disk as plain tensors.

    graphpar datasets        (what is available here and why not)

A spec is a catalog name (``cora``, ``coauthor-cs``, ``ogbn-arxiv``, ``rmat-arxiv``...), or
``rmat:...``, ``npz:PATH``, ``planetoid:DIR/NAME``. The first load builds the graph and writes
``$GRAPHPAR_DATA/cache/<key>.pt``; later loads read that file with torch only (no DGL, no ogb).
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .graph import CACHE_FORMAT_VERSION, GraphData
from .npz import load_npz
from .ogb_loader import OGB_GRAPHS, load_ogb, missing_ogb_files
from .planetoid import load_planetoid
from .real import load_ego_twitter, load_facebook
from .synthetic import PRESETS, generate_rmat, parse_rmat_spec

_REPO_SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


class DatasetError(ValueError):
    """A dataset name, spec or file problem, with the fix in the message."""


def data_root() -> Path:
    """``$GRAPHPAR_DATA``, default ``~/.cache/graphpar``."""
    return Path(os.environ.get("GRAPHPAR_DATA", Path.home() / ".cache" / "graphpar")).expanduser()


def shared_dirs() -> list[Path]:
    """Where real graphs are looked for: ``$GRAPHPAR_SHARED``, ``../shared/datasets``, the data root."""
    dirs = []
    if os.environ.get("GRAPHPAR_SHARED"):
        dirs.append(Path(os.environ["GRAPHPAR_SHARED"]))
    dirs += [_REPO_SHARED, Path.cwd().parent / "shared" / "datasets", data_root()]
    return list(dict.fromkeys(d.resolve() for d in dirs))


@dataclass(frozen=True)
class RealGraph:
    """A real graph of the catalog: the folder it lives in, the file that proves it is there, its loader."""

    folder: str
    probe: str
    build: Callable[[Path], GraphData]
    counts: str


REAL: dict[str, RealGraph] = {
    "cora": RealGraph("cora", "ind.cora.graph", lambda d: load_planetoid(d, "cora"), "2,708 nodes, 7 classes"),
    "citeseer": RealGraph("citeseer", "ind.citeseer.graph", lambda d: load_planetoid(d, "citeseer"),
                          "3,327 nodes, 6 classes"),
    "pubmed": RealGraph("pubmed", "ind.pubmed.graph", lambda d: load_planetoid(d, "pubmed"),
                        "19,717 nodes, 3 classes (allx missing: zero features)"),
    "amazon-computers": RealGraph("amazon-computers", "amazon_cs.npz",
                                  lambda d: load_npz(d / "amazon_cs.npz", "amazon-computers"), "13,752 nodes"),
    "coauthor-cs": RealGraph("coauthor-cs", "coauthor_cs.npz",
                             lambda d: load_npz(d / "coauthor_cs.npz", "coauthor-cs"), "18,333 nodes"),
    "coauthor-physics": RealGraph("coauthor-physics", "coauthor_phy.npz",
                                  lambda d: load_npz(d / "coauthor_phy.npz", "coauthor-physics"), "34,493 nodes"),
    "facebook-page-page": RealGraph("facebook-page-page", "facebook_edges.csv", load_facebook, "22,470 nodes"),
    "ego-twitter": RealGraph("ego-twitter", "ego-twitter-undirected.jlg", load_ego_twitter,
                             "81,306 nodes (topology only; synthetic features/labels)"),
}


def find_real(name: str) -> Path | None:
    """The first shared folder holding ``name``'s files, or None."""
    entry = REAL[name]
    for base in shared_dirs():
        if (base / entry.folder / entry.probe).exists():
            return base / entry.folder
    return None


def known_names() -> list[str]:
    return [*REAL, *OGB_GRAPHS, *PRESETS]


def _cache_key(spec: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)[:80]
    return f"{safe}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"


def _build(spec: str) -> GraphData:
    if spec in PRESETS:
        return generate_rmat(PRESETS[spec], name=spec)
    if spec.startswith("rmat:"):
        return generate_rmat(spec)
    if spec in REAL:
        where = find_real(spec)
        if where is None:
            raise DatasetError(f"{spec}: files not found; put the '{REAL[spec].folder}/' folder "
                               f"(with {REAL[spec].probe}) in one of: {', '.join(map(str, shared_dirs()))}")
        return REAL[spec].build(where)
    if spec in OGB_GRAPHS:
        return load_ogb(data_root(), spec)
    if spec.startswith("npz:"):
        return load_npz(Path(spec[4:]).expanduser())
    if spec.startswith("planetoid:"):
        path = Path(spec[len("planetoid:"):]).expanduser()
        return load_planetoid(path.parent, path.name)
    raise DatasetError(f"unknown dataset {spec!r}; known: {', '.join(known_names())}, "
                       "or a spec rmat:nodes=N,edges=E,..., npz:PATH, planetoid:DIR/NAME")


def validate_spec(spec: str) -> None:
    """Fail fast with a one-line message on a malformed or unknown spec (no data is built)."""
    if spec.startswith("rmat:"):
        try:
            parse_rmat_spec(spec)
        except ValueError as e:
            raise DatasetError(str(e)) from None
    elif not (spec in PRESETS or spec in REAL or spec in OGB_GRAPHS or spec.startswith(("npz:", "planetoid:"))):
        raise DatasetError(f"unknown dataset {spec!r}; known: {', '.join(known_names())}, "
                           "or a spec rmat:nodes=N,edges=E,..., npz:PATH, planetoid:DIR/NAME")


def cache_path(spec: str) -> Path:
    return data_root() / "cache" / f"{_cache_key(spec)}.v{CACHE_FORMAT_VERSION}.pt"


def load_dataset(spec: str, use_cache: bool = True) -> GraphData:
    """The graph a spec names; built once, then read from the cache (torch only)."""
    validate_spec(spec)
    path = cache_path(spec)
    file_backed = spec.startswith(("npz:", "planetoid:"))
    if use_cache and path.exists() and not file_backed:
        cached = GraphData.load(path)  # None when damaged, stale or edited: rebuilt below
        if cached is not None:
            return cached
    try:
        graph = _build(spec)
    except (FileNotFoundError, ValueError) as e:
        raise DatasetError(str(e)) from None
    graph.validate()
    graph.content_hash()
    if use_cache and not file_backed:
        graph.save(path)
    return graph


def availability() -> list[dict]:
    """One row per catalog name: available here or not, and why."""
    rows = []
    for name in REAL:
        where = find_real(name)
        rows.append({"name": name, "kind": "real", "available": where is not None,
                     "where": str(where) if where else f"no {REAL[name].folder}/ in {', '.join(map(str, shared_dirs()))}",
                     "counts": REAL[name].counts})
    for name in OGB_GRAPHS:
        try:
            missing = missing_ogb_files(data_root(), name)
            why = "" if not missing else f"missing {len(missing)} files under {data_root() / 'ogb'} (offline: copy them there)"
        except Exception as e:  # ogb not installed (GPU machines)
            missing, why = ["?"], f"ogb not importable: {e.__class__.__name__}"
        cached = cache_path(name).exists()
        rows.append({"name": name, "kind": "ogb", "available": cached or not missing,
                     "where": "cached" if cached else why or str(data_root() / "ogb"), "counts": ""})
    for name, spec in PRESETS.items():
        rows.append({"name": name, "kind": "synthetic", "available": True,
                     "where": "cached" if cache_path(name).exists() else "generated on first use", "counts": spec})
    return rows
