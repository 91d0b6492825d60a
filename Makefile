# The platform's stable entry points. Everything runs inside .venv, created on demand from
# the pinned requirements.lock. Variables can be overridden: `make data DATA_DIR=/kaggle`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# One thread per LightGBM/SHAP call: default threading is 5-300x slower on a busy 2-core box.
export OMP_NUM_THREADS ?= 1
# Nothing phones home.
export MLFLOW_DISABLE_TELEMETRY := true
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export DO_NOT_TRACK := 1
# Real Kaggle folder (empty: the synthetic set) and synthetic size, read by `credit`.
DATA_DIR ?=
ifneq ($(strip $(DATA_DIR)),)
export DATA_DIR
endif
export SYNTHETIC_CLIENTS ?= 20000
export MLFLOW_TRACKING_URI ?= sqlite:///mlruns/mlflow.db
# Container images: credit-scoring/<image>:$(IMAGE_TAG), on PYTHON_IMAGE. The default base is
# made here from Debian packages (scripts/base-image.sh): registry images need Docker Hub.
export PYTHON_IMAGE ?= credit-python:3.11-bookworm
export IMAGE_TAG ?= dev

.PHONY: help protos venv services up down data features train materialize test lint bench clean mlflow ops-tools deploy-check drift locks k8s-base images e2e

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "python venv module missing: installing python3-venv"; \
	  bash scripts/apt-install.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# gRPC stubs are build products (git-ignored): generated from protos/ whenever they change.
PROTOS := $(wildcard protos/credit/v1/*.proto)
STUBS := $(patsubst protos/%.proto,%_pb2.py,$(PROTOS))
$(STUBS) &: $(PROTOS) $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. \
	  --grpc_python_out=. $(PROTOS)

protos: $(STUBS) ## Generate the gRPC stubs (credit/v1/*_pb2*.py) from protos/

venv: $(STAMP) $(STUBS) ## Create .venv from requirements.lock (only when missing or stale)

services: ## Install and start the local services the platform needs (Redis, PostgreSQL)
	@bash scripts/ensure-services.sh

up: venv services data ## Everything: environment, data, features, model, feature store, services
	$(BIN)/credit features build --if-stale
	$(BIN)/credit train --quick --if-stale
	$(BIN)/credit materialize --if-stale
	$(BIN)/credit services start
	@echo "Typed tables in data/tables (summary: data/tables/quality.json); features in artifacts/features;"
	@echo "model card and metrics in artifacts/; runs and registry: make mlflow; service logs in .run/."

down: venv ## Stop what `make up` started
	$(BIN)/credit services stop

data: venv ## Typed tables in data/tables: synthetic by default, or DATA_DIR=/path/to/kaggle
	$(BIN)/credit data prepare

features: venv ## Features per client -> artifacts/features
	$(BIN)/credit features build

train: features ## Features, then train, calibrate, evaluate and register (artifacts/, mlruns/)
	$(BIN)/credit train

mlflow: venv ## Open the MLflow UI on the local store (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

materialize: features ## Features into the online store (ONLINE_STORE=sqlite|redis) + feature services
	$(BIN)/credit materialize

test: venv services ops-tools ## Run the whole test suite
	@bash scripts/ensure-test-tools.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest --ignore=tests/e2e

images: venv ## Build the five images (credit-scoring/<image>:IMAGE_TAG); sizes, times -> artifacts/bench.json
	@bash scripts/ensure-docker.sh
	@if [ "$(PYTHON_IMAGE)" = "credit-python:3.11-bookworm" ]; then bash scripts/base-image.sh "$(PYTHON_IMAGE)"; fi
	$(BIN)/credit images build

e2e: venv ops-tools ## The Helm chart's pods run as containers from the images, driven end to end
	@bash scripts/ensure-docker.sh
	@bash scripts/ensure-test-tools.sh
	@# The pod network's own Redis and PostgreSQL run from Debian's binaries.
	@bash scripts/apt-install.sh redis-server postgresql
	$(BIN)/python -m pytest tests/e2e

ops-tools: venv ## Install helm, kubectl, promtool/prometheus, hadolint, checkov, kubernetes-validate
	@bash scripts/install-ops-tools.sh >/dev/null

deploy-check: venv ops-tools ## Validate images, chart, kustomize, skaffold, monitoring, drift
	$(BIN)/python -m pytest tests/test_deploy.py tests/test_monitoring.py tests/test_drift.py

drift: venv ## Recent real decisions vs the model's reference sample -> artifacts/drift/
	$(BIN)/credit drift

locks: venv ## Regenerate the per-image docker/requirements-*.lock from pyproject.toml
	bash docker/compile-locks.sh

k8s-base: ## Regenerate k8s/base from the Helm chart
	bash k8s/render-base.sh

lint: venv ## ruff (lint, formatting: ruff format . fixes it), mypy, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: venv ## Measure speed and memory -> artifacts/bench.{json,md} (REST/gRPC: after make up)
	@bash scripts/apt-install.sh wrk
	@# Spark's local mode (spark_features) and the bench's own Redis Cluster (redis_cluster).
	@bash scripts/ensure-test-tools.sh
	$(BIN)/credit bench

clean: ## Remove generated data, artefacts and the local MLflow store (keeps .venv)
	rm -rf data artifacts mlruns
