# graphpar: `make bench` runs the default benchmark, `make test` runs the test suite.
# Both build .venv (pinned stack) on first use; `make setup` alone is idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.graphpar-installed
# The pinned versions live in setup.cfg (install_requires and the dgl/test extras): one list.
export OUTDATED_IGNORE := 1
export MASTER_ADDR := 127.0.0.1
export GLOO_SOCKET_IFNAME := lo
GRAPHPAR := $(VENV)/bin/graphpar

.PHONY: help setup lint test test-full test-multinode bench bench-quick bench-ci bench-baseline bench-tensor bench-partition \
	bench-pipeline bench-kernels bench-overhead bench-scale figures figures-neutrontp figures-gnnpipe clean
TP := $(GRAPHPAR) bench --strategies tensor --epochs 3 --hidden 64

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(STAMP)  ## build .venv with the pinned stack (does nothing when already built)

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=68" wheel
	PYTHONWARNINGS=ignore $(PY) -m pip install -q --no-build-isolation -e ".[dgl,test]"
	touch $(STAMP)

lint: $(STAMP)  ## ruff (rules in pyproject.toml) and the layering test (imports only point down, no cycle)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests/test_layering.py

test: $(STAMP)  ## run the test suite (fast tier)
	$(PY) -m pytest -q -x tests

test-full: $(STAMP)  ## run every test tier, slow ones included
	GRAPHPAR_FULL_TESTS=1 $(PY) -m pytest -q tests

test-multinode: $(STAMP)  ## every strategy across 2 hosts made of network namespaces equals one host (needs root)
	@$(PY) tests/multinode/run_netns.py; rc=$$?; \
	if [ $$rc -eq 77 ]; then echo "test-multinode: SKIPPED: cannot create network namespaces here (needs root / CAP_SYS_ADMIN and iproute2)"; exit 0; fi; exit $$rc

REPEAT ?= 3
bench: $(STAMP)  ## default sweep (every strategy, P=1,2,4, rmat-arxiv, REPEAT=3 interleaved rounds): table with spread, figures
	$(GRAPHPAR) sweep default --repeat $(REPEAT)
	$(GRAPHPAR) plot --dataset rmat-arxiv

bench-quick: $(STAMP)  ## smoke sweep on Cora, P=1,2, with figures
	$(GRAPHPAR) sweep quick
	$(GRAPHPAR) plot --dataset cora

bench-ci: $(STAMP)  ## CI gate: exact bytes vs results/baseline.json; compute CPU per probe CPU vs the baseline's commit run here (A/B)
	$(GRAPHPAR) regress

bench-baseline: $(STAMP)  ## refresh results/baseline.json on purpose
	$(GRAPHPAR) regress --update

figures: $(STAMP)  ## every figure from results/runs.jsonl into out/figures (+ CSV tables in out/csv)
	$(GRAPHPAR) plot --csv out/csv

figures-neutrontp: $(STAMP)  ## NeutronTP-shaped epoch time vs workers, projected to 16 workers at 15 Gbps (report in out/)
	$(GRAPHPAR) sweep neutrontp
	$(GRAPHPAR) paper neutrontp

figures-gnnpipe: $(STAMP)  ## GNNPipe-shaped communication volume vs depth (report in out/)
	$(GRAPHPAR) sweep gnnpipe
	$(GRAPHPAR) paper gnnpipe

bench-tensor: $(STAMP)  ## NeutronTP: naive vs decoupled, P=1,2,4 on rmat-arxiv and coauthor-physics; memory with/without budget on rmat-products
	for d in rmat-arxiv coauthor-physics; do \
	  $(TP) --dataset $$d --model decoupled --tp-mode decoupled --workers 1,2,4 && \
	  $(TP) --dataset $$d --model gcn --tp-mode naive --workers 1,2,4 || exit 1; done
	$(TP) --dataset rmat-products --model decoupled --epochs 2 --workers 2
	$(TP) --dataset rmat-products --model decoupled --epochs 2 --workers 2 --tp-chunks 16

bench-partition: $(STAMP)  ## graph-partition DP on rmat-arxiv, P=1,2,4: METIS vs random (epoch time, bytes, edge cut, imbalance)
	$(GRAPHPAR) bench --strategies partition --dataset rmat-arxiv --workers 1,2,4 --epochs 3 --partition metis
	$(GRAPHPAR) bench --strategies partition --dataset rmat-arxiv --workers 1,2,4 --epochs 3 --partition random
	$(GRAPHPAR) bench --strategies partition --dataset rmat-arxiv --workers 2,4 --epochs 3 --partition metis --balance-edges 1

bench-pipeline: $(STAMP)  ## GNNPipe: pipeline vs partition for L=4,8,16 at P=4 (DATASET=... to shrink on small machines)
	for L in 4 8 16; do $(GRAPHPAR) bench --strategies pipeline,partition --dataset $${DATASET:-rmat-arxiv} \
	  --workers 4 --layers $$L --hidden 64 --epochs 3 || exit 1; done

bench-kernels: $(STAMP)  ## every aggregation backend, CPU s per forward+backward at widths 16-256 on rmat-arxiv and cora (README kernel table)
	OMP_NUM_THREADS=1 $(PY) -m graphpar.bench.harness.kernel_bench --datasets rmat-arxiv,cora --widths 16,64,128,256 --repeat 5

bench-overhead: $(STAMP)  ## each strategy at P=1 vs single (same model, kernel): compute CPU ratio per phase, target <= 1.10
	OMP_NUM_THREADS=1 GRAPHPAR_PROGRESS=0 $(PY) -m graphpar.bench.harness.overhead --dataset $${DATASET:-rmat-arxiv} --rounds 3 --epochs 4

bench-scale: $(STAMP)  ## tensor, partition (one part per rank), pipeline on rmat-products at P=2,4, 2 epochs: runs what fits BUDGET_GB (20) and the free memory, refuses the rest up front with the estimate
	GRAPHPAR_PROGRESS=0 $(PY) -m graphpar.bench.harness.scale --dataset $${DATASET:-rmat-products} --workers 2,4 --budget-gb $${BUDGET_GB:-20} --out $${OUT:-out/scale.jsonl}

clean:  ## remove the virtual environment, caches and generated reports/figures (out/)
	rm -rf $(VENV) *.egg-info .pytest_cache out
