"""The CI gate's control: the code the baseline was taken at, rebuilt from git and run on this machine.

    sha, why = control_sha(baseline, repo)          # the baseline's commit, or None and the reason
    same_code(sha, repo)                             # nothing that can change a number differs: no A/B needed
    with control_tree(sha, repo) as root:            # that commit laid out as an importable ``graphpar``
        entries = run_side(spec, root, workdir)      # one round of the CI set, in its own process

Stored CPU numbers only compare on the machine that wrote them: unchanged code measured 1.37x on
another machine of the same kind (CI, 2026-12-03), and Cora entries 1.6-2.0x the day before, because a
CPU whose dense and sparse costs stand in another proportion moves "compute CPU per probe CPU" however
the probe is chosen. Running the baseline's own code beside the code under test, interleaved, on the
same machine and under the same load, leaves only the code as a difference (an A/B run, as
TorchBench's regression detector and rustc-perf do).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..record import REPO_ROOT

__all__ = ["REPO_ROOT", "SIDE_ENV", "SideFailed", "code_dirty", "control_sha", "control_tree", "head_sha", "resolve",
           "run_side", "same_code", "write_round_spec"]

# Everything a CI number depends on: the package's code, its pins and the CI set itself.
CODE_PATHS = ("graphpar", "bench", "strategies", "datasets", "setup.cfg", "pyproject.toml",
              "results/ci_configs.yaml")
SIDE_ENV = "GRAPHPAR_CI_SIDE"  # set in a side's process: it measures for the gate, not for a person
SIDE_TIMEOUT_S = 1800  # one round of the CI set takes 1-7 minutes here; a stuck side ends the gate


class SideFailed(RuntimeError):
    """One side of the A/B run (``side``: "control" or "current") could not be built or did not finish."""

    def __init__(self, message: str, side: str = "control") -> None:
        super().__init__(message)
        self.side = side


def _git(repo: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, timeout=timeout)


def head_sha(repo: Path) -> str | None:
    """Full commit of HEAD, or None outside a git checkout."""
    try:
        out = _git(repo, "rev-parse", "--verify", "HEAD^{commit}")
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode().strip() if out.returncode == 0 else None


def code_dirty(repo: Path) -> bool:
    """Whether the code under CODE_PATHS differs from HEAD (edited, staged or new files)."""
    out = _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS)
    return out.returncode != 0 or bool(out.stdout.strip())


def control_sha(baseline: dict[str, Any], repo: Path) -> tuple[str | None, str]:
    """The commit the baseline's numbers were measured at, resolved in ``repo``; else (None, why)."""
    sha = baseline.get("code_sha")
    if not sha:
        recorded = str(baseline.get("git_sha") or "")
        if "+dirty" in recorded or not re.fullmatch(r"[0-9a-f]{7,40}", recorded):
            return None, (f"the baseline was written from uncommitted code ({recorded or 'no commit recorded'}); "
                          "commit, then refresh it with make bench-baseline")
        sha = recorded
    return resolve(sha, repo)


def resolve(ref: str, repo: Path) -> tuple[str | None, str]:
    """Full sha of a commit-ish in ``repo``, or (None, why)."""
    try:
        out = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"git is not usable here ({type(e).__name__})"
    if out.returncode != 0:
        return None, f"commit {ref} is not in this clone (a shallow clone? fetch it, or pass --control stored)"
    return out.stdout.decode().strip(), ""


def same_code(sha: str, repo: Path) -> bool:
    """Whether the working tree's CODE_PATHS equal commit ``sha``'s (untracked files count as changes)."""
    diff = _git(repo, "diff", "--quiet", sha, "--", *CODE_PATHS)
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "--", *CODE_PATHS)
    return diff.returncode == 0 and untracked.returncode == 0 and not untracked.stdout.strip()


@contextlib.contextmanager
def control_tree(sha: str, repo: Path) -> Iterator[Path]:
    """Commit ``sha`` extracted into a temporary folder as an importable ``graphpar`` package (the
    ``package_dir`` mapping done by hand), with its ``results/ci_configs.yaml``; removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="graphpar-control-"))
    try:
        archive = work / "code.tar"
        with archive.open("wb") as f:
            out = subprocess.run(["git", "archive", "--format=tar", sha, "--", *_present(sha, repo)],
                                 cwd=repo, stdout=f, stderr=subprocess.PIPE, timeout=120)
        if out.returncode != 0:
            raise SideFailed(f"git archive {sha[:12]} failed: {out.stderr.decode().strip()[:200]}")
        src = work / "src"
        with tarfile.open(archive) as tar:
            tar.extractall(src, filter="data")  # our own commit, still no links or devices out of the folder
        archive.unlink()
        root = work / "root"
        package = root / "graphpar"
        if not (src / "graphpar" / "__init__.py").is_file():
            raise SideFailed(f"commit {sha[:12]} has no graphpar/ package to run")
        shutil.move(src / "graphpar", package)
        for name in ("bench", "strategies", "datasets"):
            shutil.move(src / name, package / name)
        (root / "results").mkdir()
        yield root
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _present(sha: str, repo: Path) -> list[str]:
    """The CODE_PATHS that exist in commit ``sha`` (git archive refuses a missing path)."""
    out = _git(repo, "ls-tree", "--name-only", sha, "--", *[p.split("/")[0] for p in CODE_PATHS])
    names = set(out.stdout.decode().split())
    return [p for p in CODE_PATHS if p.split("/")[0] in names]


def write_round_spec(spec_path: Path, dest: Path) -> Path:
    """The CI set of ``spec_path`` with ``rounds: 1``: each side's process runs one round, and the gate
    interleaves the processes (control, current, current, control, ...)."""
    doc = yaml.safe_load(spec_path.read_text())
    doc["rounds"] = 1
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def run_side(spec_path: Path, out_json: Path, root: Path | None, cwd: Path,
             extra: list[str] | None = None) -> dict[str, Any]:
    """One round of the CI set in a fresh process, through the code's own ``graphpar regress --update``
    (an interface every baseline's code has): the control's tree when ``root`` is given, else the
    installed code. Returns the entries it measured; raises SideFailed when it did not finish."""
    env = {**os.environ, SIDE_ENV: "1"}
    if root is not None:  # ahead of the installed (editable) graphpar, which only finds what sys.path lacks
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, "-m", "graphpar", "regress", "--update", "--configs", str(spec_path),
           "--baseline", str(out_json), *(extra or [])]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=SIDE_TIMEOUT_S,
                              stdout=subprocess.PIPE, stderr=None, text=True)
    except subprocess.TimeoutExpired:
        raise SideFailed(f"one round did not finish in {SIDE_TIMEOUT_S} s") from None
    sys.stdout.write("".join(line for line in proc.stdout.splitlines(keepends=True)
                             if not line.startswith("baseline written to")))  # the side's file, not the user's
    if proc.returncode != 0 or not out_json.is_file():
        tail = (proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise SideFailed(f"exit {proc.returncode}: {tail[0][:200]}")
    import json  # noqa: PLC0415

    return json.loads(out_json.read_text()).get("entries", {})
