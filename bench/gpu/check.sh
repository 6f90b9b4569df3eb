#!/usr/bin/env bash
# The GPU checks in one call on the GPU machine (Python 3.12, torch with CUDA, no registry).
#
# Before: the wheels of bench/gpu/wheels.txt installed into /tmp/site, e.g. from the repo root
#   ../shared/gpu/pack-wheels.sh $(grep -v '^#' bench/gpu/wheels.txt)   # here: .devicewheels/1..N
# then, on the GPU machine, one call per chunk k (carry .devicewheels/k) copying its part into
# /tmp/dw, and in the last one: cat /tmp/dw/part* | tar -x -C /tmp/dw/w and
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/dw/w/*.whl
#
# Then:   bash bench/gpu/check.sh        (writes its tables and logs under $OUT)
# It stops at the first check that cannot run (no CUDA provider) and prints what it measured.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"

python3 - <<'PY' 2>&1 | tee "$out/device.txt"
import onnxruntime as ort
import torch

print("onnxruntime", ort.__version__, ort.get_available_providers())
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
assert "CUDAExecutionProvider" in ort.get_available_providers(), "no CUDA provider"
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

# the bundled models on CUDA: every one ready, CUDA vs CPU, fused vs step by step
timeout 300 python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | tail -25 \
    | tee "$out/pytest-gpu.txt"

# torch eager fp32 / fp16 / compile vs the service runtime (and its fused sampler) vs HTTP
timeout 300 python3 -m bench.generation --device cuda --repeats 10 2>"$out/generation.log" \
    | tee "$out/generation.md"

# the k-NN metrics at 50k x 50k, d=64 and d=2048, on this machine's CPUs (numpy, no prdc here)
timeout 240 python3 -m bench.diagnostics --large --no-prdc 2>&1 | tee "$out/diagnostics.md"

# a score model's sampler on CUDA: numpy steps vs step graphs (state on the GPU) vs fused graph
timeout 120 python3 -m bench.score_sampler --device cuda --sizes 2500 10000 2>"$out/score.log" \
    | tee "$out/score.md"
timeout 120 python3 -m bench.score_sampler --device cuda --model digits-edm --sizes 256 4096 \
    2>>"$out/score.log" | tee -a "$out/score.md"
