# `make demo` / `make test` / `make bench` each set up .venv on a fresh machine first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# The CPU build of torch lies on this disk; install it first so that the open
# `torch>=2.4` range in pyproject.toml is already met and no CUDA build is pulled.
$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,marigold,lora]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/polydiff demo -o demo_out --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP)
	$(BIN)/ruff check polydiff tests benchmarks

clean:
	rm -rf $(VENV) demo_out
