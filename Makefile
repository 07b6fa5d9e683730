# Forewarn — set-up, run and test on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
# two pytest workers: most tests wait on servers, subprocesses and databases, so the suite
# takes about half the time on 2 cores (PYTEST_ARGS= runs it in one process)
PYTEST_ARGS ?= -n 2

.PHONY: run test lint typecheck pytest pg redis browser-deps fonts install install-dev clean bench \
	notebooks

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## run: the service on SQLite with the sample data loaded, on http://$(HOST):$(PORT)
run: install
	$(BIN)/forewarn db upgrade
	$(BIN)/forewarn samples load --if-empty
	$(BIN)/forewarn forecast --if-none --horizon 26w
	$(BIN)/forewarn plan
	$(BIN)/forewarn keys bootstrap
	$(BIN)/forewarn serve --with-scheduler --host $(HOST) --port $(PORT)

## pg: make sure the local PostgreSQL server (127.0.0.1:5432) is up
pg:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  (pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && \
	   for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done)
	@pg_isready -h 127.0.0.1 -p 5432

## redis: make sure a local Redis (127.0.0.1:6379) is up (the shared rate-limit test uses it)
redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
	  ((command -v redis-server >/dev/null 2>&1 || (apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends redis-server)) && \
	   redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
	     >/dev/null && \
	   for i in $$(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; \
	     sleep 1; done)
	@redis-cli -h 127.0.0.1 -p 6379 ping

## lint: ruff, and the import directions of docs/architecture.md (import-linter contracts)
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

## browser-deps: Debian chromium (dashboard test) and the fonts
browser-deps: fonts
	@command -v chromium >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)

## fonts: CJK (Chinese) and Mongolian (traditional script) fonts for the dashboard and PNGs
fonts:
	@fc-list :lang=zh | grep -q . && fc-list | grep -qi "Noto Sans Mongolian" || \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends \
	     fonts-noto-cjk fonts-noto-core && fc-cache -f)

## notebooks: JupyterLab on the project's venv with a kernel named "forewarn" (figures inline)
$(VENV)/.installed-notebooks: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[notebooks]"
	$(PY) -m ipykernel install --sys-prefix --name forewarn --display-name "Forewarn (.venv)"
	touch $@

notebooks: $(VENV)/.installed-notebooks
	cd notebooks && ../$(BIN)/jupyter lab

pytest: install-dev pg redis browser-deps
	$(BIN)/pytest $(PYTEST_ARGS)

## test: lint, type-check and the whole test suite (PostgreSQL started if needed)
test: lint typecheck pytest

bench: install-dev pg
	$(PY) bench/ingest.py
	$(PY) bench/forecast.py
	$(PY) bench/accuracy.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
