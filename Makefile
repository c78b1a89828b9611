# Set-up and the two jobs of the README. Everything lands in $(VENV).
PYTHON ?= python3
VENV ?= .venv
# torch and torchvision as a pair (the tests' reference, deepinv, imports torchvision).
# A CPU-only machine can use TORCH="torch==2.13.0" for the demo alone.
TORCH ?= torch==2.14.1 torchvision==0.29.1
# A package index for torch alone, e.g. PyTorch's CPU wheels: TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test bench real-size clean

demo: $(VENV)/.installed
	$(BIN)/lvtino demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-test
	$(BIN)/python scripts/bench_solvers.py

# the generative prior at real size through the real loader on this machine (random weights; ~8 GB of folders in a
# temporary folder, ~10.1 GiB of memory at most at once (measured), minutes on a 2-core CPU): its last line is one
# JSON object
real-size: $(VENV)/.installed
	$(BIN)/python scripts/real_size.py

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH) $(TORCH_FROM)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) $(TORCH) $(TORCH_FROM)
	$(PIP) -e '.[test]'
	@# the original Wan code, for the equivalence tests only: without its dependencies (it pins a CUDA-only
	@# attention package); the tests load two of its files and never import the package
	$(PIP) --no-deps wan22==2.2.11
	touch $@

clean:
	rm -rf $(VENV) lvtino-demo .pytest_cache
