# Postdesk: `make demo` and `make test` work on a fresh machine with Python 3.11+, make and git.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-stamp
LOCK   := requirements.lock
LOCK_TOOLS := .lock-tools

.PHONY: deps lock audit soak soak-short demo test lint bench adapter clean addon-deps addon-check catalog

deps: $(STAMP)

# Every dependency, with the test, bench and build tools, installed from requirements.lock: exact
# versions, each file checked against its hashes, so two installs on two days are the same. Reinstalled
# only when pyproject.toml or the lock changes, so a second `make test` starts at once.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Postdesk needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@# Postdesk's own bytecode too: where PYTHONDONTWRITEBYTECODE is set, every process would compile it again.
	$(BIN)/python -m compileall -q server rules
	@touch $(STAMP)

# After changing pyproject.toml's dependencies: `make lock`, then commit requirements.lock (pip-tools,
# in a venv of its own; the newest releases the registry has that satisfy pyproject.toml).
lock:
	@test -x $(LOCK_TOOLS)/bin/pip-compile || ($(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/python -m pip install --quiet 'pip-tools==7.7.0')
	$(LOCK_TOOLS)/bin/pip-compile --quiet --extra test --extra bench --generate-hashes --allow-unsafe --all-build-deps \
		--strip-extras --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml

# Known vulnerabilities in the locked dependencies and the add-on's packages (.ci/audit says how);
# needs PyPI's per-release JSON or OSV, and npm's advisory service, on the network.
audit: deps
	.ci/audit

# A busy week of a mailbox in about fifteen minutes, under faults, then every invariant checked
# (tests/soak.py); `make soak SEED=123` replays a run, `MINUTES=3` shortens it.
soak: deps
	$(BIN)/python tests/soak.py $(if $(SEED),--seed $(SEED)) $(if $(MINUTES),--minutes $(MINUTES))

# The one-minute soak with its planted faults (tests/test_soak.py; make test runs it too), then the
# deliberately broken builds, each caught by its invariant, on a throw-away PostgreSQL; SOAK_SEED=… replays.
soak-short: deps
	POSTDESK_SOAK_BROKEN=1 POSTDESK_TEST_ONLY=postgresql $(BIN)/python tests/matrix.py tests/test_soak.py -p no:randomly --durations=5

demo: deps
	$(BIN)/postdesk demo

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# ruff, then the whole suite on SQLite and on a throw-away PostgreSQL (tests/matrix.py says what it
# does; pytest-xdist workers per pass: `-n matrix`) while mypy and the add-on's npm install run beside
# it (the passes leave part of the two cores idle; mypy's output follows the suite's), then the add-on
# shim's checks on the card JSON the Python tests wrote. CI stays under 12 minutes; the last line says
# how long it took. Bytecode is written even where PYTHONDONTWRITEBYTECODE is set (as on CI machines):
# else every pytest process rewrites every test module again (collection 9 s instead of 3.6 s).
test:
	@started=$$(date +%s); \
	$(MAKE) --no-print-directory deps || exit 1; \
	$(BIN)/ruff check . && $(BIN)/ruff format --check . || { echo "make test: ruff failed"; exit 1; }; \
	side=$$(mktemp -d); \
	( $(BIN)/mypy > $$side/mypy.log 2>&1; echo $$? > $$side/mypy.rc ) & \
	( $(MAKE) --no-print-directory addon-deps > $$side/npm.log 2>&1 ) & \
	PYTHONDONTWRITEBYTECODE= $(BIN)/python tests/matrix.py -n matrix --dist worksteal --durations=15; suite=$$?; \
	wait; \
	echo "--- mypy"; cat $$side/mypy.log; cat $$side/npm.log; \
	$(MAKE) --no-print-directory addon-check; addon=$$?; \
	status=$$(( suite || $$(cat $$side/mypy.rc) || addon )); rm -rf $$side; \
	echo "make test: $$(( $$(date +%s) - started )) s (exit $$status)"; \
	exit $$status

ADDON_STAMP := addon/node_modules/.deps-stamp

$(ADDON_STAMP): addon/package.json addon/package-lock.json
	cd addon && npm ci --no-audit --no-fund --silent
	@touch $(ADDON_STAMP)

# The add-on's npm packages (when npm is there; addon-check says what is missing otherwise).
addon-deps:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(ADDON_STAMP); fi

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
	$(BIN)/python tests/bench/run_all.py

# The meaning adapter learnt again from the tuning paraphrase sets (docs/help-centre.md).
adapter: deps
	$(BIN)/python tests/bench/train_adapter.py

# The settings pages' texts: new strings into server/translations/ru (then translate them; a test
# fails while one is missing). The catalogs are compiled when the app starts.
catalog: deps
	@mkdir -p build
	$(BIN)/pybabel extract -F server/translations/babel.cfg -k _l --no-location --omit-header -o build/messages.pot .
	$(BIN)/pybabel update -i build/messages.pot -d server/translations -D messages --no-fuzzy-matching --width 110 --ignore-obsolete

clean:
	rm -rf $(VENV) $(LOCK_TOOLS) .pytest_cache .ruff_cache .mypy_cache .hypothesis
