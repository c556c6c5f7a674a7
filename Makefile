# The two commands: `make demo` and `make test`. Both create the virtual
# environment on first use, so a fresh clone needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow test-portable bench golden reproduce gpu-wheels check-install clean

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

test-slow: $(STAMP) test-portable
	$(PY) -m pytest -q -m slow

# The numbers that must not depend on the CPU (the float64 golden tables, one CSRO step,
# fused against plain Adam), rerun with the kernels of other x86-64 hosts: torch's
# pre-AVX2 and AVX2 code paths, MKL limited to SSE4.2, and MKL's AVX2 code path
# (MKL_CBWR; on some builds MKL_ENABLE_INSTRUCTIONS changes nothing, MKL_CBWR does).
PORTABLE_KERNELS ?= ATEN_CPU_CAPABILITY=default ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=SSE4_2 MKL_CBWR=AVX2
test-portable: $(STAMP)
	@for kernels in $(PORTABLE_KERNELS); do \
		echo "== $$kernels"; \
		env $$kernels $(PY) -m pytest -q -p no:cacheprovider tests/test_golden.py tests/test_csro_step.py || exit 1; \
	done

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
