"""``python -m graphpar ...`` is the ``graphpar`` command."""
import sys

from graphpar.bench.cli.commands import main

sys.exit(main())
