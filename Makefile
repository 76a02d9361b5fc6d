# Set-up and the two entry points the README starts with.
# torch==2.13.0 is installed first: it is a CPU wheel, and pyproject's range then adds nothing.
# --no-compile: Python byte-compiles only the modules it imports, when it first imports them
# (compiling all of torch at install took 2 of a cold demo's 4.7 minutes). That needs
# bytecode to be written: with PYTHONDONTWRITEBYTECODE set, every process would compile
# torch and transformers again (importing prismsim.accuracy: 22 s, against 7 s).
unexport PYTHONDONTWRITEBYTECODE
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --no-compile
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: demo test lint bench clean testbed-deps

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) -e ".[dev]"
	touch $(DEV_STAMP)

demo: $(STAMP)
	$(VENV)/bin/prismsim sweep scenarios/vit_200mbps.yaml

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check prismsim tests bench scripts
	$(VENV)/bin/prismsim assets fetch
	$(PY) -m pytest -q

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check prismsim tests bench scripts

bench: $(DEV_STAMP)
	$(PY) bench/numerics.py
	$(PY) bench/flops.py
	$(PY) bench/sim_speed.py
	$(PY) bench/sweep.py
	$(PY) bench/serve_capacity.py
	$(PY) bench/serve_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# The real-network testbed (prismsim validate) needs root, iproute2's ip/tc and iptables;
# ethtool lets the router coalesce packets. Debian packages; the tests skip without them.
testbed-deps:
	command -v iptables >/dev/null && command -v ethtool >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables ethtool iproute2; } || \
		echo "testbed packages not installed (needs root and Debian's apt): the real-network tests will skip"

