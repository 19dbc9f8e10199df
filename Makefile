# One-command setup: every target installs what it needs, once (stamp files), then runs.
SHELL := /bin/bash
PYTHON311 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) $(shell command -v python3.11))
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

MYPY_FILES = $(shell find pipeline lambdas stacks bench flink tests app.py -name "*.py" -not -path "*/cdk.out/*" 2>/dev/null)

.PHONY: setup test lint typecheck schemas-check pytest demo synth bench clean

$(VENV_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@echo "==> creating $(VENV) with $(PYTHON311)"
	@test -x $(PY) || $(PYTHON311) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@echo "==> installing the CDK CLI into node_modules/"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(VENV_STAMP) $(NODE_STAMP)

lint: $(VENV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(MYPY_FILES)

schemas-check: $(VENV_STAMP)
	$(VENV)/bin/pipeline schemas check

pytest: setup
	$(VENV)/bin/pytest

test: lint schemas-check pytest

demo: setup
	$(VENV)/bin/pipeline demo

synth: setup
	$(VENV)/bin/cdk synth --quiet

bench: $(VENV_STAMP)
	@for b in bench/bench_*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) node_modules cdk.out .state
