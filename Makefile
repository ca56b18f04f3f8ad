# The two entry points the README starts with: `make dev` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: dev test test-chaos lint bench install system-packages clean

# Real services the tests use: RabbitMQ, Prometheus (and promtool), bubblewrap.
SYSTEM_COMMANDS := rabbitmq-server prometheus promtool bwrap
SYSTEM_PACKAGES := rabbitmq-server prometheus bubblewrap

$(BIN)/qrt: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/qrt

install: $(BIN)/qrt

dev: install
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
	$(BIN)/pytest -q

# Minutes of random kills (pytest -m chaos); the main suite leaves them out.
test-chaos: install system-packages
	timeout 900 $(BIN)/pytest -q -m chaos tests/platform/test_chaos.py

bench: install
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/mesh.py
	$(BIN)/python bench/device.py
	$(BIN)/python bench/job_process.py
	$(BIN)/python bench/heavy_reads.py
	$(BIN)/python bench/primitives.py
	$(BIN)/python bench/warm_jobs.py
	$(BIN)/python bench/cpu_per_job.py
	$(BIN)/python bench/memory.py

clean:
	rm -rf $(VENV) .qrt .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
