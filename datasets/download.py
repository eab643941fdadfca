"""Where each real graph's files come from, their checksums, and fetching them when online.

    python -m graphpar.datasets ego-twitter      # into $GRAPHPAR_DATA/ego-twitter/ (datasets/__main__.py)
    python -m graphpar.datasets --verify         # the copies this repository carries

Every file is pinned to a commit of its source repository and checked by size and sha256 before it is
kept, so a download gives the same bytes as the copy in ``datasets/data/`` (the same files DGL's and
PyG's Planetoid/Shchur loaders download). A failed download (offline, proxy, wrong checksum) is one
line naming the files, their URLs and the folder to put them in. ``GRAPHPAR_OFFLINE=1`` never tries.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PLANETOID = "https://raw.githubusercontent.com/kimiyoung/planetoid/af6abf468a772cc055bec88c52e4d6f51b7c37e3/data/"
SHCHUR = "https://raw.githubusercontent.com/EdisonLeeeee/GraphData/f8022c26b917346f2a461ffec0ec5ae24b36de68/datasets/"
MUSAE = "https://raw.githubusercontent.com/benedekrozemberczki/MUSAE/5f901232957b6c9985d750aac48cda39a4b24285/input/"
SNAP_JL = ("https://raw.githubusercontent.com/JuliaGraphs/SNAPDatasets.jl/dadd14a69b908d3dfc824d7c9f8c04f6fda72e59/"
           "data/ego-twitter/")


@dataclass(frozen=True)
class Remote:
    """One file of a graph: its local name, URL, size and sha256."""

    name: str
    url: str
    size: int
    sha256: str


def _planetoid(name: str, files: list[tuple[str, int, str]]) -> tuple[Remote, ...]:
    return tuple(Remote(f"ind.{name}.{part}", f"{PLANETOID}ind.{name}.{part}", size, sha) for part, size, sha in files)


SOURCES: dict[str, tuple[Remote, ...]] = {
    "cora": _planetoid("cora", [
        ("x", 22119, "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab"),
        ("y", 4054, "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1"),
        ("tx", 148025, "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a"),
        ("ty", 28135, "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad"),
        ("allx", 257305, "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543"),
        ("ally", 47959, "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71"),
        ("graph", 59847, "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d"),
        ("test.index", 5000, "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875")]),
    "citeseer": _planetoid("citeseer", [
        ("x", 31087, "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6"),
        ("y", 3014, "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924"),
        ("tx", 260321, "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21"),
        ("ty", 24135, "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce"),
        ("allx", 595021, "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668"),
        ("ally", 55623, "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95"),
        ("graph", 61987, "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7"),
        ("test.index", 5000, "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4")]),
    # allx (7.6 MB) is not carried in datasets/data/pubmed/; its checksum is the Git LFS pointer's of the same
    # file in D61-IA/FisherGCN (data/ind.pubmed.allx). Downloading pubmed gives the complete graph.
    "pubmed": _planetoid("pubmed", [
        ("x", 23172, "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33"),
        ("y", 854, "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3"),
        ("tx", 405505, "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d"),
        ("ty", 12135, "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd"),
        ("allx", 7578385, "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e"),
        ("ally", 224739, "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e"),
        ("graph", 471808, "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9"),
        ("test.index", 6000, "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5")]),
    "amazon-computers": (Remote("amazon_cs.npz", SHCHUR + "amazon_cs.npz", 3410531,
                                "a6942db609f196b53503d91b99a02ad8d052d5d9be8ef41db976fb65f66ed1f3"),),
    "coauthor-cs": (Remote("coauthor_cs.npz", SHCHUR + "coauthor_cs.npz", 2800548,
                           "7b7b51bf270d341f1c4231834c58a526bb04db003fd76a6d2f51ad7d252005ed"),),
    "coauthor-physics": (Remote("coauthor_phy.npz", SHCHUR + "coauthor_phy.npz", 3772032,
                                "1c930d99910763bc5f0c1aa90e8baa945f5ad6027663fe5332d0f08fde33cd7d"),),
    "facebook-page-page": (
        Remote("facebook_edges.csv", MUSAE + "edges/facebook_edges.csv", 1882610,
               "7c50d8f02a75cc0829577814a1fc14535164daa38d79c3612340c9e9cdbd4022"),
        Remote("facebook.json", MUSAE + "features/facebook.json", 2088766,
               "ea870537646a93642a0008d38aa9bfeff02018070ba97b1f3f469d9622626436"),
        Remote("facebook_target.csv", MUSAE + "target/facebook_target.csv", 1177912,
               "7bd96eafea3c2ca40f44bfa9e73642194696c21e38c7b29ed409c32ad14075cd")),
    "ego-twitter": (Remote("ego-twitter-undirected.jlg", SNAP_JL + "ego-twitter-undirected.jlg", 3366507,
                           "7f81dda501ad839152246ff328db8108d84b9646534a7236726e8f7e62ef6d11"),),
}

# Files a carried copy may lack (the loader copes and flags it in the record).
OPTIONAL = {"pubmed": {"ind.pubmed.allx"}}


class DownloadError(FileNotFoundError):
    """A graph is not on disk and could not be fetched; the message says what to put where."""


def offline() -> bool:
    return os.environ.get("GRAPHPAR_OFFLINE") == "1"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bad_files(name: str, folder: Path, complete: bool = False) -> list[str]:
    """Files of ``name`` in ``folder`` that are missing or differ from the pinned size/sha256.

    A missing optional file counts only with ``complete``."""
    bad = []
    for r in SOURCES[name]:
        path = folder / r.name
        if not path.exists():
            if complete or r.name not in OPTIONAL.get(name, ()):
                bad.append(r.name)
        elif path.stat().st_size != r.size or sha256(path) != r.sha256:
            bad.append(r.name)
    return bad


def how_to_get(name: str, folder: Path) -> str:
    """One line: the files of ``name``, where they come from, where they go."""
    files = SOURCES[name]
    base = os.path.commonprefix([r.url for r in files]).rpartition("/")[0] + "/"
    return (f"download {', '.join(r.url[len(base):] for r in files)} from {base} into {folder}/ "
            f"(python -m graphpar.datasets {name} does it and checks sha256)")


def fetch(name: str, folder: Path, timeout: float = 30.0) -> Path:
    """Download every missing or wrong file of ``name`` into ``folder``; each is kept only when its sha256 matches."""
    if offline():
        raise DownloadError(f"{name}: not found and GRAPHPAR_OFFLINE=1; {how_to_get(name, folder)}")
    folder.mkdir(parents=True, exist_ok=True)
    for r in SOURCES[name]:
        target = folder / r.name
        if target.exists() and target.stat().st_size == r.size and sha256(target) == r.sha256:
            continue
        partial = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(r.url, timeout=timeout) as resp, open(partial, "wb") as out:
                while block := resp.read(1 << 20):
                    out.write(block)
        except OSError as e:
            partial.unlink(missing_ok=True)
            reason = getattr(e, "reason", None) or e
            raise DownloadError(f"{name}: download failed ({reason}); {how_to_get(name, folder)}") from None
        got = sha256(partial)
        if got != r.sha256:
            partial.unlink()
            raise DownloadError(f"{name}: {r.url} has sha256 {got[:12]}..., expected {r.sha256[:12]}...; "
                                "the source changed: report it, or put a verified copy in " + str(folder))
        partial.replace(target)
    return folder
