# `make run`: Redis, the web process and a worker, with the demo dataset loaded.
# `make test`: the whole test suite (it starts its own redis-server on a free port).
# `make check`: the fast loop while changing code: lint, then the formats, ODSQL, the APIs'
#   validation and the arq contract (under a minute); `make test` before a commit.
# Both create the venv from pyproject.toml and install Debian's redis-server when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the bench extras (DuckDB, polars, …): installed once, again when pyproject.toml changes
BENCH_STAMP := $(VENV)/.bench-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test check bench faults setup lock redis-server chromium clean
CHECK_TESTS := tests/formats tests/test_odsql.py tests/test_long_chains.py tests/test_arq_contract.py \
	tests/test_edge_validation.py tests/test_huge_integers.py tests/test_rate_limits.py tests/test_explore.py \
	tests/test_exports_api.py tests/test_projection.py tests/test_version_cache.py tests/test_downloads.py

run: setup
	$(BIN)/python -m domain.manage run

test: setup chromium
	$(BIN)/ruff check api worker domain formats tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: setup
	$(BIN)/ruff check api worker domain formats tests bench
	$(BIN)/python -m pytest -q -x -p no:cacheprovider $(CHECK_TESTS) $(PYTEST_ARGS)

bench: setup $(BENCH_STAMP)
	@command -v ogr2ogr >/dev/null 2>&1 || { echo "installing Debian's gdal-bin (ogr2ogr, a baseline)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq gdal-bin >/dev/null; }
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,--repeat 3) $(BENCH_ARGS)
	$(BIN)/python -m bench.service $(if $(QUICK),--exports 20 --big-rows 0 --drained 60) $(SERVICE_ARGS)
	$(BIN)/python -m bench.isolation $(if $(QUICK),--requests 100 --rows 200000)
	$(BIN)/python -m bench.web $(if $(QUICK),--posts 300 --gets 1500)

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
