#!/usr/bin/env bash
# Run THERE, on the offline GPU machine (../shared/GPU.md), from the repository root:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu_inputs"], timeout_s=580)
# prepared HERE by benchmarks/gpu_wheels.sh (.whl/) and
#   python -m benchmarks.mesh_gpu_speed --make-table   (.gpu_inputs/: the prompts' embeddings)
# One call does everything GPU-only, in about 8 minutes:
#   1. installs what the machine lacks from .whl/;
#   2. starts the GPU trainings in the background, each `train --time-budget` seconds
#      (GPU_TRAIN: "app:config ...", GPU_TRAIN_BUDGET: seconds; GPU_TRAIN="" for none);
#   3. meanwhile runs every gpu-marked test and the GPU benchmarks (timings taken while the
#      trainings share the GPU: upper bounds);
#   4. packs what comes back into at most 8 files under $OUT (default gpu_out/):
#      results.tar.gz (logs, junit XML, benchmark JSON/PNG) and train_<config>.tar per
#      training (the exported unet/, scheduler/ and polydiff.json; no optimizer state).
# TRAIN_DEVICE / BENCH_DEVICE (default cuda) let the script be rehearsed on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
WORK="$(mktemp -d)"
mkdir -p "$OUT"
PY="${PY:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export MAX_JOBS="${MAX_JOBS:-16}" PYTHONUNBUFFERED=1
TRAIN_DEVICE="${TRAIN_DEVICE:-cuda}"
BENCH_DEVICE="${BENCH_DEVICE:-cuda}"
# session 4 trained mri gpu128 (bundled) and mono gpu96 (measured); the wide WDNO failed on a
# data bug since fixed, so the next call trains it and its epsilon twin for longer
GPU_TRAIN="${GPU_TRAIN-pde:configs/pde/burgers_gpu_wide.yaml pde:configs/pde/burgers_gpu_wide_eps.yaml}"
BUDGET="${GPU_TRAIN_BUDGET:-330}"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

{
  if [ -d .whl ]; then
    $PY -m pip install -q --no-index --find-links .whl --no-deps .whl/*.whl
    $PY -m pip install -q --no-index --no-deps --no-build-isolation -e .
  fi
  $PY - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
PY
  $PY -m polydiff.cli info
} > "$WORK/install.log" 2>&1
stamp "install: rc $?"

trainings=()
for job in $GPU_TRAIN; do
  app="${job%%:*}"; config="${job#*:}"; name="$(basename "$config" .yaml)"
  OMP_NUM_THREADS=4 timeout $(( BUDGET + 300 )) $PY -m polydiff.cli "$app" train \
    --config "$config" --device "$TRAIN_DEVICE" --time-budget "$BUDGET" -o "runs/gpu/$name" \
    > "$WORK/train_$name.log" 2>&1 &
  trainings+=("$!:$name")
  stamp "training $name started"
done

# The GPU suite: every app's demo on CUDA, one training step of each config, CUDA vs CPU
# numerics, the two rasterizer backends against each other.
timeout 300 $PY -m pytest -m gpu tests -v -rs -p no:cacheprovider \
  --junitxml="$WORK/gpu_tests.xml" > "$WORK/gpu_tests.log" 2>&1 &
tests=$!

# GPU benchmarks (their JSON + PNG go to $WORK, not over the CPU results in the repo)
# each gets up to 150 s, and none starts after BENCH_DEADLINE seconds from the start
for bench in ${GPU_BENCHMARKS:-mesh_gpu_speed raster_speed backbone_samplers apps_throughput mesh_fusion}; do
  left=$(( ${BENCH_DEADLINE:-480} - $(date +%s) + start ))
  if [ -f "benchmarks/$bench.py" ] && [ "$left" -gt 20 ]; then
    POLYDIFF_BENCH_RESULTS="$WORK" timeout $(( left < 150 ? left : 150 )) $PY -m benchmarks.run \
      "$bench" --device "$BENCH_DEVICE" > "$WORK/bench_$bench.log" 2>&1
    stamp "benchmark $bench: rc $?"
  fi
done

wait "$tests"
stamp "gpu tests: rc $? ($(tail -1 "$WORK/gpu_tests.log"))"
for entry in "${trainings[@]}"; do
  pid="${entry%%:*}"; name="${entry#*:}"
  wait "$pid"
  rc=$?
  stamp "training $name: rc $rc ($(tr '\r' '\n' < "$WORK/train_$name.log" | grep -v '^\s*$' | tail -1))"
  if [ -f "runs/gpu/$name/polydiff.json" ]; then
    tar cf "$OUT/train_$name.tar" -C "runs/gpu/$name" unet scheduler polydiff.json
  fi
done

$PY - "$WORK" <<'PY'
import json, platform, sys
import torch
info = {"card": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "python": platform.python_version()}
json.dump(info, open(f"{sys.argv[1]}/gpu_machine.json", "w"), indent=2)
print(info)
PY
tar czf "$OUT/results.tar.gz" -C "$WORK" .
rm -rf "$WORK"
stamp "done; results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
