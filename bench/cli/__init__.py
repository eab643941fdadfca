"""The ``graphpar`` command line: argparse only; nothing in the package imports it."""
from .commands import main

__all__ = ["main"]
