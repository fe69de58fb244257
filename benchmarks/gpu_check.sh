#!/usr/bin/env bash
# One command for a lent GPU: the GPU tests, then the GPU benchmark, in under 8 minutes.
#
#   bash benchmarks/gpu_check.sh            (from the repository root, on the GPU machine)
#
# Not yet run on hardware: no GPU was lent to the task that wrote it (say so when you first run it).
#
# It installs nothing from the internet: the GPU machine has no network. What it expects there:
# - python3 with CUDA torch (the device image has torch 2.11 + CUDA 13; the project needs >= 2.4),
#   numpy, scipy, tokenizers, huggingface-hub, safetensors, pytest: all in that image;
# - transformers >= 5.18 (the image has 5.17, which silently drops the melody conditioning): carry
#   its wheel in .whl/, fetched on a machine with internet from the repository root:
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl transformers==5.24.0
#   and name `.whl` in the device tool's `carry`. Any other wheel in .whl/ is installed too.
# Output: $OUT (or benchmarks/gpu-out) gets gpu-tests.log, gpu-benchmark.md (the tables for
# benchmarks/RESULTS.md, with the device name and date in their heading) and gpu-benchmark.json.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/gpu-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/restyle-site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/restyle-site:${PWD}"
else
    export PYTHONPATH="${PWD}"
fi
python3 - <<'PY' || exit 1
import torch, transformers
from packaging.version import Version
print("torch", torch.__version__, "transformers", transformers.__version__)
print("devices:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
assert torch.cuda.is_available(), "no CUDA device"
assert Version(transformers.__version__) >= Version("5.18"), "transformers < 5.18 drops the conditioning"
PY
# 1. graphs against eager steps and against generate, real melody architecture, fp16 and bf16.
GPU_TESTS="tests/generation/musicgen"
timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" $GPU_TESTS \
    2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}
# 2. the GPU benchmark: melody and melody-large, batches 1, 4 and 8 with guidance.
timeout 330 python3 -m benchmarks --only decode --batches 1,4,8 --json "$out/gpu-benchmark.json" \
    2>&1 | tee "$out/gpu-benchmark.md"
bench=${PIPESTATUS[0]}
echo "gpu tests exit $tests, benchmark exit $bench"
exit $(( tests != 0 || bench != 0 ))
