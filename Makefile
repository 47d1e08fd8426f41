# Quick start on a fresh machine: `make demo`, then `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
SANDBOX     := .sandbox
JARS_STAMP  := $(SANDBOX)/jars/.fetched
VENV_STAMP  := $(VENV)/.installed
DEPS_STAMP  := $(SANDBOX)/.system-deps

.PHONY: help deps jars venv up down status run stop-jobs demo test test-unit test-int lint clean e2e bench bench-collector

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

deps: $(DEPS_STAMP) ## system packages: Java 17+, Maven, redis-server (apt-get when missing)
$(DEPS_STAMP): scripts/install-system-deps.sh
	@bash scripts/install-system-deps.sh
	@mkdir -p $(SANDBOX) && touch $@

jars: $(JARS_STAMP) ## Kafka broker and Flink Kafka connector jars from Maven Central (pinned in sandbox/pom.xml)
$(JARS_STAMP): sandbox/pom.xml | $(DEPS_STAMP)
	@echo "fetching jars pinned in sandbox/pom.xml (first time: about a minute)"
	@rm -rf $(SANDBOX)/jars && mkdir -p $(SANDBOX)/jars
	mvn -q -B -f sandbox/pom.xml dependency:copy-dependencies \
	    -DexcludeGroupIds=org.apache.flink -DoutputDirectory=$(CURDIR)/$(SANDBOX)/jars/kafka
	mvn -q -B -f sandbox/pom.xml dependency:copy-dependencies \
	    -DincludeGroupIds=org.apache.flink -DexcludeTransitive=true -DoutputDirectory=$(CURDIR)/$(SANDBOX)/jars/flink
	@touch $@

venv: $(VENV_STAMP) ## the Python 3.11 virtualenv with the project installed (pip install -e .[dev])
$(VENV_STAMP): setup.py
	@$(PYTHON_BOOT) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else "PyFlink 2.2 needs Python 3.11 or 3.12; set PYTHON_BOOT=python3.11")'
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@echo "installing Python packages into $(VENV) (first time: a few minutes, apache-flink is large)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

up: deps jars venv ## start Kafka and Redis on loopback (idempotent) and create the topics
	@$(PY) -m sandbox up

down: ## stop what `make up` started
	@$(PY) -m sandbox down

status: ## what runs, on which port, and where it logs
	@$(PY) -m sandbox status

run: up ## start the pipeline's jobs on the embedded local cluster, in the background
	@$(PY) -m sandbox jobs-start

stop-jobs: ## stop the jobs `make run` started
	@$(PY) -m sandbox jobs-stop

demo: up ## the whole pipeline on a sample clickstream, then a summary
	@$(PY) -m demo

test: deps jars venv ## the whole suite; starts (and then stops) the services it needs
	$(PY) -m pytest

test-unit: venv ## unit tests only: no JVM, no services, seconds
	$(PY) -m pytest tests/unit

test-int: deps jars venv ## integration tests against real Kafka, Redis and PyFlink
	$(PY) -m pytest -m integration

e2e: deps jars venv ## the demo shop in headless Chromium, through the collector to Kafka
	$(PY) -m pytest tests/e2e

bench: up ## engine floor, the product, a plain-Python baseline and the collector side by side; writes BENCHMARKS.md
	cd bench && ../$(PY) suite.py $(BENCH_ARGS)

bench-collector: up ## load the collector on loopback; JSON in bench/results/ (see BENCHMARKS.md)
	$(PY) bench/collector_load.py

MYPY_PATHS := udfs connectors jobs collector sandbox admin esp_sandbox demo bench

lint: venv ## ruff, and mypy over the code that ships and runs (settings in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(MYPY_PATHS)

clean: down ## remove the sandbox's data and logs (keeps the jars and the venv)
	rm -rf $(SANDBOX)/data $(SANDBOX)/logs $(SANDBOX)/checkpoints $(SANDBOX)/run $(SANDBOX)/kafka

.PHONY: cluster-up cluster-run cluster-down
cluster-up: up ## a standalone Flink cluster from the pip-installed Flink (web UI on 127.0.0.1:8081)
	@$(PY) -m sandbox.cluster up

cluster-run: cluster-up ## submit every job to it with `flink run -py`, detached
	@$(PY) -m sandbox.cluster run

cluster-down: ## stop that cluster
	@$(PY) -m sandbox.cluster down

.PHONY: preview
preview: venv ## render every email template and A/B variant with sample data into preview/ (open preview/index.html)
	$(PY) -m udfs.preview --out preview
