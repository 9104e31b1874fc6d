# calo_assets: one entry point for setting up, running, testing and benchmarking.
# `make run` and `make test` set everything up first (a virtual environment in .venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-packages run test lint format bench dev clean sanitize

setup: $(STAMP) system-packages

$(STAMP): pyproject.toml calo_assets/logs/_native.c calo_assets/ledger/_forest.c
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	@$(PYTHON) -c 'import sysconfig, pathlib, sys; h = pathlib.Path(sysconfig.get_paths()["include"], "Python.h"); sys.exit(0 if h.exists() else f"{h} is missing: install Python 3.11 development headers (Debian: python3-dev)")'
	@command -v cc >/dev/null || command -v gcc >/dev/null || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing a C compiler (gcc) for the compiled part of the parse"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; \
	    else echo "a C compiler (cc or gcc) is needed to build calo_assets/logs/_native.c" >&2; exit 1; fi; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## System packages the project needs, installed with Debian's apt when missing (and running as root):
## chromium for the chart images (kaleido), postgresql for the deployment tests. (A C compiler and
## Python's headers, for the compiled part of the parse, are checked before the install: see $(STAMP).)
system-packages:
	@missing=""; \
	if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
	    && ! command -v google-chrome >/dev/null && [ -z "$$BROWSER_PATH" ]; then missing="$$missing chromium"; fi; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$$missing postgresql"; fi; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	    echo "warning: missing$$missing and no way to install here (PNG charts / deployment tests need them)"; \
	fi

## The main job on the shipped sample: every asset for every day, then a summary.
run: setup
	$(BIN)/calo-report

## Lint, then the whole test suite (unit, Dagster, end to end on ../shared/real-logs).
test: setup lint
	$(BIN)/python -m pytest -q

## The compiled modules under AddressSanitizer and UBSan: a copy of the package with instrumented builds,
## then the tests that exercise them (any memory error or undefined behaviour stops the run); not the
## comparison with scikit-learn on the real export, which lies outside the copy.
SANITIZE_DIR ?= /tmp/calo_sanitize
SANITIZE_CC = cc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
    -I"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
EXT_SUFFIX = $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
sanitize: setup
	rm -rf $(SANITIZE_DIR) && mkdir -p $(SANITIZE_DIR)
	cp -r calo_assets calo_assets_tests pyproject.toml $(SANITIZE_DIR)/ && ln -s $(CURDIR)/data $(SANITIZE_DIR)/data
	rm -f $(SANITIZE_DIR)/calo_assets/logs/_native*.so $(SANITIZE_DIR)/calo_assets/ledger/_forest*.so
	$(SANITIZE_CC) calo_assets/logs/_native.c -o $(SANITIZE_DIR)/calo_assets/logs/_native$(EXT_SUFFIX)
	$(SANITIZE_CC) calo_assets/ledger/_forest.c -o $(SANITIZE_DIR)/calo_assets/ledger/_forest$(EXT_SUFFIX)
	cd $(SANITIZE_DIR) && export PYTHONPATH=$(SANITIZE_DIR) ASAN_OPTIONS=detect_leaks=0 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    LD_PRELOAD="$$(cc -print-file-name=libasan.so):$$(cc -print-file-name=libubsan.so)" \
	&& $(CURDIR)/$(BIN)/python -c 'import calo_assets.logs._native as n, calo_assets.ledger._forest as f, sys; sys.exit(0 if all(m.__file__.startswith("$(SANITIZE_DIR)") for m in (n, f)) else f"not the instrumented builds: {n.__file__}, {f.__file__}")' \
	&& $(CURDIR)/$(BIN)/python -m pytest -q -p no:cacheprovider --rootdir=$(SANITIZE_DIR) \
	    calo_assets_tests/test_native.py calo_assets_tests/test_events.py \
	    calo_assets_tests/test_fuzz.py calo_assets_tests/test_reader_and_export.py \
	    calo_assets_tests/test_anomalies.py --deselect \
	    calo_assets_tests/test_anomalies.py::test_on_the_real_export_the_ranking_agrees_with_scikit_learns_isolation_forest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks (not part of the tests; a quick run of each is), as the README's Performance section
## lists them: calo-report against a bare read and through Dagster (PostgreSQL needed), parse vs a
## bare read, growth, reconciliation over a year, anomaly scores, the whole history by stage,
## Dagster's own costs, peak memory of a big day and of big streams, the report by stage.
## BENCH_MEMORY_DAY sets the size of that day.
BENCH_MEMORY_DAY ?= 1G
bench: setup
	$(BIN)/python -m benchmarks.one_shot --postgres
	$(BIN)/python -m benchmarks.parse_vs_gzip --repeat 7
	$(BIN)/python -m benchmarks.growth
	$(BIN)/python -m benchmarks.reconciliation
	$(BIN)/python -m benchmarks.anomalies
	$(BIN)/python -m benchmarks.history --plot docs/stage_times.png
	$(BIN)/python -m benchmarks.dagster_events
	$(BIN)/python -m benchmarks.dagster_floor --postgres
	$(BIN)/python -m benchmarks.memory --bytes-per-day $(BENCH_MEMORY_DAY)
	$(BIN)/python -m benchmarks.big_streams
	$(BIN)/python -m benchmarks.report

## The Dagster UI on http://127.0.0.1:3000 with runs kept in data/dagster_home.
dev: setup
	mkdir -p data/dagster_home
	DAGSTER_HOME=$(CURDIR)/data/dagster_home $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf data/warehouse data/reports data/dagster_home .pytest_cache .ruff_cache
