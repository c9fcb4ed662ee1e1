# Everything runs inside .venv; the venv is (re)installed only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv serve setup-db test bench wheel clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[test,postgres]'
	touch $@

# Migrates the SQLite database, loads the sample tenants, rules and directories
# (idempotent), prints a development API key and admin login, then serves.
serve: setup-db
	$(BIN)/pserve development.ini

setup-db: $(STAMP)
	mkdir -p var
	$(BIN)/approvalrules load development.ini rules/
	$(BIN)/approvalrules dev-credentials development.ini

# APPROVALRULES_TEST_DATABASE_URL, when set in the environment, runs the suite on PostgreSQL.
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The peers compared in bench/ (rule-engine, JsonLogic, business-rules, Cedar) are the bench extra.
bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,postgres,bench]'
	$(BIN)/python bench/run_all.py

wheel: $(STAMP)
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .coverage
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
