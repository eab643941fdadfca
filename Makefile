# graphpar: `make bench` runs the default benchmark, `make test` runs the test suite.
# Both build .venv (pinned stack) on first use; `make setup` alone is idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graphpar-installed
PINS := torch==2.2.1 dgl==2.1.0 torchdata==0.7.1 "numpy<2" pyyaml pydantic ogb pandas matplotlib tqdm pytest
export OUTDATED_IGNORE := 1
export MASTER_ADDR := 127.0.0.1
export GLOO_SOCKET_IFNAME := lo
GRAPHPAR := $(VENV)/bin/graphpar

.PHONY: help setup test test-full bench bench-quick bench-tensor bench-partition bench-pipeline clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMP)  ## build .venv with the pinned stack (does nothing when already built)

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(PY) -m pip install -q $(PINS)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $(STAMP)

test: $(STAMP)  ## run the test suite (fast tier)
	$(PY) -m pytest -q -x tests

test-full: $(STAMP)  ## run every test tier, slow ones included
	GRAPHPAR_FULL_TESTS=1 $(PY) -m pytest -q tests

bench: $(STAMP)  ## default benchmark: every strategy, P=1,2,4 on rmat-arxiv, table in the terminal
	$(GRAPHPAR) bench --dataset rmat-arxiv --workers 1,2,4 --epochs 5

bench-quick: $(STAMP)  ## a one-minute smoke benchmark on Cora
	$(GRAPHPAR) bench --dataset cora --workers 1,2 --epochs 3

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) *.egg-info .pytest_cache
