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

.PHONY: install run test test-all ui leaderboard benchmarks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## The main job: the smoke grid on the embedded defaults (Prefect in-process, MLflow in
## ./mlflow/mlflow.db, Parquet results in ./results), then the leaderboard. CONCURRENCY=1 for
## one job at a time.
run: $(STAMP)
	$(VENV)/bin/tlbench run --profile smoke --concurrency $(CONCURRENCY)

## The default test suite (slow tests excluded; they run with `make test-all`).
test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

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
