# One-command setup: every target installs what it needs, once (stamp files), then runs.
SHELL := /bin/bash
# A distribution's python3.11 first: Debian's (and the python Docker images') are built with PGO and
# LTO, pyenv's are not unless PYTHON_CONFIGURE_OPTS asks, and ran the producer 11% more instructions
# per event.
PYTHON311 ?= $(firstword $(wildcard /usr/bin/python3.11 /usr/local/bin/python3.11 $(HOME)/.pyenv/versions/3.11*/bin/python3.11) $(shell command -v python3.11))
# Venv stamps name the interpreter: another PYTHON311 makes each venv again (`new_venv`).
INTERPRETER_TAG := $(subst /,-,$(realpath $(PYTHON311)))
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed$(INTERPRETER_TAG)
NODE_STAMP := node_modules/.installed
FLINK_VENV := .venv-flink
FLINK_VENV_STAMP := $(FLINK_VENV)/.installed$(INTERPRETER_TAG)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

MYPY_FILES = $(shell find pipeline lambdas stacks bench flink tests app.py -name "*.py" -not -path "*/cdk.out/*" 2>/dev/null)

.PHONY: setup test lint typecheck schemas-check pytest demo synth bench clean cfn-lint layers deploy flink-venv

# The venv $(1) of PYTHON311, made anew when another interpreter made it.
define new_venv
	@if [ "$$(realpath $(1)/bin/python 2>/dev/null)" != "$(realpath $(PYTHON311))" ]; then rm -rf $(1) && $(PYTHON311) -m venv $(1); fi
endef

$(VENV_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@echo "==> creating $(VENV) with $(PYTHON311)"
	$(call new_venv,$(VENV))
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# The Flink job's own venv: apache-flink 1.20 pins an old numpy/pyarrow/beam world (flink/requirements.txt).
$(FLINK_VENV_STAMP): flink/requirements.txt
	@echo "==> creating $(FLINK_VENV) with $(PYTHON311) (apache-flink, about 720 MB)"
	$(call new_venv,$(FLINK_VENV))
	$(FLINK_VENV)/bin/pip install --quiet --disable-pip-version-check -r flink/requirements.txt
	@touch $@

flink-venv: $(FLINK_VENV_STAMP)

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

pytest: setup $(FLINK_VENV_STAMP)
	$(VENV)/bin/pytest
	$(FLINK_VENV)/bin/pytest tests/flink -p no:cacheprovider -W "ignore:pkg_resources is deprecated:UserWarning" \
	  -W ignore::pytest.PytestUnhandledThreadExceptionWarning  # beam's gRPC reader thread, when a test cancels a job

test: lint schemas-check pytest

# The whole pipeline on the embedded moto emulator; DEMO_ARGS="--events 50000 --target localstack" etc.
DEMO_ARGS ?=
demo: setup $(FLINK_VENV_STAMP)
	$(VENV)/bin/pipeline demo $(DEMO_ARGS)

# Offline: cdk-nag (AwsSolutions) findings without an acknowledgement fail it. STAGE=dev|prod, TARGET=emulator.
STAGE ?=
TARGET ?= aws
CDK_CONTEXT = $(if $(STAGE),-c stage=$(STAGE)) -c target=$(TARGET)
synth: setup
	node_modules/.bin/cdk synth --quiet $(CDK_CONTEXT)

cfn-lint: synth
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json  # warnings are printed, errors fail

# Third-party dependencies of each Lambda, as Linux x86_64 wheels for the Lambda runtime (stacks/processing.py).
# manylinux_2_28 too: pyarrow 26 ships no manylinux2014 wheel, and Lambda python3.13 (AL2023, glibc 2.34) runs 2_28.
LAMBDA_PY ?= 3.13
layers: $(VENV_STAMP)
	@mkdir -p build && sed 's/\[[^]]*\]//' requirements.txt > build/layer-constraints.txt  # pip constraints take no extras
	@for fn in enricher lake_writer; do \
	  rm -rf build/layers/$$fn && mkdir -p build/layers/$$fn/python && \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
	    --implementation cp --python-version $(LAMBDA_PY) --only-binary=:all: \
	    --target build/layers/$$fn/python -r lambdas/$$fn/requirements.txt -c build/layer-constraints.txt || exit 1; \
	  if [ -f lambdas/$$fn/requirements-pure.txt ]; then \
	    $(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --target build/layers/$$fn/python \
	      -r lambdas/$$fn/requirements-pure.txt -c build/layer-constraints.txt || exit 1; \
	  fi; \
	  (cd build/layers/$$fn/python && rm -rf bin boto3* botocore* s3transfer* pyarrow/include pyarrow/tests); \
	done
	@du -sh build/layers/*  # Lambda's limit: 250 MB unzipped, function and layers together

deploy: layers
	node_modules/.bin/cdk deploy --all --require-approval never $(CDK_CONTEXT)

bench: $(VENV_STAMP)
	@for b in bench/bench_*.py; do $(PY) $$b; done

clean:
	rm -rf $(VENV) $(FLINK_VENV) node_modules cdk.out .state

# Managed Flink application zip (flink/README.md); FLINK_CONNECTOR_JAR=path skips the Maven download.
.PHONY: flink-package
flink-package: $(VENV_STAMP)
	$(VENV)/bin/pipeline flink package $(if $(FLINK_CONNECTOR_JAR),--connector-jar $(FLINK_CONNECTOR_JAR))
