# SafeCity: `make demo` runs the product, `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo serve test lint typecheck importlint pytest system-deps clean

# Create .venv with the package and all its dependencies; nothing to do when up to date.
install: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	SAFECITY_MODE=demo $(BIN)/safecity demo

serve: install
	$(BIN)/safecity serve

# What the tests need from the system: Chromium for the browser tests, PostgreSQL for the
# second database run. Installed from Debian's packages when missing (CI runs as root).
system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: install
	$(BIN)/mypy

importlint: install
	$(BIN)/lint-imports

pytest: install system-deps
	bash scripts/run-tests.sh

test: lint typecheck importlint pytest

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache test-artifacts
