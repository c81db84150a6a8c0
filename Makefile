# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Each creates or refreshes the virtual environment in .venv when pyproject.toml is newer.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Jobs at once for `make run`: single-threaded worker processes, one per core (2 here).
CONCURRENCY ?= 2
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run test test-fast test-all ui leaderboard benchmarks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,team]'
	touch $(STAMP)

install: $(STAMP)

## The main job: the smoke grid on the embedded defaults (Prefect in-process, MLflow in
## ./mlflow/mlflow.db, Parquet results in ./results), then the leaderboard. CONCURRENCY=1 for
## one job at a time.
run: $(STAMP)
	$(VENV)/bin/tlbench run --profile smoke --concurrency $(CONCURRENCY)

## What CI runs: every test but the `slow` ones. Everything the docs cite as evidence is in here
## (real MLflow and Prefect servers, killed workers, the nightly flow, the 16-cell pool load test (8 batches));
## `slow` is only extra depth that no doc cites. About 45 minutes on 2 cores at most.
## Exit 5 (no tests collected) is an error: a suite that ran nothing proves nothing.
PYTEST := $(PY) -m pytest
define run_pytest
	$(PYTEST) $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests ($(1)): check the markers and paths" >&2; fi; \
	exit $$rc
endef

test: $(STAMP)
	$(call run_pytest,-m "not slow")

## The quick development loop: unit tests, no real servers or end-to-end grids (`e2e`), no `slow`.
test-fast: $(STAMP)
	$(call run_pytest,-m "not slow and not e2e")

## Everything, `slow` included.
test-all: $(STAMP)
	$(call run_pytest,)

leaderboard: $(STAMP)
	$(VENV)/bin/tlbench leaderboard

## The MLflow UI on the embedded store, on http://127.0.0.1:5000
ui: $(STAMP)
	$(VENV)/bin/tlbench ui

benchmarks: $(STAMP)
	$(PY) benchmarks/windows.py
	$(PY) benchmarks/leaderboard_query.py

clean:
	rm -rf results mlflow .pytest_cache
