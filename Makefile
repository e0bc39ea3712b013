# The two commands of the README: `make compare` (the main job) and `make test` (the test suite).
# Both create the virtual environment .venv and install the project into it on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# neurogym imports torch without declaring it; the tests pin the CPU release to keep installs small.
TORCH ?= torch==2.13.*

.PHONY: install test test-all compare bench lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# The test suite also exercises the neurogym adapter against the real package, a sweep shared
# through a throwaway PostgreSQL server (psycopg2, from the postgres extra), and Dynamical
# Similarity Analysis (dsa-metric, from the degeneracy extra).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[test,neurogym,postgres,rl,degeneracy]" "$(TORCH)"
	touch $@

install: $(VENV)/.installed

# One pytest worker process per core (at most 4; TEST_WORKERS=0 runs in this process). Each test
# file runs whole in one worker, so its module fixtures are built once.
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile
test: $(VENV)/.installed-test
	$(PY) -m pytest -q $(XDIST)

test-all: $(VENV)/.installed-test
	$(PY) -m pytest -q $(XDIST) -m "slow or not slow"

# The main job: the MWG comparison under the NM-RNN authors' protocol beside the library's standard
# one (R1), with one worker per core (at most 2).
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -ge 2 ] && echo 2 || echo 1)
compare: $(VENV)/.installed
	$(VENV)/bin/nmrnn reproduce mwg --profile quick --workers $(WORKERS) --out results/mwg-quick

bench: $(VENV)/.installed-test
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_tasks.py
	$(PY) benchmarks/bench_grid.py
	$(PY) benchmarks/bench_startup.py
	$(PY) benchmarks/bench_rl.py --updates 100

lint: $(VENV)/.installed
	$(PY) -m pip install -q ruff
	$(PY) -m ruff check src tests benchmarks
