#!/usr/bin/env bash
# Run THERE, on the offline GPU machine (../shared/GPU.md), from the repository root:
#   bash benchmarks/gpu_check.sh            (prepared here by benchmarks/gpu_wheels.sh)
# Installs what the machine lacks from .whl/, builds nvdiffrast, runs tests/gpu and the GPU
# benchmarks, and writes everything as JSON/PNG/logs under $OUT (default: gpu_out/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
PY="${PY:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-16}" PYTHONDONTWRITEBYTECODE=0
start=$(date +%s)
{
  echo "== install"
  $PY -m pip install -q --no-index --find-links .whl --no-deps .whl/*.whl
  $PY -m pip install -q --no-index --no-deps --no-build-isolation -e .
  $PY - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
PY
  $PY -m polydiff.cli info
} > "$OUT/install.log" 2>&1
echo "install: rc $? ($(( $(date +%s) - start )) s)"

# The GPU suite: every app's demo on CUDA, one training step of each config, CUDA vs CPU
# numerics, the two rasterizer backends against each other.
$PY -m pytest -m gpu tests -q -rs --junitxml="$OUT/gpu_tests.xml" > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests: rc $? ($(tail -1 "$OUT/gpu_tests.log"))"

# GPU benchmarks (their JSON + PNG go to $OUT, not over the CPU results in the repo)
for bench in ${GPU_BENCHMARKS:-raster_speed apps_throughput mesh_fusion backbone_samplers}; do
  if [ -f "benchmarks/$bench.py" ]; then
    POLYDIFF_BENCH_RESULTS="$OUT" timeout 300 $PY -m benchmarks.run "$bench" --device cuda \
      > "$OUT/bench_$bench.log" 2>&1
    echo "benchmark $bench: rc $?"
  fi
done
$PY - "$OUT" <<'PY'
import json, sys, torch, platform
out = sys.argv[1]
info = {"card": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version()}
json.dump(info, open(f"{out}/gpu_machine.json", "w"), indent=2)
print(info)
PY
echo "total $(( $(date +%s) - start )) s; results in $OUT"
