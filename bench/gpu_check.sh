#!/usr/bin/env bash
# GPU check of issue 4 (generation engine), sized to finish in under 6 minutes on one H100/H200:
#   1. device memory after load of the four classic models (dummy weights, float16);
#   2. gpt2-xl, 16 concurrent requests of 400 prompt + 100 new tokens, engine against serial generate;
#   3. the same for flan-t5-xl (padded waves) and gpt-j-6b (slots).
# The slot engines compile their batch-1 decode step (torch.compile) within a 20 s budget for more sizes.
# `--only-gpt2xl` runs one short step instead (under 150 s on an H100): gpt2-xl batch 1 and 16 concurrent
# requests with the decode step compiled (torch.compile, then CUDA graphs), after batch 1 uncompiled in the
# same process for comparison.
# `--profile` runs bench/decode_profile.py on gpt2-xl instead (about a minute on an H100): kernels per token
# and device time by kind of the batch-1 decode step, with sdpa and eager attention, and the graph step time.
# Needs torch and transformers only. `--tiny` runs the same steps on tiny models on a CPU, to try the script.
# Results: one JSON per step and engine-gpu.json (all of them) in $OUT, or in the folder given as argument.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
TINY="" ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tiny) TINY=1; shift ;;
        --only-gpt2xl) ONLY=gpt2xl; shift ;;
        --profile) ONLY=profile; shift ;;
        *) break ;;
    esac
done
DEST="${1:-${OUT:-bench/results/gpu-check}}"
mkdir -p "$DEST"
PY="${PYTHON:-python3}"

step() {  # step NAME SECONDS ARGS...: one benchmark process with its own time limit, never fatal
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$PY" bench/engine.py "$@" --out "$DEST/$name.json" || echo "!! $name failed ($?)"
}

if [ "$ONLY" = profile ]; then
    if [ -n "$TINY" ]; then
        timeout 120 "$PY" bench/decode_profile.py --tiny --out "$DEST/decode-profile.json" || echo "!! profile failed"
    else
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
        timeout 240 "$PY" bench/decode_profile.py --model gpt2-xl --load-format dummy --dtype float16 \
            --out "$DEST/decode-profile.json" || echo "!! profile failed ($?)"
    fi
elif [ -n "$ONLY" ]; then
    if [ -n "$TINY" ]; then
        step gpt2-xl-compiled 300 --tiny --tiny-arch gpt2 --concurrency 16 --serial-requests 2 \
            --compile on --also-eager
    else
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
        step gpt2-xl-compiled 150 --model gpt2-xl --load-format dummy --dtype float16 --concurrency 16 \
            --serial-requests 2 --compile on --compile-budget 45 --also-eager
    fi
elif [ -n "$TINY" ]; then
    step models-info 120 --tiny --info gpt2 gpt_neo t5 gptj
    step gpt2-xl 120 --tiny --tiny-arch gpt2 --concurrency 16 --serial-requests 4
    step flan-t5-xl 120 --tiny --tiny-arch t5 --concurrency 16 --serial-requests 4 --preset greedy
    step gpt-j-6b 120 --tiny --tiny-arch gptj --concurrency 16 --serial-requests 4
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    step models-info 100 --info gpt2-xl gpt-neo-2.7b flan-t5-xl gpt-j-6b --load-format dummy --dtype float16
    step gpt2-xl 150 --model gpt2-xl --load-format dummy --dtype float16 --concurrency 16 --serial-requests 4 \
        --compile-budget 20
    # Greedy for T5: random float16 T5 weights can overflow, and sampling from NaN logits raises.
    step flan-t5-xl 80 --model flan-t5-xl --load-format dummy --dtype float16 --concurrency 16 \
        --serial-requests 4 --preset greedy
    step gpt-j-6b 150 --model gpt-j-6b --load-format dummy --dtype float16 --concurrency 16 --serial-requests 4 \
        --compile-budget 20
fi

"$PY" - "$DEST" <<'PY'
import json, sys
from pathlib import Path
dest = Path(sys.argv[1])
parts = {p.stem: json.loads(p.read_text()) for p in sorted(dest.glob("*.json")) if p.name != "engine-gpu.json"}
device = next((v.get("device") for v in parts.values() if v.get("device")), None)
summary = {k: {f: v.get(f) for f in ("mode", "cuda_graphs", "compiled", "compile_s", "compile_error",
                                      "aggregate_tokens_per_s", "speedup", "batch1_ms_per_token",
                                      "ttft_p50_ms", "ttft_p95_ms", "graph_ms")}
           for k, v in parts.items() if v.get("benchmark") == "engine"}
(dest / "engine-gpu.json").write_text(json.dumps({"device": device, "summary": summary, **parts}, indent=2) + "\n")
print(json.dumps({"device": device, "summary": summary}, indent=2))
PY
