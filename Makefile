# Set-up and the two jobs of the README. Everything lands in $(VENV).
PYTHON ?= python3
VENV ?= .venv
# torch and torchvision as a pair (the tests' reference, deepinv, imports torchvision).
# A CPU-only machine can use TORCH="torch==2.13.0" for the demo alone.
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test bench clean

demo: $(VENV)/.installed
	$(BIN)/lvtino demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-test
	$(BIN)/python scripts/bench_solvers.py

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) $(TORCH) -e '.[test]'
	@# Debian's Chromium renders the HTML report in a test; without it (no root, no apt) that test is skipped
	@command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null 2>&1 || \
		(apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1) || \
		echo "notice: chromium could not be installed; the report's browser test will be skipped"
	touch $@

clean:
	rm -rf $(VENV) lvtino-demo .pytest_cache
