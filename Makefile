# `make run`: Redis, the web process and a worker, with the demo dataset loaded.
# `make test`: the whole test suite (it starts its own redis-server on a free port).
# Both create the venv from pyproject.toml and install Debian's redis-server when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the bench extras (DuckDB, polars, …): installed once, again when pyproject.toml changes
BENCH_STAMP := $(VENV)/.bench-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench faults setup lock redis-server chromium clean

run: setup
	$(BIN)/python -m domain.manage run

test: setup chromium
	$(BIN)/ruff check api worker domain formats tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup $(BENCH_STAMP)
	@command -v ogr2ogr >/dev/null 2>&1 || { echo "installing Debian's gdal-bin (ogr2ogr, a baseline)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq gdal-bin >/dev/null; }
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,--repeat 3) $(BENCH_ARGS)
	$(BIN)/python -m bench.service $(if $(QUICK),--exports 20 --big-rows 0 --drained 60) $(SERVICE_ARGS)
	$(BIN)/python -m bench.isolation $(if $(QUICK),--requests 100 --rows 200000)

$(BENCH_STAMP): pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $(BENCH_STAMP)

faults: setup
	$(BIN)/python -m bench.faults $(FAULTS_ARGS)
	$(BIN)/python -m bench.attacks $(ATTACKS_ARGS)

setup: $(STAMP) redis-server

# The versions in requirements.lock first (`make lock` refreshes it), then the project itself,
# which adds only what the lock does not hold yet (a dependency added since).
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

lock:  # requirements.lock anew: what a fresh venv resolves for pyproject.toml (with the test extras) today
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^exportd' > requirements.lock
	rm -rf .lock-venv

redis-server:
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || { \
		echo "installing Debian's redis-server"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

chromium:  # the browser tests/test_web_page.py drives (Playwright with executable_path; no browser download)
	@test -x /usr/bin/chromium || { \
		echo "installing Debian's chromium"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) var
