# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test bench lint browser clean constraints

# Exact versions from constraints.txt (pyproject.toml keeps the ranges a user's pip resolves); the package index
# is pip's own configuration. The base venv has the report extra the demo draws with; the test venv adds the
# test extra (the runners, linters, reference libraries and every extra the tests exercise).
INSTALL := $(PY) -m pip install --quiet -c constraints.txt

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) --upgrade pip
	$(INSTALL) -e '.[report]'
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(INSTALL) -e '.[test]'
	touch $(TEST_STAMP)

# Regenerate constraints.txt: the newest releases inside pyproject's ranges, every extra, in a fresh venv; then
# raise pyproject's lower bounds to the new pins (tests/test_dependencies.py says which).
CONSTRAINTS_VENV := .venv-constraints
constraints:
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CONSTRAINTS_VENV)/bin/python -m pip install --quiet '.[test,sweep]'
	{ sed -n '/^#/p' constraints.txt; $(CONSTRAINTS_VENV)/bin/python -m pip freeze --all --exclude-editable | \
		grep -v -i -E '^(solvent|setuptools|wheel)( @|==)'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(CONSTRAINTS_VENV)

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

bench: $(TEST_STAMP)
	$(PY) benchmarks/bench_margin.py
	$(PY) benchmarks/bench_assets.py
	$(PY) benchmarks/bench_stream.py
	$(PY) benchmarks/bench_whatif.py
	$(PY) benchmarks/bench_lab.py
	$(PY) benchmarks/bench_governance.py
	$(PY) benchmarks/bench_backtest_size.py
	$(PY) benchmarks/bench_simm.py
	$(PY) benchmarks/bench_tick.py --ticks 60
	$(PY) benchmarks/bench_service.py --seconds 10
	$(PY) benchmarks/bench_proof.py
	$(PY) benchmarks/bench_bus.py
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_cli.py

clean:
	rm -rf $(VENV) $(CONSTRAINTS_VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
