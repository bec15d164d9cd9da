# jupyterhub-ds developer entry points. The two a newcomer runs: `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help deps lint k8s-binaries images test test-fast test-e2e test-kind up down cluster chart-schema bench

help:
	@echo "make up        start jupyterhub-ds (kind + images + helm with Docker; else helm on the local control plane)"
	@echo "make down      stop what 'make up' started"
	@echo "make test      lint + unit, chart, image and end-to-end tests (provisions the local control plane)"
	@echo "make cluster   start only the local control plane; prints KUBECONFIG=... last"

# --- dependencies (all installed by the project itself; nothing by hand)
$(VENV)/.installed: pyproject.toml requirements/hub-image.txt requirements/test.txt
	@$(PYTHON) -m ci.dev.postgres install  # PostgreSQL for the tests (Debian packages), pg_config for psycopg2
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c requirements/hub-image.txt -e . -r requirements/test.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

deps: $(VENV)/.installed node_modules/.installed
	@$(PYTHON) -m ci.dev.postgres install
	@$(PY) -m ci.dev.get_helm >/dev/null
	@ci/dev/browser.sh

# --- checks
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check hub_extensions kubectl_jupyterhub ci tests

chart-schema: $(VENV)/.installed
	$(PY) -m ci.chart sync-schema
	$(PY) -m ci.chart sync-readme

# the control plane's binaries are built before pytest (a cold build takes minutes; no test timeout applies)
k8s-binaries:
	@if command -v go >/dev/null; then ci/dev/provision-k8s.sh >/dev/null; else echo "go missing: cluster tests will skip"; fi

# the real node's images, built from images/*/Dockerfile with buildah (cached by content; a cold build takes minutes)
images: $(VENV)/.installed
	@if command -v go >/dev/null; then $(PY) -m ci.dev.images build >/dev/null; fi

test: deps lint k8s-binaries images
	$(PY) -m pytest -ra $(PYTEST_ARGS) tests

test-fast: deps lint
	$(PY) -m pytest -ra -m "not cluster" $(PYTEST_ARGS) tests

test-e2e: deps k8s-binaries images
	$(PY) -m pytest -ra -m cluster $(PYTEST_ARGS) tests/e2e

# benchmarks (not part of `make test`): every module ci/bench/[!_]*.py, run as `python -m ci.bench.<name>`;
# ci/bench/provision.sh (a cold control-plane build, ~9 min) is run by hand
bench: $(VENV)/.installed
	@for script in ci/bench/[!_]*.py; do module=ci.bench.$$(basename $$script .py); echo "== python -m $$module"; \
		$(PY) -m $$module || exit 1; done

# against a kind install made by `make up` on a machine with Docker (CI workflow .github/workflows/kind.yaml)
test-kind: deps
	JHDS_TARGET=kind $(PY) -m pytest -ra $(PYTEST_ARGS) tests/kind

# --- running it
cluster: deps
	@ci/dev/cluster.sh up

up: deps
	@if docker info >/dev/null 2>&1; then ci/kind/up.sh; else $(PY) -m ci.dev.devenv up; fi

down:
	@if docker info >/dev/null 2>&1 && command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx jupyterhub-ds; then \
		kind delete cluster --name jupyterhub-ds; else $(PY) -m ci.dev.devenv down; fi
