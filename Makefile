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

serve: $(STAMP)
	mkdir -p var
	$(BIN)/pserve development.ini

setup-db: $(STAMP)
	mkdir -p var
	# .venv/bin/approvalrules load development.ini rules/

# APPROVALRULES_TEST_DATABASE_URL, when set in the environment, runs the suite on PostgreSQL.
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	@if [ -f bench/run_all.py ]; then $(BIN)/python bench/run_all.py; \
	else echo "bench/run_all.py does not exist yet"; fi

wheel: $(STAMP)
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .coverage
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
