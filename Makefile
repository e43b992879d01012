# Common commands. Everything runs from the project's own .venv.
PY      := .venv/bin/python
PIP     := .venv/bin/pip
KAFKA   := bash deploy/kafka/kafka.sh
PIP_VERSION := 26.3
UV_VERSION  := 0.13.8


.PHONY: install install-bench lock system-deps system-deps-kafka system-deps-node asyncapi-tools asyncapi-check k8s-check demo worker test test-unit test-integration test-multiworker lint schemas bench kafka-start kafka-stop kafka-status clean

# Installs exactly what requirements/dev.lock pins (with hashes), then the
# project itself without resolving anything again. `make lock` refreshes
# the lock files after a change to pyproject.toml's dependencies.
.venv/.installed: pyproject.toml requirements/dev.lock
	python3 -m venv .venv
	$(PIP) install -q pip==$(PIP_VERSION)
	$(PIP) install -q --require-hashes -r requirements/dev.lock
	$(PIP) install -q --no-deps -e .
	touch $@

install: .venv/.installed

# The benchmark extras (DuckDB, matplotlib, py-spy), pinned the same way.
install-bench: install
	$(PIP) install -q --require-hashes -r requirements/bench.lock

lock: install
	$(PIP) install -q uv==$(UV_VERSION)
	.venv/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes -q -o requirements/runtime.lock
	.venv/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes -q -o requirements/dev.lock
	.venv/bin/uv pip compile pyproject.toml --extra dev --extra bench --universal \
		--python-version 3.11 --generate-hashes -q -o requirements/bench.lock

# Starts the local Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), a worker on
# the event clock, demo segments and real purchase history, then a trickle of
# synthetic purchases; prints membership changes live until Ctrl-C. Needs
# Java and Python only (Maven once, to fetch the Kafka jars).
demo: install kafka-start
	KAFKA_BOOTSTRAP_SERVERS=$$($(KAFKA) bootstrap) .venv/bin/segmentflow demo

worker: install kafka-start
	KAFKA_BOOTSTRAP_SERVERS=$$($(KAFKA) bootstrap) .venv/bin/segmentflow worker

# Unit tests (pure engine) and integration tests (real broker, started by
# the test session through deploy/kafka/kafka.sh if not running).
test: install system-deps asyncapi-tools
	.venv/bin/pytest

test-unit: install asyncapi-tools
	.venv/bin/pytest tests/unit

test-integration: install system-deps
	.venv/bin/pytest tests/integration

# Two workers, one killed (also part of `make test`), on its own.
test-multiworker: install system-deps
	.venv/bin/pytest -m multiworker tests/integration/test_two_workers.py

# ruff, the one-way package layers ([tool.importlinter] in pyproject.toml), the
# AsyncAPI document through the AsyncAPI parser, the Kubernetes manifests offline.
lint: install asyncapi-tools
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	$(ASYNCAPI_VALIDATE) schemas/asyncapi.yaml
	$(PY) -m tools.kubernetes_check

# deploy/kubernetes against the Kubernetes JSON schemas (strict, no cluster, no
# network: kubernetes-validate ships them) and the worker's settings and API.
k8s-check: install
	$(PY) -m tools.kubernetes_check

# JSON Schemas (schemas/*.schema.json) and the AsyncAPI document
# (schemas/asyncapi.yaml), from the models.
schemas: install
	$(PY) -m models.schema_export
	$(PY) -m models.asyncapi

# The AsyncAPI validator: @asyncapi/parser from npm, pinned by
# tools/asyncapi/package-lock.json (npm ci installs exactly that tree).
ASYNCAPI_STAMP    := tools/asyncapi/node_modules/.installed
ASYNCAPI_VALIDATE := node tools/asyncapi/validate.mjs

$(ASYNCAPI_STAMP): tools/asyncapi/package.json tools/asyncapi/package-lock.json | system-deps-node
	cd tools/asyncapi && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

asyncapi-tools: $(ASYNCAPI_STAMP)

asyncapi-check: asyncapi-tools
	$(ASYNCAPI_VALIDATE) schemas/asyncapi.yaml

bench: install-bench
	$(PY) bench/engine_bench.py

# Everything the tests need: Java + Maven (local Kafka) and Prometheus/promtool
# (metrics tests).
system-deps:
	@bash deploy/install-system-deps.sh all

# Only what the local broker needs (demo, worker): Java, and Maven until the
# Kafka jars are fetched; nothing when KAFKA_BOOTSTRAP_SERVERS is set.
system-deps-kafka:
	@bash deploy/install-system-deps.sh kafka

# Node.js and npm (the AsyncAPI validator).
system-deps-node:
	@bash deploy/install-system-deps.sh node

kafka-start: system-deps-kafka
	@$(KAFKA) start >/dev/null

kafka-stop:
	@$(KAFKA) stop

kafka-status:
	@$(KAFKA) status

clean:
	rm -rf data .pytest_cache .hypothesis
