"""``python -m graphpar ...`` is the ``graphpar`` command."""
import sys

from graphpar.bench.cli import main

sys.exit(main())
