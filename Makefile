# forewarn: two commands on a fresh clone.
#   make demo   installs into .venv and runs the demo on the embedded defaults
#   make test   installs what is missing (Python packages, Debian packages) and runs the suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the integration tests start for real (Mosquitto, VictoriaMetrics, PostgreSQL,
# Chromium for the console's browser test)
DEBIAN_PACKAGES := mosquitto victoria-metrics postgresql chromium
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache

.PHONY: demo test lint typecheck importcheck unit venv system-packages clean

$(BIN)/.installed: pyproject.toml
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

test: venv system-packages lint typecheck importcheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .numba-cache .pytest_cache .mypy_cache .ruff_cache
