# `make run`: Redis, the web process and a worker, with the demo datasets loaded; it installs only
#   what running needs (requirements.lock).
# `make test`: the whole test suite (it starts its own redis-server on a free port); it adds the
#   test tools (requirements-test.lock: pytest, Playwright, moto, …).
# `make check`: the fast loop while changing code: lint, then the formats, ODSQL, the APIs'
#   validation and the arq contract (under a minute); `make test` before a commit.
# All create the venv from pyproject.toml and install Debian's redis-server when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# the bench extras (DuckDB, polars, …): installed once, again when pyproject.toml changes
BENCH_STAMP := $(VENV)/.bench-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test check bench faults setup run-setup lock redis-server chromium clean
CHECK_TESTS := tests/formats tests/test_odsql.py tests/test_long_chains.py tests/test_arq_contract.py \
	tests/test_edge_validation.py tests/test_huge_integers.py tests/test_rate_limits.py tests/test_explore.py \
	tests/test_exports_api.py tests/test_projection.py tests/test_version_cache.py tests/test_downloads.py

run: run-setup
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

run-setup: $(RUN_STAMP) redis-server
setup: $(STAMP) redis-server

# The versions in the locks first (`make lock` refreshes them), then the project itself, which
# adds only what the locks do not hold yet (a dependency added since). Running needs only
# requirements.lock; the tests add requirements-test.lock and the test extras.
$(RUN_STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) pyproject.toml requirements-test.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

lock:  # the locks anew: what a fresh venv resolves for pyproject.toml today, then what the test extras add
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^exportd' > requirements.lock
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^exportd' | grep -vxF -f requirements.lock > requirements-test.lock
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
