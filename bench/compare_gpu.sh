#!/usr/bin/env bash
# GPU run of issue 7 (model comparison): the four classic architectures with dummy (random) weights in float16,
# compared in one run of the shipped investor script (4 questions, one conversation, 1 run per model):
# load time, GPU memory after load and peak, time to first token, tokens/s, total time, failures.
# Sized for well under 5 minutes on one H100/H200. Needs torch, transformers, jinja2 and PyYAML only
# (`python -m deckchat.ml.compare` imports no Flask, SQLAlchemy, llama-index or LangChain).
# `--tiny` runs the same comparison on tiny models of the same architectures on a CPU, to try the script.
# Results: report.json and report.html in $OUT, or in the folder given as argument.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error
TINY=""
if [ "${1:-}" = "--tiny" ]; then TINY=1; shift; fi
DEST="${1:-${OUT:-bench/results/compare-gpu}}"
mkdir -p "$DEST"
PY="${PYTHON:-python3}"

if [ -n "$TINY" ]; then
    MODELS_DIR="$DEST/tiny-models"
    "$PY" - "$MODELS_DIR" <<'PY'
import sys
from deckchat.ml.tiny import build_tiny_model
for arch in ("gpt2", "gpt_neo", "t5", "gptj"):
    build_tiny_model(f"{sys.argv[1]}/{arch}", arch)
PY
    MODELS="$MODELS_DIR/gpt2,$MODELS_DIR/gpt_neo,$MODELS_DIR/t5,$MODELS_DIR/gptj"
    timeout 300 "$PY" -m deckchat.ml.compare --models "$MODELS" --device cpu --runs 1 --max-new-tokens 8 \
        --preset-for t5=greedy --out "$DEST"
    status=$?
    rm -rf "$MODELS_DIR"
    exit $status
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# Greedy for T5: random float16 T5 weights can overflow, and sampling from NaN logits raises.
timeout 210 "$PY" -m deckchat.ml.compare --models gpt2-xl,gpt-neo-2.7b,flan-t5-xl,gpt-j-6b \
    --load-format dummy --dtype float16 --device cuda --runs 1 --max-new-tokens 48 \
    --preset-for flan-t5-xl=greedy --out "$DEST"
status=$?
"$PY" - "$DEST/report.json" <<'PY' || true
import json, sys
report = json.load(open(sys.argv[1]))
print(json.dumps({"device": report["device"].get("name"), "models": [
    {"name": m["name"], "status": m["status"], "error": m["error"], "load_s": m.get("load_s"),
     "memory_after_load_mib": m.get("memory_after_load_mib"), "memory_peak_mib": m.get("memory_peak_mib"),
     "ttft_s_median": m["summary"]["ttft_s_median"], "tokens_per_s_median": m["summary"]["tokens_per_s_median"],
     "total_s": m["total_s"], "failures": m["failures"]} for m in report["models"]]}, indent=2))
PY
exit $status
