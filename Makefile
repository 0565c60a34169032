# Experiment harness.  `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUITE ?= smoke
OVERRIDES ?=
PROFILE ?=
WORKERS ?=
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: help install suite validate expand tune report results status lint test test-fast fuzz bench ui dashboard install-scale team-up team-down clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0            # the local CPU wheel, before anything can pull a CUDA build
	$(PY) -m pip install -q -r requirements.lock     # exact versions of everything else
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed ## create .venv: torch==2.13.0 first, then the lock file

$(VENV)/.installed-scale: $(VENV)/.installed requirements-scale.lock
	$(PY) -m pip install -q -r requirements-scale.lock  # exact pins: ray, submitit, psycopg
	touch $@

install-scale: $(VENV)/.installed-scale ## add the optional Ray and SLURM backends and the PostgreSQL driver to .venv

team-up: install-scale ## the team stack here: PostgreSQL, an MLflow server on it, a 2-node Ray cluster (then: source the printed team.env)
	$(PY) scale/team.py up $(if $(NO_RAY),--no-ray)

team-down: ## stop the team stack (its data stays in $$HARNESS_TEAM_DIR, default /var/tmp/harness-team)
	$(PY) scale/team.py down

suite: install ## run a suite: make suite SUITE=name [PROFILE=paper] [OVERRIDES="key.path=value ..."] [WORKERS=n]
	$(VENV)/bin/harness run $(SUITE) $(OVERRIDES) $(if $(PROFILE),--profile $(PROFILE)) $(if $(WORKERS),--workers $(WORKERS))

validate: install ## validate every suite in suites/
	$(VENV)/bin/harness validate

expand: install ## print the runs of a suite (with PROFILE: and what each costs): make expand SUITE=name [PROFILE=paper]
	$(VENV)/bin/harness expand $(SUITE) $(OVERRIDES) $(if $(PROFILE),--profile $(PROFILE))

tune: install ## run only the tune blocks of a suite (Optuna studies; resumes): make tune SUITE=smoke_tune
	$(VENV)/bin/harness tune $(SUITE) $(OVERRIDES) $(if $(PROFILE),--profile $(PROFILE)) $(if $(WORKERS),--workers $(WORKERS))

report: install ## rebuild reports/<suite>/ from the tracking store
	$(VENV)/bin/harness report $(SUITE) $(OVERRIDES) $(if $(PROFILE),--profile $(PROFILE))

results: install ## export a suite's results (runs + metric histories): make results SUITE=x -> x_results.parquet
	$(VENV)/bin/harness results $(SUITE) $(OVERRIDES)

status: install ## per run of a suite: finished / stale / failed / running / missing
	$(VENV)/bin/harness status $(SUITE) $(OVERRIDES)

lint: install ## ruff: pyflakes, bugbear, isort, pyupgrade (pyproject.toml [tool.ruff])
	$(VENV)/bin/ruff check .

# `make test` runs two pytest processes side by side, so both cores stay busy (most tests use one):
#   1. the end-to-end tests (marker `slow`: real CLI, MLflow, worker processes);
#   2. the tests that mostly wait (on Ray nodes, the MLflow server, PostgreSQL, outages, leases, SLURM), then the
#      unit tests and the fuzzer.  Its output follows the first's.
WAITING_TESTS := tests/harness/test_ray.py tests/harness/test_team.py tests/harness/test_slurm.py
NOT_WAITING := $(addprefix --ignore=,$(WAITING_TESTS))

test: install lint ## all tests CI needs (lint, validate, unit + end-to-end + fuzz, in two processes)
	$(VENV)/bin/harness validate
	@t0=$$SECONDS; log=$$(mktemp); base=$$(mktemp -d); \
	( $(PY) -m pytest -q --durations=5 --basetemp=$$base/waiting $(WAITING_TESTS); w=$$?; \
	  echo "[+$$((SECONDS - t0)) s] the unit tests and the fuzzer:"; \
	  $(PY) -m pytest -q --durations=5 --basetemp=$$base/unit -m "not slow" $(NOT_WAITING); u=$$?; \
	  echo "[+$$((SECONDS - t0)) s] done"; exit $$((w | u)) ) > $$log 2>&1 & second=$$!; \
	$(PY) -m pytest -q --durations=15 -m slow $(NOT_WAITING); first=$$?; \
	echo "[+$$((SECONDS - t0)) s] end-to-end tests done; the waiting tests, then the unit tests and the fuzzer:"; \
	wait $$second; second=$$?; cat $$log; \
	echo "pytest exit codes: end-to-end $$first, waiting + unit + fuzz $$second ($$((SECONDS - t0)) s)"; \
	test $$first -eq 0 -a $$second -eq 0

fuzz: install ## the validation fuzzer at full depth: 8 mutants per (suite, kind) instead of make test's 2
	HARNESS_FUZZ_MUTANTS=8 $(PY) -m pytest -q tests/harness/test_fuzz.py

test-fast: install ## unit tests only
	$(PY) -m pytest -q -m "not slow"

bench: install-scale ## benchmarks (ratios against references measured in the same run; backends incl. Ray)
	$(PY) -m pytest -q -s -m bench --benchmark-enable -p no:cacheprovider benchmarks

ui: install ## MLflow UI on http://127.0.0.1:5000 over ./mlflow.db (harness ui; bound to localhost)
	$(VENV)/bin/harness ui --tracking-uri sqlite:///$(CURDIR)/mlflow.db

dashboard: install ## optuna-dashboard on http://127.0.0.1:8080 over the studies next to ./mlflow.db (harness ui --optuna)
	$(VENV)/bin/harness ui --optuna --tracking-uri sqlite:///$(CURDIR)/mlflow.db

clean: ## remove the venv and local run state (keeps mlflow.db)
	rm -rf $(VENV) .harness .pytest_cache
