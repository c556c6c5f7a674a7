# The two commands: `make demo` and `make test`. Both create the virtual
# environment on first use, so a fresh clone needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow bench golden reproduce gpu-wheels check-install clean

venv: $(STAMP)

# torch is installed first and pinned: a bare `torch` requirement would pull a
# CUDA build of several GB; 2.13.0 is the CPU build this project is tested on.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m rlkit.demo

# the import layers (pyproject.toml [tool.importlinter]), undefined names, then the fast suite
test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check --quiet --select F,E9 rlkit rand_param_envs tests benchmarks *.py
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

# The paper's comparison for one env and scale (configs/reproduce/ENV-SCALE.yaml);
# resumable: rerun the same command after a kill or when the budget ran out (exit 3).
#   make reproduce [REPRODUCE_ENV=point-robot] [SCALE=cpu|paper] [BUDGET=50m]
REPRODUCE_ENV ?= point-robot
SCALE ?= cpu
BUDGET ?=
reproduce: $(STAMP)
	$(PY) -m rlkit.reproduce $(REPRODUCE_ENV) --scale $(SCALE) $(if $(BUDGET),--budget $(BUDGET))

# Wheels for the GPU check (benchmarks/gpu_check.sh), downloaded here into .whl/.
gpu-wheels: $(STAMP)
	PY=$(PY) bash benchmarks/gpu_wheels.sh

# Deliberately rewrite the golden regression tables (tests/golden/): only when a
# change is meant to alter the numbers; say why in the commit message.
golden: $(STAMP)
	$(PY) -m tests.golden.golden_run --write

# Do both install paths (environment.yaml: CPU torch; environment-cuda.yaml: CUDA torch) still resolve?
check-install:
	PY=$(PYTHON) bash benchmarks/check_install.sh

clean:
	rm -rf $(VENV) .pytest_cache
