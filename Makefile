# Postdesk: `make demo` and `make test` work on a fresh machine with Python 3.11+, make and git.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-stamp

.PHONY: deps demo test lint bench clean addon-check catalog

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
	$(BIN)/mypy

# The whole suite on SQLite, then on a throw-away PostgreSQL (tests/matrix.py says what it does),
# then the add-on shim's checks on the card JSON the Python tests wrote. Two pytest workers (xdist):
# the machines have two cores, and CI stays under 12 minutes; the last line says how long it took.
test:
	@started=$$(date +%s); \
	$(MAKE) --no-print-directory lint && \
	$(BIN)/python tests/matrix.py -n 2 --dist worksteal --durations=15 && \
	$(MAKE) --no-print-directory addon-check; \
	status=$$?; \
	echo "make test: $$(( $$(date +%s) - started )) s (exit $$status)"; \
	exit $$status

ADDON_STAMP := addon/node_modules/.deps-stamp

$(ADDON_STAMP): addon/package.json addon/package-lock.json
	cd addon && npm ci --no-audit --no-fund --silent
	@touch $(ADDON_STAMP)

# tsc --checkJs against @types/google-apps-script, and node's test runner on the shim.
addon-check:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(ADDON_STAMP) && cd addon && ./node_modules/.bin/tsc --noEmit -p tsconfig.json && node --test test/; \
	elif [ -n "$$REQUIRE_NODE" ]; then \
		echo "FAIL: node and npm are required for the add-on checks (REQUIRE_NODE is set)"; exit 1; \
	else \
		echo "SKIPPED: the add-on checks need node and npm (apt install nodejs npm)"; \
	fi

# Speed and quota figures, measured side by side in one run (not part of `make test`): every bench
# runs even when one fails, then a summary of PASS/FAIL lines; the exit code is 1 when any failed.
bench: deps
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python tests/bench/run_all.py

# The settings pages' texts: new strings into server/translations/ru (then translate them; a test
# fails while one is missing). The catalogs are compiled when the app starts.
catalog: deps
	@mkdir -p build
	$(BIN)/pybabel extract -F server/translations/babel.cfg -k _l --no-location --omit-header -o build/messages.pot .
	$(BIN)/pybabel update -i build/messages.pot -d server/translations -D messages --no-fuzzy-matching --width 110 --ignore-obsolete

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
