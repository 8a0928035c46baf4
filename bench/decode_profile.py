"""Where the batch-1 decode step spends its time: kernels per token, device time by kind, graph step time.

    python bench/decode_profile.py --tiny                                   # CPU: try the script
    python bench/decode_profile.py --model gpt2-xl --load-format dummy      # GPU: the issue-4 model

One slot (the engine's SlotRunner) holds a prompt of --prompt-len tokens; the decode step over --max-len
positions is then measured three ways, each attention implementation the model offers in turn (sdpa, eager):
  - `step_ms`: the step run eagerly, host launches included (synchronised, median of --steps);
  - `graph_ms`: the same step replayed as a CUDA graph (GPU only), what the engine runs per token;
  - `kernels`: one eager step under torch.profiler: how many device kernels (CPU: aten ops) it launches, and
    the device time of each kind (matrix products, attention, norms, elementwise, copies, other).
`weights_gb_per_s` is the weight bytes read per graph step over its time, against the device's bandwidth
(the floor of batch-1 decoding). Prints one JSON object (and writes it to --out). No Flask.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from deckchat.ml.models import load_model  # noqa: E402
from deckchat.ml.slots import SlotRunner  # noqa: E402
from engine import device_name, make_prompts  # noqa: E402
from report import emit  # noqa: E402

# Kernel (or aten op) names by kind, first match wins.
KINDS = [
    ("attention", re.compile(r"attention|fmha|flash|softmax|sdpa|bmm|baddbmm", re.I)),
    ("matmul", re.compile(r"gemm|gemv|cutlass|xmma|cublas|addmm|\bmm\b|aten::mm|linear|matmul|splitk", re.I)),
    ("norm", re.compile(r"layer_?norm|rms_?norm", re.I)),
    ("copy", re.compile(r"copy|index|scatter|gather|cat\b|clone|contiguous|fill|zero", re.I)),
    ("elementwise", re.compile(r"elementwise|vectorized|reduce|add|mul|gelu|tanh|pow|where|masked|neg", re.I)),
]
# aten ops that launch no kernel (views and bookkeeping): left out of the CPU count.
VIEWS = re.compile(r"^aten::(view|_unsafe_view|reshape|transpose|t|permute|expand|slice|select|split|alias|"
                   r"unsqueeze|squeeze|as_strided|detach|empty|empty_like|dropout|to|_to_copy|lift_fresh|"
                   r"unbind|narrow|chunk|resolve_conj|resolve_neg|result_type|contiguous|_reshape_alias)$")


def kind_of(name: str) -> str:
    """The kind of a kernel or aten op by its name."""
    return next((kind for kind, pattern in KINDS if pattern.search(name)), "other")


def _kernel_events(prof, cuda: bool) -> list[tuple[str, float]]:
    """(name, microseconds) of each device kernel (GPU), or of each kernel-launching top-level aten op (CPU)."""
    out = []
    for event in prof.events():
        if cuda:
            if event.device_type == torch.autograd.DeviceType.CUDA:
                out.append((event.name, event.device_time_total if hasattr(event, "device_time_total")
                            else event.cuda_time_total))
        elif event.name.startswith("aten::") and not VIEWS.match(event.name):
            parent = event.cpu_parent
            while parent is not None and not parent.name.startswith("aten::"):
                parent = parent.cpu_parent
            if parent is None:  # top-level op: its children are its own implementation
                out.append((event.name, event.cpu_time_total))
    return out


def profile_step(runner: SlotRunner, length: int, cuda: bool) -> dict:
    """Kernels of one eager decode step: count, device time, and both by kind, with the busiest names."""
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        runner._run_step(1, length)
        if cuda:
            torch.cuda.synchronize()
    events = _kernel_events(prof, cuda)
    count, micros, names = Counter(), Counter(), Counter()
    for name, us in events:
        kind = kind_of(name)
        count[kind] += 1
        micros[kind] += us
        names[name[:90]] += us
    total = sum(micros.values())
    return {
        "kernels": len(events),
        "time_ms": round(total / 1000, 3),
        "by_kind": {k: {"kernels": count[k], "ms": round(micros[k] / 1000, 3),
                        "share": round(micros[k] / total, 3) if total else 0.0} for k in sorted(count)},
        "top": [{"name": n, "ms": round(us / 1000, 3)} for n, us in names.most_common(12)],
    }


def timed_steps(runner: SlotRunner, length: int, steps: int, cuda: bool) -> float:
    """Median milliseconds of an eager decode step (launches included)."""
    times = []
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        runner._run_step(1, length)
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def measure(loaded, args, attention: str) -> dict:
    """The three measurements with one attention implementation."""
    model = loaded.model
    model.config._attn_implementation = attention
    cuda = model.device.type == "cuda"
    runner = SlotRunner(model, 1, args.max_len, cuda_graphs=cuda)
    # The engine decodes with eager attention on CPUs; here each implementation runs as asked.
    runner._attention = lambda compiled: __import__("contextlib").nullcontext()
    vocab = min(model.config.vocab_size, len(loaded.tokenizer))
    prompt = make_prompts(1, args.prompt_len, vocab)[0]
    result: dict = {"attention": attention}
    with torch.inference_mode():
        row = _Row(prompt)
        runner.advance(row, int(runner.prefill([row])[0].argmax()))  # also allocates the cache
        for _ in range(3):  # warm-up (allocator, cuBLAS heuristics)
            runner._run_step(1, args.max_len)
        result["step_ms"] = timed_steps(runner, args.max_len, args.steps, cuda)
        result["kernels"] = profile_step(runner, args.max_len, cuda)
        runner.remove(row)
        graph_ms = None
        if cuda:  # the step over all max_len positions, as the engine replays it per token
            runner.capture_graphs([1])
            graph_ms = runner.time_graph(1)
        result["graph_ms"] = graph_ms
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    if graph_ms and graph_ms.get("step_ms"):
        result["weights_gb_per_s"] = round(weights / (graph_ms["step_ms"] / 1000) / 1e9, 1)
    return result


class _Row:
    """A sequence as the slot runner sees it."""

    def __init__(self, prompt_ids: list[int]) -> None:
        from deckchat.ml.decoding import SamplingParams  # noqa: PLC0415

        self.prompt_ids, self.params, self.slot, self.pos, self.last = prompt_ids, SamplingParams(), None, 0, 0


def main() -> None:
    """Load the model, measure each attention implementation, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt2-xl")
    parser.add_argument("--load-format", default="dummy")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--tiny", action="store_true", help="a tiny GPT-2 built here (CPU try-out)")
    parser.add_argument("--prompt-len", type=int, default=400)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--attention", nargs="+", default=["sdpa", "eager"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.tiny:
        from deckchat.ml.tiny import build_tiny_model  # noqa: PLC0415

        folder = build_tiny_model(Path(tempfile.mkdtemp(prefix="deckchat-profile-")) / "gpt2", "gpt2", layers=4)
        args.model, args.load_format = str(folder), "auto"
        args.prompt_len, args.max_len = min(args.prompt_len, 40), min(args.max_len, 64)
    loaded = load_model(args.model, load_format=args.load_format, dtype=args.dtype)
    device = str(loaded.model.device)
    result = {
        "command": "python bench/decode_profile.py " + " ".join(sys.argv[1:]),
        "device": device_name(device),
        "torch": torch.__version__,
        "model": args.model,
        "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
        "activation": getattr(loaded.model.config, "activation_function", None),
        "prompt_len": args.prompt_len,
        "max_len": args.max_len,
        "runs": [measure(loaded, args, a) for a in args.attention],
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
