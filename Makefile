# `make demo` and `make test` each create .venv when missing and install the project first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-dev
BENCH_STAMP = $(VENV)/.installed-bench
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-uvloop lint typecheck bench clean tools package-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/python -m asynclog demo

## Programs the tests drive: wrk, the HTTP load generator of `python -m bench app`.
tools:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 \
		|| echo "wrk is missing and could not be installed: run 'apt-get install wrk' as root"

## The whole suite (slow soak tests included), then the type checker and the linter.
test: $(STAMP) tools
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	$(BIN)/python -m mypy --strict asynclog
	$(BIN)/python -m ruff check asynclog tests bench examples setup.py .ci

## The release artefacts (CI runs it after `test`): the sdist and the wheel built as a release
## would, `twine check`ed, LICENSE and py.typed in both, metadata and README links checked.
package-check: $(STAMP)
	$(BIN)/python .ci/package_check.py

## The whole suite again with the async tests on uvloop's event loop (CI runs it after `test`).
test-uvloop: $(STAMP)
	ASYNCLOG_TEST_LOOP=uvloop $(BIN)/python -m pytest -q $(PYTEST_ARGS)

## Everyday loop: skips the tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow' $(PYTEST_ARGS)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-* .mypy_cache .ruff_cache .pytest_cache logs dist build
