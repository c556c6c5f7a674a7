#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the wheels that the GPU machine lacks, into .whl/.
# That machine has Python 3.12 with CUDA torch, numpy, pandas, matplotlib, tensorboard,
# tqdm and pytest, but no mujoco, gymnasium or hydra; it reaches no package registry.
# Versions are the ones installed in this project's .venv, so both machines run the same code.
#   make gpu-wheels        (then: see benchmarks/gpu_check.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=.whl
mkdir -p "$DEST"
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64
           --platform any)
pkgs=(mujoco gymnasium farama-notifications hydra-core omegaconf glfw pyopengl)
for extra in mujoco-core mujoco-studio; do  # mujoco >= 4 ships its engine as separate wheels
    if "$PY" -c "import importlib.metadata as m; m.version('$extra')" 2>/dev/null; then pkgs+=("$extra"); fi
done
for p in "${pkgs[@]}"; do
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d "$DEST" "$p==$(version "$p")"
done
# antlr4-python3-runtime (hydra's parser) is published as a source archive only: build its pure-Python wheel here
"$PY" -m pip wheel --quiet --no-deps -w "$DEST" "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
ls -la "$DEST"
du -sh "$DEST"
