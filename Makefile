# The two entry points the README starts with: `make dev` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: dev test lint bench install clean

$(BIN)/qrt: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/qrt

install: $(BIN)/qrt

dev: install
	$(BIN)/qrt dev

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/mesh.py
	$(BIN)/python bench/device.py

clean:
	rm -rf $(VENV) .qrt .pytest_cache .mypy_cache .ruff_cache
