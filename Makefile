# forewarn: two commands on a fresh clone.
#   make demo   installs into .venv and runs the demo on the embedded defaults
#   make test   installs what is missing (Python packages, Debian packages) and runs the suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: python3-venv (Debian's python3 cannot make the venv without it) and what the
# integration tests start for real (Mosquitto, VictoriaMetrics, PostgreSQL, Chromium for the
# console's browser test)
DEBIAN_PACKAGES := python3-venv mosquitto victoria-metrics postgresql chromium
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache

.PHONY: demo test lint typecheck importcheck unit venv system-packages clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "make: $(PYTHON) cannot make a \
	venv; on Debian: apt-get install python3-venv (make test installs it)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# Sparkplug B payloads (core/mapping/sparkplug.py): pysparkplug pins paho-mqtt<2, which
	# aiomqtt cannot use; only its protobuf classes are used, so it goes in without its deps
	$(BIN)/pip install --quiet --no-deps 'pysparkplug==0.6.1'
	touch $@

venv: $(BIN)/.installed

# apt-get only for what is missing; needs root (CI and these machines run as root)
system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

demo: venv
	$(BIN)/forewarn demo

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

importcheck: venv
	$(BIN)/lint-imports

# system packages first: python3-venv is one
test: system-packages venv lint typecheck importcheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .numba-cache .pytest_cache .mypy_cache .ruff_cache
