"""Grids, gates and reports built on the run API (bench/api.py): sweep, regress, projection, plots, paper, parity."""
