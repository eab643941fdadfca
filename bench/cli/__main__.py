"""python -m graphpar.bench.cli"""
import sys

from graphpar.bench.cli.commands import main

sys.exit(main())
