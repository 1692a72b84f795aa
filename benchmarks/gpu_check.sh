#!/usr/bin/env bash
# GPU check of issue 15, on one CUDA GPU (an H200 with 16 cores: under 8 minutes).
#
#   benchmarks/gpu_check.sh --fetch-wheels   here, once: wheels the GPU image lacks -> .whl/
#   benchmarks/gpu_check.sh                  on the GPU machine (device tool: carry .whl)
#   benchmarks/gpu_check.sh --cpu-smoke      here: every Python step at toy sizes on the CPU
#
# On the GPU machine it (1) runs the CUDA tests of tests/test_compute.py (CPU and CUDA
# agree on states, CKA and training), (2) runs benchmarks/gpu_check.py: placement parity,
# LoRA training tokens/s, MFU and peak memory on random:llama-2-7b (bf16, r=8 on q/v,
# batch 16 x 512) against transformers Trainer + PEFT and against the --dry-run memory
# estimate, extraction tokens/s against a bare forward, and (3) runs the demo-smoke
# profile end to end on CUDA. Everything lands in $OUT (results.json, RESULTS-gpu.md and
# one log per step; copy RESULTS-gpu.md to benchmarks/) and a summary is printed.
# The image has torch, transformers, peft, accelerate, safetensors, scikit-learn, scipy,
# matplotlib, jinja2, rich, typer, tqdm, pyyaml and sacrebleu; pydantic (every mossa
# config), textstat and rouge-score (the demo's evaluation) travel as wheels.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-gpu}
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"

if [ "$MODE" = "--fetch-wheels" ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    mkdir -p .whl
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
        manylinux2014_x86_64 manylinux1_x86_64; do platforms+=(--platform "$p"); done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" -d .whl \
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
        typing-inspection==0.4.5 typing-extensions textstat==0.7.13 pyphen==0.18.1 \
        nltk==3.10.4 defusedxml || exit 1
    python3 -m pip wheel -q --no-deps -w .whl rouge-score==0.1.2 || exit 1  # sdist only
    ls .whl
    exit 0
fi

if [ "$MODE" = "--cpu-smoke" ]; then
    PY=${PYTHON:-.venv/bin/python}
    OMP_NUM_THREADS=1 "$PY" -m benchmarks.gpu_check --cpu-smoke --out "$OUT" \
        >"$OUT/gpu_check.log" 2>&1
    rc=$?
    cat "$OUT/RESULTS-gpu.md" 2>/dev/null || tail -20 "$OUT/gpu_check.log"
    exit $rc
fi

PY=${PYTHON:-python3}
if [ -d .whl ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export MOSSA_CACHE_DIR=/tmp/mossa-cache TOKENIZERS_PARALLELISM=false
"$PY" -c 'import pydantic, torch; assert torch.cuda.is_available(), "no CUDA"' || {
    echo "gpu_check: needs CUDA and pydantic (run --fetch-wheels here, carry .whl)"
    exit 2
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/summary.txt"

timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_compute.py -k cuda \
    >"$OUT/pytest-cuda.log" 2>&1
echo "cuda tests: exit $? ($(tail -1 "$OUT/pytest-cuda.log"))" >>"$OUT/summary.txt"

timeout 330 "$PY" -m benchmarks.gpu_check --out "$OUT" >"$OUT/gpu_check.log" 2>&1
echo "gpu_check.py: exit $?" >>"$OUT/summary.txt"

if "$PY" -c 'import textstat, rouge_score' 2>/dev/null; then
    timeout 120 "$PY" -m mossa.cli run --profile demo-smoke --out /tmp/demo-cuda \
        --set compute.device=cuda >"$OUT/demo.log" 2>&1
    echo "demo-smoke on CUDA: exit $?" >>"$OUT/summary.txt"
else
    echo "demo-smoke on CUDA: skipped (textstat/rouge-score missing: carry .whl)" \
        >>"$OUT/summary.txt"
fi

cat "$OUT/summary.txt"
cat "$OUT/RESULTS-gpu.md" 2>/dev/null || tail -30 "$OUT/gpu_check.log"
