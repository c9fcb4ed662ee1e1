# Everything runs inside .venv, installed from requirements/lock.txt (exact versions).
# The venv is reinstalled when the lock or pyproject.toml changes; `make lock` refreshes the lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
UV_VERSION := 0.13.9
PYTEST_ARGS ?=
#: the port `make serve` listens on (development.ini's http_port)
PORT ?= 6543

.PHONY: venv serve setup-db test test-yaml-compat lint bench wheel lock clean gallery

venv: $(STAMP)

# The lock is used as pip constraints: exact versions, and still `pip install -e .`
# (hash-checking mode would refuse an editable install).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c $(LOCK) -e '.[test,postgres,lint]'
	rm -f $(BENCH_STAMP)
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -c $(LOCK) -e '.[test,postgres,lint,bench]'
	touch $@

# Resolves the newest versions that pyproject.toml allows, for every extra, and pins them.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml --extra test --extra postgres --extra bench --extra lint \
		--universal --python-version 3.11 --upgrade --custom-compile-command "make lock" -o $(LOCK)

# Migrates the SQLite database, loads the sample tenants, rules and directories
# (idempotent), prints a development API key and admin login, then serves.
serve: setup-db
	$(BIN)/pserve --server-name port development.ini http_port=$(PORT)

setup-db: $(STAMP)
	mkdir -p var
	$(BIN)/approvalrules load development.ini rules/
	$(BIN)/approvalrules dev-credentials --server-name port development.ini http_port=$(PORT)

# APPROVALRULES_TEST_DATABASE_URL, when set in the environment, runs the suite on PostgreSQL.
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# Screenshots of every admin page into docs/admin/ (docs/admin/README.md): a temporary SQLite
# database with the sample rules, the app on a free port, Chromium (/usr/bin/chromium, driven by
# Playwright); fails on any console error.
gallery: $(STAMP)
	$(BIN)/python -m tests.admin.gallery docs/admin

# ruff: the rules and line length in pyproject.toml; `ruff format .` fixes the layout.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The loader on other PyYAML releases than the locked one: 6.0.3 (no scanner nesting
# guard) and the newest. Each is laid over the venv with PYTHONPATH, nothing else changes.
YAML_RELEASES := 6.0.3 newest
test-yaml-compat: $(STAMP)
	@set -e; for release in $(YAML_RELEASES); do \
		overlay=$(VENV)/pyyaml-$$release; rm -rf $$overlay; \
		if [ $$release = newest ]; then spec=pyyaml; else spec=pyyaml==$$release; fi; \
		$(BIN)/pip install -q --no-deps --upgrade --target $$overlay "$$spec"; \
		PYTHONPATH=$$overlay $(BIN)/python -c 'import yaml; print("== loader tests on PyYAML", yaml.__version__)'; \
		PYTHONPATH=$$overlay $(BIN)/pytest -q -p no:cacheprovider tests/engine/test_loader.py; \
	done

# The peers compared in bench/ (rule-engine, JsonLogic, business-rules, Cedar, Rego) are the bench extra.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run_all.py

wheel: $(STAMP)
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .coverage
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
