# GridLink: `make run` starts everything, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench install rabbitmq test-tools clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,embedded]'
	touch $(STAMP)

install: $(STAMP)

rabbitmq:
	@scripts/ensure-rabbitmq.sh

# promtool checks the alert rules, haproxy the load-balancer config (Debian packages).
test-tools:
	@command -v promtool >/dev/null && command -v haproxy >/dev/null || \
	  scripts/apt-install.sh prometheus haproxy

run: install rabbitmq
	$(BIN)/gridlink run all

test: install rabbitmq test-tools
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install rabbitmq
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .gridlink .pytest_cache .ruff_cache
