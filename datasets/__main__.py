"""``python -m graphpar.datasets NAME...`` fetches real graphs into $GRAPHPAR_DATA (sha256-checked);
``--verify`` re-checks the copies carried in datasets/data/."""
import argparse
import sys

from .catalog import data_root, repo_data_dir
from .download import SOURCES, DownloadError, bad_files, fetch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graphpar.datasets",
                                     description="fetch real graphs into $GRAPHPAR_DATA, checking sha256")
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(SOURCES)}")
    parser.add_argument("--verify", action="store_true", help="check the copies carried in datasets/data/")
    args = parser.parse_args(argv)
    if args.verify:
        carried = [n for n in SOURCES if (repo_data_dir() / n).is_dir()]
        bad = {n: bad_files(n, repo_data_dir() / n) for n in carried}
        for n in carried:
            print(f"{n:<20} {'ok' if not bad[n] else 'BAD: ' + ', '.join(bad[n])}")
        return 1 if any(bad.values()) else 0
    for name in args.names:
        if name not in SOURCES:
            print(f"graphpar: error: unknown graph {name!r}; known: {', '.join(SOURCES)}", file=sys.stderr)
            return 2
        try:
            print(f"{name}: {fetch(name, data_root() / name)}")
        except DownloadError as e:
            print(f"graphpar: error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
