# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test bench lint browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(VENV)/bin/solvent demo

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/mypy

# Debian's headless Chromium for the report screenshot test, only where it is missing and apt is at hand (root);
# without it that test skips, saying so.
browser:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
		echo "chromium not installed: the report screenshot test will skip"

test: lint browser
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/bench_margin.py
	$(PY) benchmarks/bench_assets.py
	$(PY) benchmarks/bench_stream.py
	$(PY) benchmarks/bench_whatif.py
	$(PY) benchmarks/bench_lab.py
	$(PY) benchmarks/bench_governance.py
	$(PY) benchmarks/bench_backtest_size.py
	$(PY) benchmarks/bench_simm.py
	$(PY) benchmarks/bench_service.py --seconds 10
	$(PY) benchmarks/bench_proof.py
	$(PY) benchmarks/bench_bus.py
	$(PY) benchmarks/bench_store.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
