# Set-up and the two entry points the README starts with.
# torch==2.13.0 is installed first: it is a CPU wheel, and pyproject's range then adds nothing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean testbed-deps

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/prismsim sweep scenarios/vit_200mbps.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check prismsim tests bench scripts
	$(VENV)/bin/prismsim assets fetch
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check prismsim tests bench scripts

bench: $(STAMP)
	$(PY) bench/numerics.py
	$(PY) bench/flops.py
	$(PY) bench/sim_speed.py
	$(PY) bench/sweep.py
	$(PY) bench/serve_capacity.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# The real-network testbed (prismsim validate) needs root, iproute2's ip/tc and iptables;
# ethtool lets the router coalesce packets. Debian packages; the tests skip without them.
testbed-deps:
	command -v iptables >/dev/null && command -v ethtool >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables ethtool iproute2; } || \
		echo "testbed packages not installed (needs root and Debian's apt): the real-network tests will skip"

