#!/usr/bin/env bash
# The prepared GPU check: one call of at most 8 minutes on a GPU machine that reaches no
# package registry (its own Python 3.12 + CUDA torch). Before it, here: `make gpu-wheels`.
# With this workplace's device tool:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Elsewhere: any CUDA machine with this project's dependencies installed; skip step 0.
# Writes into $OUT (default benchmarks/results/gpu): gpu.txt, pytest.log, run.log and the
# benchmarks' JSON (bench_*_cuda.json). Steps that fail are reported at the end; the
# script goes on so that one failure does not hide the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
failed=()
step() {  # step NAME SECONDS CMD...: run with a time limit, remember failures
    local name=$1 limit=$2; shift 2
    echo "=== $name (limit ${limit}s) ==="
    local t0=$SECONDS
    timeout "$limit" "$@" || failed+=("$name (exit $?)")
    echo "=== $name: $((SECONDS - t0)) s ==="
}

# 0. the wheels carried in .whl/ (mujoco, gymnasium, hydra, omegaconf, ...)
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, mujoco, gymnasium, hydra; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'mujoco', mujoco.__version__)" | tee -a "$OUT/gpu.txt"

# 1. the device tests with everything on cuda:0 (trainer, generator, evaluator, buffers),
#    including snapshots written on the GPU and read back on the CPU
step tests 150 bash -c "python3 -m pytest -q -p no:cacheprovider --device cuda tests/test_device.py tests/test_data_buffer.py 2>&1 | tee '$OUT/pytest.log'; exit \${PIPESTATUS[0]}"

# 2. the CLIs end to end on the GPU: a tiny dataset, two meta-training iterations with --gpu 0,
#    then evaluate the GPU snapshot on the CPU
step cli 150 bash -c "python3 -m benchmarks.gpu_cli_check 2>&1 | tee '$OUT/run.log'; exit \${PIPESTATUS[0]}"

# 3. the hot paths on the GPU (JSON into benchmarks/results/, copied to $OUT)
step bench_csro_step 90 python3 -m benchmarks.bench_csro_step --device cuda
step bench_fused_adam 30 python3 -m benchmarks.bench_fused_adam --device cuda --rounds 3 --steps 10
step bench_eval 60 python3 -m benchmarks.bench_eval --device cuda --repeats 3
step bench_generation 60 python3 -m benchmarks.bench_generation --device cuda
cp benchmarks/results/*_cuda*.json "$OUT"/ 2>/dev/null

if [ ${#failed[@]} -gt 0 ]; then
    echo "GPU check: FAILED: ${failed[*]}"
    exit 1
fi
echo "GPU check: all steps passed"
