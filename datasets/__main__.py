"""``python -m graphpar.datasets NAME...`` fetches real graphs into $GRAPHPAR_DATA (sha256-checked);
``--verify [NAME...]`` re-checks the copies carried in datasets/data/.

Bad input (no name, an unknown name, an unknown flag) and a graph that cannot be fetched (offline, a
changed source) are one line naming the fix, exit 2, nothing kept; ``--verify`` exits 1 when a carried
file differs from its pinned checksum.
"""
import argparse
import sys

from .catalog import data_root, repo_data_dir
from .download import SOURCES, DownloadError, bad_files, fetch

PROG = "python -m graphpar.datasets"


class _OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line (no usage block), exit 2: the command line's bad-input promise."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message}; see {PROG} --help\n")


def _usage_error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(prog=PROG, description="fetch real graphs into $GRAPHPAR_DATA, checking sha256")
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(SOURCES)}")
    parser.add_argument("--verify", action="store_true",
                        help="check the copies carried in datasets/data/ (all of them, or the names given)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SOURCES]
    if unknown:
        return _usage_error(f"unknown graph {unknown[0]!r}; known: {', '.join(SOURCES)}")
    if args.verify:
        carried = [n for n in (args.names or SOURCES) if (repo_data_dir() / n).is_dir()]
        if args.names and len(carried) < len(args.names):
            missing = next(n for n in args.names if n not in carried)
            return _usage_error(f"{missing} is not carried in {repo_data_dir()}; --verify checks the carried copies "
                                f"({', '.join(n for n in SOURCES if (repo_data_dir() / n).is_dir())})")
        bad = {n: bad_files(n, repo_data_dir() / n) for n in carried}
        for n in carried:
            print(f"{n:<20} {'ok' if not bad[n] else 'BAD: ' + ', '.join(bad[n])}")
        return 1 if any(bad.values()) else 0
    if not args.names:
        return _usage_error(f"name the graphs to fetch (any of: {', '.join(SOURCES)}), or pass --verify")
    for name in args.names:
        try:
            print(f"{name}: {fetch(name, data_root() / name)}")
        except DownloadError as e:
            return _usage_error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
