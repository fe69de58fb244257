#!/usr/bin/env bash
# One command for a lent GPU: the GPU tests, then the GPU benchmark, within 7 minutes in all.
#
#   bash benchmarks/gpu_check.sh            (from the repository root, on the GPU machine)
#
# Not yet run on hardware when written: no GPU was lent to the tasks that wrote it. docs/gpu-check.md
# says how to run it with the device tool (carry .whl, timeout_s 480) and what comes back.
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
# What the image lacks (PyAV, demucs, discord.py, ...) no GPU test imports at collection:
# tests/generation/test_gpu_collection.py checks that on the CPU with those packages blocked.
#
# The budget (tests/generation/test_gpu_collection.py checks it): 30 s of set-up, then the two
# `timeout`s below, 420 s at most. The benchmark starts no row its deadline cannot fit, and
# writes its JSON after every row, so even a run cut short brings back every row it finished.
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
# 1. graphs against eager steps (same token history), capture per shape, a failed capture, on the
#    real melody architecture in float16 and bfloat16.
GPU_TESTS="tests/generation/musicgen"
timeout 140 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" $GPU_TESTS \
    2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}
# 2. the attention kernels each mask allows, then the decode loop: melody, fast at batches 1 and 8
#    (graphs captured before the clock, capture time apart), reference at batch 1.
BENCHMARK="--only attention,decode --configs melody --batches 1,8 --reference-batches 1 --deadline-s 200"
timeout 230 python3 -m benchmarks $BENCHMARK --json "$out/gpu-benchmark.json" \
    2>&1 | tee "$out/gpu-benchmark.md"
bench=${PIPESTATUS[0]}
echo "gpu tests exit $tests, benchmark exit $bench"
exit $(( tests != 0 || bench != 0 ))
