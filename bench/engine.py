"""Benchmark: N concurrent requests through the engine against serial `generate`, in the same run.

    python bench/engine.py --tiny                       # CPU: tiny GPT-2, 8 concurrent requests
    python bench/engine.py --model gpt2-xl --load-format dummy --dtype float16 --concurrency 16
    python bench/engine.py --info gpt2-xl gpt-neo-2.7b --load-format dummy   # memory after load
    python bench/engine.py --model gpt2-xl --load-format dummy --compile on --also-eager   # compiled vs not

Prints one JSON object (and writes it to --out). Needs torch and transformers only: no Flask.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import transformers  # noqa: E402

from deckchat.ml.engine import GenerationRequest  # noqa: E402
from deckchat.ml.local import LocalEngine  # noqa: E402
from deckchat.ml.models import get_preset, load_model  # noqa: E402
from deckchat.ml.graphs import COMPILE_MODES  # noqa: E402
from report import emit  # noqa: E402


def device_name(device: str) -> str:
    """A human name for the device the numbers come from."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def make_prompts(n: int, length: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """Random prompts of exact token length, avoiding the low ids that tiny tokenizers keep for specials."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(16, vocab, (length,), generator=gen).tolist() for _ in range(n)]


def serial_baseline(loaded, prompts: list[list[int]], new_tokens: int, preset: str) -> dict:
    """The simple approach: one `generate` call per request, one request at a time."""
    model, kwargs = loaded.model, get_preset(preset).generate_kwargs()
    kwargs.update(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=loaded.tokenizer.pad_token_id
    )
    device = model.device

    def one(ids: list[int]) -> int:
        x = torch.tensor([ids], device=device)
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), **kwargs)
        return out.shape[1] - (x.shape[1] if loaded.kind == "causal" else 1)

    with torch.inference_mode():
        one(prompts[0][:16])  # warm-up: kernels, allocator
        sync(device)
        start, tokens = time.perf_counter(), 0
        for ids in prompts:
            tokens += one(ids)
        sync(device)
        wall = time.perf_counter() - start
    return {
        "requests": len(prompts),
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "ms_per_token": round(1000 * wall / tokens, 3),
    }


def sync(device) -> None:
    """Wait for queued GPU work so that wall-clock times are honest."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def run_engine(engine: LocalEngine, prompts: list[list[int]], new_tokens: int, preset: str) -> dict:
    """Submit every prompt at the same moment from its own thread and read each stream to the end."""
    results: list = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts) + 1)

    def client(i: int) -> None:
        barrier.wait()
        stream = engine.submit(
            GenerationRequest(
                prompt_ids=prompts[i], preset=preset, max_new_tokens=new_tokens, ignore_eos=True, stop=[]
            )
        )
        for _ in stream:
            pass
        results[i] = (stream.result(), time.perf_counter())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = max(end for _, end in results) - start
    tokens = sum(r.completion_tokens for r, _ in results)
    ttfts = sorted(r.ttft_s * 1000 for r, _ in results)
    return {
        "requests": len(prompts),
        "tokens": tokens,
        "wall_s": round(wall, 3),
        "aggregate_tokens_per_s": round(tokens / wall, 2),
        "ttft_p50_ms": round(statistics.median(ttfts), 1),
        "ttft_p95_ms": round(ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))], 1),
    }


def batch1(engine: LocalEngine, prompt: list[int], new_tokens: int, preset: str) -> dict:
    """One request alone: decode milliseconds per token after the first."""
    r = engine.generate(
        GenerationRequest(
            prompt_ids=prompt, preset=preset, max_new_tokens=new_tokens, ignore_eos=True, stop=[]
        )
    )
    per_token = (r.total_s - r.ttft_s) / max(1, r.completion_tokens - 1)
    return {
        "ms_per_token": round(per_token * 1000, 3),
        "ttft_ms": round(r.ttft_s * 1000, 1),
        "tokens": r.completion_tokens,
    }


def progress(message: str) -> None:
    """One line on stderr, so that a run cut off by its time limit still shows how far it got."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_engine(loaded, args, max_len: int, compile: str) -> tuple[LocalEngine, float]:
    """An engine over the loaded model, ready, and the seconds its set-up took (checks, compile, graphs)."""
    started = time.perf_counter()
    engine = LocalEngine(
        loaded,
        max_batch=args.max_batch or args.concurrency,
        max_queue=4 * args.concurrency,
        batching=args.batching,
        max_len=max_len,
        cuda_graphs=not args.no_graphs,
        compile={"on": True, "off": False}.get(compile, compile),
        compile_mode=args.compile_mode,
        compile_budget_s=args.compile_budget,
    )
    engine.ready.wait()
    setup_s = time.perf_counter() - started
    if not engine.alive():
        raise SystemExit(f"engine failed to start: {engine.stats()}")
    stats = engine.stats()
    progress(
        f"engine ready in {setup_s:.1f} s: mode {stats['mode']}, graphs {stats['cuda_graphs']}, "
        f"compiled {stats['compiled']} in {stats['compile_s']} s {stats['compile_error']}".rstrip()
    )
    return engine, setup_s


