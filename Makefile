# Postdesk: `make demo` and `make test` work on a fresh machine with Python 3.11+, make and git.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-stamp

.PHONY: deps demo test lint bench clean

deps: $(STAMP)

# Reinstalled only when pyproject.toml changes, so a second `make test` starts at once.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Postdesk needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: deps
	$(BIN)/postdesk demo

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy rules

# The whole suite on SQLite, then on a throw-away PostgreSQL (tests/matrix.py says what it does).
test: lint
	$(BIN)/python tests/matrix.py

# Speed and quota figures, measured side by side in one run (not part of `make test`).
bench: deps
	$(BIN)/python tests/bench/bench_sync.py
	$(BIN)/python tests/bench/bench_reminders.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
