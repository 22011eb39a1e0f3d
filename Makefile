# potune: set-up, default run and tests. Every install step lives here.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.potune-installed
CORES ?= 2
CONFIG ?= config/config.yaml
PYTEST_ARGS ?=
# make test: pytest workers (pytest-xdist), one test module per worker; 1 runs the suite in this process
TEST_WORKERS ?= 2
PYTEST_WORKERS := $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
# extra options of python -m potune.paper, e.g. --searches 4 --snakemake-args "--profile slurm"
PAPER_ARGS ?=

export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg

.PHONY: venv run dry-run test test-fast lint format clean-venv paper paper-quick

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "potune needs Python >= 3.11, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps fitsnap3==3.1.0.4
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

## The default search on the data shipped in data/ (Zuo 2020 Si): one progress line per event,
## Snakemake's output in results/<run_name>/logs/snakemake.log (RUN_ARGS=--verbose-snakemake: on the console too).
RUN_ARGS ?=
run: venv
	$(BIN)/python -m potune.run --cores $(CORES) --configfile $(CONFIG) --rerun-incomplete $(RUN_ARGS)

dry-run: venv
	$(BIN)/snakemake -n --cores $(CORES) --configfile $(CONFIG)

test: venv
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest $(PYTEST_WORKERS) -m "not slow and not slurm" $(PYTEST_ARGS)

## Style and lint: ruff (Python), snakefmt (rules), snakemake --lint. CI runs this before the tests.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules tests/snakefiles
	$(BIN)/snakemake --lint --configfile $(CONFIG)

## Rewrite the code in the house style (ruff format, snakefmt) and apply ruff's safe fixes.
format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile workflow/rules tests/snakefiles

clean-venv:
	rm -rf $(VENV)

## Regenerate the potune versions of the XPOT/PPSO papers' tables and figures (hours; see README).
paper: venv
	$(BIN)/python -m potune.paper --cores $(CORES) $(PAPER_ARGS)

## The same, reduced budgets (under 15 minutes on 2 cores).
paper-quick: venv
	$(BIN)/python -m potune.paper --cores $(CORES) --quick $(PAPER_ARGS)
