# Two commands on a fresh machine: `make demo` and `make test`. Each builds the virtualenv from
# the committed lock (uv.lock) on first use; only python3 is needed beforehand. Bytecode is
# compiled at install: with PYTHONDONTWRITEBYTECODE set, every command would otherwise
# compile Dagster, dbt and SciPy again at start-up (10-20 s each).
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
SYNCED := $(VENV)/.synced
export POSTPURCHASE_DATA_DIR ?= $(CURDIR)/data
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install demo test bench dashboard dev lint format clean help

help:
	@echo "make demo    simulate a shop and run the daily job over it (no credentials needed)"
	@echo "make test    run the test suite"
	@echo "make bench   benchmarks at three scales (about an hour); rewrites BENCHMARKS.md"
	@echo "make dashboard  open the reports on the published snapshot (http://127.0.0.1:8501)"
	@echo "make dev     open the Dagster UI on the warehouse in \$$POSTPURCHASE_DATA_DIR"
	@echo "make lint    ruff check and format check"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

install: $(SYNCED)

demo: install
	$(VENV)/bin/postpurchase demo

test: install
	scripts/ensure-chromium
	$(VENV)/bin/pytest

# Not part of `make test`: it simulates shops of up to a million customers and takes about an
# hour. Its work files go to $(POSTPURCHASE_DATA_DIR)/bench; BENCHMARKS.md is its output.
BENCH_SCALES ?= S,M,L
bench: install
	scripts/ensure-chromium
	$(VENV)/bin/python -m pipelines.bench --work $(POSTPURCHASE_DATA_DIR)/bench \
		--out BENCHMARKS.md --scales $(BENCH_SCALES)

# The reports read the snapshot each successful daily run publishes (after `make demo`).
DASHBOARD_PORT ?= 8501
dashboard: install
	$(VENV)/bin/python -m pipelines.dashboard_cli --host 127.0.0.1 --port $(DASHBOARD_PORT)

dev: install
	mkdir -p $(POSTPURCHASE_DATA_DIR)/dagster_home
	test -f $(POSTPURCHASE_DATA_DIR)/dagster_home/dagster.yaml || \
		cp dagster_instance.yaml $(POSTPURCHASE_DATA_DIR)/dagster_home/dagster.yaml
	DAGSTER_HOME=$(POSTPURCHASE_DATA_DIR)/dagster_home VIRTUAL_ENV=$(CURDIR)/$(VENV) \
		PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dg dev --host 127.0.0.1

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) dbt/target dbt/logs