def graph_times(engine: LocalEngine) -> dict:
    """Device time of the smallest and largest captured decode graphs, without the host work per token."""
    runner = engine._slots  # the engine thread has stopped: the runner is free to use here
    sizes = runner.graph_sizes if runner else []
    return {str(b): runner.time_graph(b) for b in sorted({sizes[0], sizes[-1]})} if sizes else {}


def eager_batch1(loaded, args, max_len: int, prompt: list[int]) -> dict:
    """Batch-1 decoding with compilation off, in the same process, for a like-for-like comparison."""
    engine, setup_s = start_engine(loaded, args, max_len, "off")
    batch1(engine, prompt[:32], 8, args.preset)  # warm-up
    single = batch1(engine, prompt, args.new_tokens, args.preset)
    engine.close()
    result = {**single, "engine_setup_s": round(setup_s, 2), "graph_ms": graph_times(engine)}
    progress(f"uncompiled batch 1: {single['ms_per_token']} ms per token; graphs {result['graph_ms']}")
    del engine
    gc.collect()  # the engine's graphs and cache go before the compiled engine allocates its own
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def bench(args) -> dict:
    """Load, run the serial baseline and the engine on the same prompts, and compare."""
    if args.tiny:
        from deckchat.ml.tiny import build_tiny_model  # noqa: PLC0415

        folder = build_tiny_model(
            Path(tempfile.mkdtemp()) / f"tiny-{args.tiny_arch}",
            args.tiny_arch,
            hidden=args.tiny_hidden,
            layers=4,
            heads=4,
            vocab_size=2048,
        )
        args.model = str(folder)
    started = time.perf_counter()
    loaded = load_model(args.model, device=args.device, dtype=args.dtype, load_format=args.load_format)
    progress(f"loaded {args.model} on {loaded.device} in {time.perf_counter() - started:.1f} s")
    vocab = (
        min(loaded.model.config.vocab_size, len(loaded.tokenizer))
        if args.tiny
        else loaded.model.config.vocab_size
    )
    prompts = make_prompts(args.concurrency, args.prompt_tokens, vocab)
    max_len = ((args.prompt_tokens + args.new_tokens + 63) // 64) * 64
    eager = eager_batch1(loaded, args, max_len, prompts[0]) if args.also_eager else None
    engine, setup_s = start_engine(loaded, args, max_len, args.compile)
    batch1(engine, prompts[0][:32], 8, args.preset)  # warm-up
    single = batch1(engine, prompts[0], args.new_tokens, args.preset)
    progress(f"batch 1: {single['ms_per_token']} ms per token")
    concurrent = run_engine(engine, prompts, args.new_tokens, args.preset)
    progress(f"{args.concurrency} concurrent: {concurrent['aggregate_tokens_per_s']} tokens/s")
    stats = engine.stats()
    engine.close()
    graphs = graph_times(engine)
    serial = serial_baseline(
        loaded, prompts[: args.serial_requests or args.concurrency], args.new_tokens, args.preset
    )
    progress(f"serial generate: {serial['tokens_per_s']} tokens/s")
    return {
        "benchmark": "engine",
        "device": device_name(loaded.device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": args.model if not args.tiny else f"tiny-{args.tiny_arch}",
        "architecture": loaded.model.config.model_type,
        "dtype": loaded.dtype,
        "load_format": loaded.load_format,
        "params_millions": round(loaded.params / 1e6, 2),
        "preset": args.preset,
        "mode": stats["mode"],
        "cuda_graphs": stats["cuda_graphs"],
        "graphs_error": stats["graphs_error"],
        "check_error": stats["check_error"],
        "compiled": stats["compiled"],
        "compile_mode": stats["compile_mode"],
        "compile_s": stats["compile_s"],
        "compile_error": stats["compile_error"],
        "engine_setup_s": round(setup_s, 2),
        "concurrency": args.concurrency,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "serial": serial,
        "engine": concurrent,
        "batch1": single,
        "graph_ms": graphs,  # device ms per replay: decode step, greedy and sampling picks, by batch size
        "uncompiled_batch1": eager,
        "aggregate_tokens_per_s": concurrent["aggregate_tokens_per_s"],
        "batch1_ms_per_token": single["ms_per_token"],
        "ttft_p50_ms": concurrent["ttft_p50_ms"],
        "ttft_p95_ms": concurrent["ttft_p95_ms"],
        "speedup": round(concurrent["aggregate_tokens_per_s"] / serial["tokens_per_s"], 2),
    }


def info(args) -> dict:
    """Load each model in turn and report its size and the device memory after load."""
    rows = []
    for name in args.info:
        if args.tiny:  # a tiny model of that architecture, to try the script on a CPU
            from deckchat.ml.tiny import build_tiny_model  # noqa: PLC0415

            name = str(build_tiny_model(Path(tempfile.mkdtemp()) / name, name))
        loaded = load_model(name, device=args.device, dtype=args.dtype, load_format=args.load_format)
        rows.append(loaded.info())
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        del loaded
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return {"benchmark": "models-info", "models": rows}


def main() -> None:
    """Parse arguments, run, print and save the JSON result."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="a tiny random GPT-2 built on the fly (CPU)")
    p.add_argument("--tiny-hidden", type=int, default=64)
    p.add_argument("--tiny-arch", default="gpt2", help="gpt2, gptj, gpt_neo, llama, qwen2 or t5")
    p.add_argument("--model", default="gpt2-xl")
    p.add_argument("--load-format", default="auto", choices=["auto", "dummy"])
    p.add_argument("--dtype", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--preset", default="sampling")
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--serial-requests", type=int, default=None, help="fewer serial requests to save time")
    p.add_argument("--prompt-tokens", type=int, default=400)
    p.add_argument("--new-tokens", type=int, default=100)
    p.add_argument("--max-batch", type=int, default=None)
    p.add_argument("--batching", default="auto", choices=["auto", "slots", "waves"])
    p.add_argument("--no-graphs", action="store_true")
    p.add_argument(
        "--compile",
        default="auto",
        choices=["auto", "on", "off"],
        help="torch.compile the small decode batch sizes (auto: on CUDA, with graphs)",
    )
    p.add_argument("--compile-mode", default="decode", choices=list(COMPILE_MODES))
    p.add_argument(
        "--compile-budget", type=float, default=60.0, help="seconds of compiling before sizes stay plain"
    )
    p.add_argument(
        "--also-eager", action="store_true", help="first measure batch 1 with compile off, same process"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: on a small shared CPU more threads wait on each other)",
    )
    p.add_argument("--info", nargs="*", help="only report these models' size and memory after load")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="[%(asctime)s] %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("deckchat").setLevel(logging.INFO)  # compile and graph set-up, step by step
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.concurrency is None:
        args.concurrency = 8 if args.tiny else 16
    result = info(args) if args.info else bench(args)
    emit(result, args.out, indent=2)


if __name__ == "__main__":
    main()
