# The README's two commands: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The LiteLLM proxy that tests/integration/litellm/test_litellm_proxy.py starts, in a virtualenv
# of its own: its extra pins click and rich where the server extra cannot follow.
PROXY_VENV  := $(VENV)/litellm-proxy
PROXY_STAMP := $(PROXY_VENV)/.installed
PROXY_REQS  := tests/integration/litellm/proxy-requirements.txt
#: Present while `make test` builds the proxy's virtualenv in the background (the proxy test
#: waits for it); the build's output goes to $(PROXY_LOG).
PROXY_BUILDING := $(VENV)/litellm-proxy.building
PROXY_LOG      := $(VENV)/litellm-proxy.log

.PHONY: demo test unit integration lint typecheck bench clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev,litellm]'
	touch $(STAMP)

$(PROXY_STAMP): $(STAMP) $(PROXY_REQS)
	test -x $(PROXY_VENV)/bin/python || $(PYTHON) -m venv $(PROXY_VENV)
	$(PROXY_VENV)/bin/python -m pip install --quiet -r $(PROXY_REQS) -e .
	touch $(PROXY_STAMP)

demo: $(STAMP)
	$(BIN)/tokengov demo

# Every test, after the checks CI would otherwise catch too late (lint, format, types): three
# pytest-xdist workers on the 2 cores (most integration tests wait on a broker, a worker or a
# subprocess rather than compute), each test handed to whichever worker is free (worksteal:
# no test waits behind a long one of its file; each worker has its own session broker), then
# the timing-sensitive demo alone (marker `serial`). Measured on a loaded machine: -n 2
# loadfile 694 s, -n 2 worksteal 566 s, -n 3 worksteal 499 s (README, Development).
# The LiteLLM proxy's virtualenv (~2 min of pip) is built in the background meanwhile; its one
# test waits for it (tests/integration/litellm/test_litellm_proxy.py).
test: $(STAMP)
	@if ! $(MAKE) --no-print-directory -q $(PROXY_STAMP); then \
	  echo "building $(PROXY_VENV) in the background (log: $(PROXY_LOG))"; \
	  touch $(PROXY_BUILDING); \
	  ( $(MAKE) --no-print-directory $(PROXY_STAMP) > $(PROXY_LOG) 2>&1; rm -f $(PROXY_BUILDING) ) & \
	fi
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/python -m pytest -n 3 --dist worksteal -m "not serial"
	$(BIN)/python -m pytest -m serial

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: $(STAMP) $(PROXY_STAMP)
	$(BIN)/python -m pytest tests/integration

# lint-imports: the layers (pyproject.toml [tool.importlinter]; README, "How it fits together").
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/tokengov bench

clean:
	rm -rf $(VENV) .tokengov .pytest_cache

# Debian packages some tests drive, as command:package: chromium (the debt report in a
# headless browser), docker-compose (validates docker-compose.yml offline) and promtool from
# `prometheus` (checks deploy/prometheus's rules and config, and a real /metrics scrape).
# Needs root; CI runs it.
SYSTEM_PACKAGES := chromium:chromium docker-compose:docker-compose promtool:prometheus
system-deps:
	@missing=""; for cp in $(SYSTEM_PACKAGES); do command -v $${cp%%:*} >/dev/null 2>&1 || missing="$$missing $${cp#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
