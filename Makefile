# Coffer: every target installs what it needs itself (Debian packages, the
# virtual environment), so a fresh Debian machine needs only `make demo` and
# `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pyfuse3 builds from source against libfuse3; fuse3 gives fusermount3 for mounts.
DEBS_BUILD := fuse3 libfuse3-dev pkg-config attr rsync
# Servers the destination and scale-out tests start on loopback (sshd, redis-server), the browser the console tests
# drive (Playwright with Debian's chromium: no browser download), and the engines
# we benchmark against.
DEBS_TEST := openssh-server rclone chromium redis-server
DEBS_BENCH := restic borgbackup python3-llfuse time  # llfuse: borg mount
AZURITE := $(VENV)/node/node_modules/.bin/azurite-blob
PYTEST_ARGS ?=
# Two workers, each taking whole test files (module fixtures such as a backed-up
# simulated tenant are built once): most tests wait on servers, Retry-After and
# subprocesses, so two workers halve the suite's time even on two cores.
XDIST ?= -n 2 --dist loadfile

.PHONY: venv check test test-full demo bench testdeps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@tools/setup/debs.sh $(DEBS_BUILD)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip >/dev/null
	@$(BIN)/pip install -q -e '.[dev,all]' >$(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

testdeps: venv
	@tools/setup/debs.sh $(DEBS_TEST)
	@test -x $(AZURITE) || (echo "coffer setup: installing Azurite (npm)" >&2; \
	  npm install --silent --no-audit --no-fund --prefix $(VENV)/node azurite@3 >/dev/null)

check: venv
	$(BIN)/ruff check store sources mount cli tools tests
	$(BIN)/ruff format --check store sources mount cli tools tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check testdeps
	$(BIN)/pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# Inputs per fuzz target (docs/fuzzing.md): 100 in `make test`, this many here.
FUZZ_FULL ?= 2000

test-full: check testdeps
	COFFER_FUZZ_EXAMPLES=$(FUZZ_FULL) $(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

demo: venv
	$(BIN)/python -m tools.demo

bench: venv
	@tools/setup/debs.sh $(DEBS_BENCH)
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
