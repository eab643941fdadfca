"""Dataset names and specs -> GraphData, cached on disk as safetensors files (``tensorfile``).

    graphpar datasets        (what is available here and why not)

A spec is a catalog name (``cora``, ``coauthor-cs``, ``ogbn-arxiv``, ``rmat-arxiv``...), or
``rmat:...``, ``npz:PATH``, ``planetoid:DIR/NAME``, ``dgl:PATH`` (a ``dgl.save_graphs`` file) or
``edgelist:PATH[,feat=F][,label=L][,directed=1]``. The first load builds the graph and writes
``$GRAPHPAR_DATA/cache/<key>.v<format>.safetensors``; later loads read that file (no DGL, no ogb, no
pickle: nothing in a cache file can run code). A cache that cannot be written (read-only or full folder) is
one warning, and the run goes on uncached.

Real graphs are looked up in the folder this package carries (``datasets/data/<name>/``), then in
``$GRAPHPAR_DATA/<name>/``; a graph found in neither is downloaded there when online (download.py).
Nothing is looked up relative to the current directory.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .download import SOURCES, DownloadError, fetch, how_to_get, offline
from .graph import CACHE_FORMAT_VERSION, GraphData
from .npz import load_npz
from .ogb_loader import OGB_GRAPHS, load_ogb, missing_ogb_files
from .planetoid import load_planetoid
from .real import load_ego_twitter, load_facebook
from .synthetic import PRESETS, generate_rmat, parse_rmat_spec
from .user_graphs import load_dgl_file, load_edgelist, parse_edgelist_spec

FILE_PREFIXES = ("npz:", "planetoid:", "dgl:", "edgelist:")
SPEC_HELP = ("or a spec rmat:nodes=N,edges=E,..., npz:PATH, planetoid:DIR/NAME, dgl:PATH, "
             "edgelist:PATH[,feat=F][,label=L][,directed=1]")


class DatasetError(ValueError):
    """A dataset name, spec or file problem, with the fix in the message."""


def data_root() -> Path:
    """``$GRAPHPAR_DATA``, default ``~/.cache/graphpar``."""
    return Path(os.environ.get("GRAPHPAR_DATA", Path.home() / ".cache" / "graphpar")).expanduser()


def repo_data_dir() -> Path:
    """The real graphs shipped with the package (``datasets/data/``)."""
    return Path(__file__).resolve().parent / "data"


def search_dirs() -> list[Path]:
    """Where real graphs are looked for, in order: the package's data folder, then ``$GRAPHPAR_DATA``."""
    return list(dict.fromkeys(d.resolve() for d in (repo_data_dir(), data_root())))


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
                        "19,717 nodes, 3 classes"),
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
    """The folder holding ``name``'s files: the first complete copy, else the first usable one, else None."""
    entry = REAL[name]
    usable = [base / entry.folder for base in search_dirs() if (base / entry.folder / entry.probe).exists()]
    for folder in usable:
        if all((folder / r.name).exists() for r in SOURCES.get(name, ())):
            return folder
    return usable[0] if usable else None


def real_folder(name: str) -> Path:
    """``find_real``, downloading into ``$GRAPHPAR_DATA/<folder>`` when the graph is nowhere (one-line error offline)."""
    where = find_real(name)
    if where is not None:
        return where
    try:
        return fetch(name, data_root() / REAL[name].folder)
    except DownloadError as e:
        raise DatasetError(str(e)) from None


def known_names() -> list[str]:
    return [*REAL, *OGB_GRAPHS, *PRESETS]


def _cache_key(spec: str) -> str:
    """File-name-safe key; a real graph's key includes the folder (and whether it is complete) it is read from."""
    ident = spec
    if spec in REAL and (where := find_real(spec)) is not None:
        ident = f"{spec}@{where}:{sorted(r.name for r in SOURCES.get(spec, ()) if (where / r.name).exists())}"
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec)[:80]
    return f"{safe}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}"


def _build(spec: str) -> GraphData:
    if spec in PRESETS:
        return generate_rmat(PRESETS[spec], name=spec)
    if spec.startswith("rmat:"):
        return generate_rmat(spec)
    if spec in REAL:
        return REAL[spec].build(real_folder(spec))
    if spec in OGB_GRAPHS:
        return load_ogb(data_root(), spec)
    if spec.startswith("npz:"):
        return load_npz(Path(spec[4:]).expanduser())
    if spec.startswith("planetoid:"):
        path = Path(spec[len("planetoid:"):]).expanduser()
        return load_planetoid(path.parent, path.name)
    if spec.startswith("dgl:"):
        return load_dgl_file(Path(spec[4:]).expanduser())
    if spec.startswith("edgelist:"):
        return load_edgelist(spec)
    raise DatasetError(f"unknown dataset {spec!r}; known: {', '.join(known_names())}, {SPEC_HELP}")


def validate_spec(spec: str) -> None:
    """Fail fast with a one-line message on a malformed or unknown spec (no data is built)."""
    try:
        if spec.startswith("rmat:"):
            parse_rmat_spec(spec)
        elif spec.startswith("edgelist:"):
            parse_edgelist_spec(spec)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    if not (spec in PRESETS or spec in REAL or spec in OGB_GRAPHS or spec.startswith(("rmat:", *FILE_PREFIXES))):
        raise DatasetError(f"unknown dataset {spec!r}; known: {', '.join(known_names())}, {SPEC_HELP}")


def cache_path(spec: str) -> Path:
    return data_root() / "cache" / f"{_cache_key(spec)}.v{CACHE_FORMAT_VERSION}.safetensors"


def load_dataset(spec: str, use_cache: bool = True) -> GraphData:
    """The graph a spec names; built once, then read from the cache (torch only)."""
    validate_spec(spec)
    path = cache_path(spec)
    file_backed = spec.startswith(FILE_PREFIXES)
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
        try:
            graph.save(path)
        except OSError as e:
            print(f"graphpar: warning: cannot write the dataset cache {path} ({e.strerror or e}); running "
                  f"uncached (make $GRAPHPAR_DATA writable to keep it)", file=sys.stderr)
    return graph


def availability() -> list[dict]:
    """One row per catalog name: available here or not, and why."""
    rows = []
    for name in REAL:
        where = find_real(name)
        if where is None:
            why = ("not here (GRAPHPAR_OFFLINE=1): " if offline() else "downloads on first use; offline: ") \
                + how_to_get(name, data_root() / REAL[name].folder)
        else:
            missing = [r.name for r in SOURCES.get(name, ()) if not (where / r.name).exists()]
            why = str(where) + (f" (without {', '.join(missing)}: python -m graphpar.datasets {name} "
                                "fetches the complete graph)" if missing else "")
        rows.append({"name": name, "kind": "real", "available": where is not None, "where": why,
                     "counts": REAL[name].counts})
    for name in OGB_GRAPHS:
        missing = missing_ogb_files(data_root(), name)
        why = "" if not missing else (f"downloads from OGB on first use into {data_root() / 'ogb'} "
                                      f"(offline: unzip it there, {len(missing)} files missing)")
        cached = cache_path(name).exists()
        rows.append({"name": name, "kind": "ogb", "available": cached or not missing,
                     "where": "cached" if cached else why or str(data_root() / "ogb"), "counts": ""})
    for name, spec in PRESETS.items():
        rows.append({"name": name, "kind": "synthetic", "available": True,
                     "where": "cached" if cache_path(name).exists() else "generated on first use", "counts": spec})
    return rows
