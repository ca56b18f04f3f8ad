# The two entry points the README starts with: `make dev` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: dev test test-chaos test-containers test-bench images lint bench install system-packages clean

# Real services the tests use: RabbitMQ, Prometheus (and promtool), bubblewrap, and a real
# browser for the console's tests (Playwright drives Debian's chromium).
SYSTEM_COMMANDS := rabbitmq-server prometheus promtool bwrap chromium
SYSTEM_PACKAGES := rabbitmq-server prometheus bubblewrap chromium

TEST_TOOLS := $(VENV)/.test-tools

# What running qrt needs, and no more; pip shows what it fetches as it goes.
$(BIN)/qrt: pyproject.toml
	@echo "qrt: installing qrt and what it runs on into $(VENV) (the first time takes a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar on -e .
	touch $(BIN)/qrt
	@echo "qrt: installed; \`make test\` adds the test tools"

# The test tools (pytest, ruff, mypy, ...), on top of what running needs.
$(TEST_TOOLS): $(BIN)/qrt
	@echo "qrt: installing the test tools into $(VENV)"
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_TOOLS)

install: $(TEST_TOOLS)

dev: $(BIN)/qrt
	$(BIN)/qrt dev

# On a fresh Debian machine (as root) this installs what is missing; elsewhere it says what to install.
system-packages:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(SYSTEM_PACKAGES) (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "missing:$$missing; install the packages $(SYSTEM_PACKAGES)"; exit 1; fi; \
	fi

test: install system-packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 2 --dist loadgroup

# Minutes of random kills (pytest -m chaos); the main suite leaves them out.
test-chaos: install system-packages
	timeout 900 $(BIN)/pytest -q -o faulthandler_timeout=600 -m chaos tests/platform/test_chaos.py

# The four images, built with podman from services/*/Dockerfile on a Python base made from
# Debian's packages (containers/images.sh; cached: a warm build takes seconds).
images:
	containers/images.sh

# Every benchmark at its --quick sizes, so none rots (pytest -m bench; no timing asserted).
test-bench: install system-packages
	timeout 1200 $(BIN)/pytest -q -m bench tests/bench

# The platform run from those images, locked down as the chart runs them (pytest -m containers).
# Skipped, saying why, where podman cannot build or run containers.
test-containers: install
	@if ! command -v podman >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing podman buildah runc debootstrap"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap >/dev/null; \
	fi
	@if containers/usable.sh; then \
	  timeout 1200 sh -c 'containers/images.sh && $(BIN)/pytest -q -m containers tests/containers'; \
	else echo "test-containers: skipped: podman cannot run containers here ($$(containers/usable.sh 2>&1 || true))"; fi

bench: install
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/mesh.py
	$(BIN)/python bench/device.py
	$(BIN)/python bench/job_process.py
	$(BIN)/python bench/heavy_reads.py
	$(BIN)/python bench/primitives.py
	$(BIN)/python bench/ibm_client.py
	$(BIN)/python bench/warm_jobs.py
	$(BIN)/python bench/cpu_per_job.py
	$(BIN)/python bench/memory.py

clean:
	rm -rf $(VENV) .qrt .test-output .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
