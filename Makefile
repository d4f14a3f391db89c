# Two entry points, both safe to run twice on a fresh machine:
#   make demo   -- set up, fetch the VGG19 weights, stylise the bundled sample with the Beam job
#   make test   -- set up, fetch the weights, run lint and the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt setup.py | cksum | cut -d' ' -f1)
DEMO_OUT ?= out/demo

.PHONY: demo test lint setup weights browser bench clean

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

weights: setup
	$(PY) -m nst_core.weights fetch

demo: weights
	$(VENV)/bin/nst-pipeline --manifest samples/manifest.csv --output $(DEMO_OUT)
	@echo "open $(DEMO_OUT)/report.html"

lint: setup
	$(VENV)/bin/ruff check .

# The report's browser test needs Debian's chromium (the machines run as root with the Debian archive).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: weights lint browser
	$(PY) -m pytest -q -m "not network" tests
	$(PY) -m pytest -q -m network tests

clean:
	rm -rf $(VENV) out .pytest_cache
