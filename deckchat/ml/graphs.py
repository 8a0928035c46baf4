"""The slot runner's decode step made fast, and the check that it still equals a plain forward.

On CUDA the decode step is captured once per batch-size bucket as a CUDA graph (static shapes, no launch
overhead). Before that, the model's repeated decoder layer can be compiled with torch.compile, once per
bucket and shared by every layer (seconds, not the minutes a 48-layer graph takes): it fuses the small
kernels of a layer and turns single-row matrix products into bandwidth-bound reductions.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .slots import SlotRunner

log = logging.getLogger(__name__)

# torch.compile settings by mode name. "decode" is inductor with coordinate-descent tuning, under which
# inductor lowers single-row matmuls to tuned reductions on GPUs (gpt-fast's batch-1 recipe); the others
# are inductor's own modes; "eager" and "aot_eager" only trace (tests, debugging).
COMPILE_MODES = {
    "decode": {"coordinate_descent_tuning": True},
    "default": {},
    "max-autotune-no-cudagraphs": {"max_autotune": True, "coordinate_descent_tuning": True},
    "eager": None,
    "aot_eager": None,
}


def single_row_addmm_to_mm(gm: torch.fx.GraphModule) -> int:
    """Rewrite `addmm(bias, x, w)` with a one-row `x` as `mm(x, w) + bias` in a dynamo graph; returns the count.

    GPT-2's Conv1D calls addmm, which inductor keeps as a cuBLAS call; its mm rule is the one that makes a
    single-row product a tuned reduction with the bias and what follows fused into it.
    """
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.addmm or node.kwargs or len(node.args) != 3:
            continue
        bias, x, w = node.args
        vals = [getattr(a, "meta", {}).get("example_value") for a in (bias, x, w)]
        if any(v is None for v in vals) or vals[1].dim() != 2 or vals[1].shape[0] != 1:
            continue
        with gm.graph.inserting_before(node):
            mm = gm.graph.call_function(torch.mm, (x, w))
            out = gm.graph.call_function(torch.add, (mm, bias))
        fake_mode = getattr(vals[1], "fake_mode", None)
        with fake_mode if fake_mode is not None else contextlib.nullcontext():
            mm_val = torch.mm(vals[1], vals[2])
            out_val = mm_val + vals[0]
        for new, val in ((mm, mm_val), (out, out_val)):
            new.meta.update({k: v for k, v in node.meta.items() if k != "example_value"})
            new.meta["example_value"] = val
        node.replace_all_uses_with(out)
        gm.graph.erase_node(node)
        count += 1
    if count:
        gm.recompile()
    return count


def _compile_backend(mode: str) -> Any:
    """The torch.compile backend for a mode of COMPILE_MODES."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose from {', '.join(COMPILE_MODES)}")
    patches = COMPILE_MODES[mode]
    if patches is None:
        return mode
    from torch._inductor.compile_fx import compile_fx  # noqa: PLC0415

    def backend(gm: torch.fx.GraphModule, example_inputs: list) -> Any:
        if mode == "decode":
            single_row_addmm_to_mm(gm)
        return compile_fx(gm, example_inputs, config_patches=dict(patches))

    return backend


def repeated_layers(model: Any) -> list[Any]:
    """The model's decoder layers: the longest ModuleList whose modules all share one class."""
    best: list[Any] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best):
            if len({type(m) for m in module}) == 1:
                best = list(module)
    return best


class CompiledSteps:
    """SlotRunner's compiled and graph-captured decode steps: a mixin over the runner's own state and step."""

    @contextlib.contextmanager
    def _attention(self, compiled: bool):
        """Decode with eager attention on CPUs and in compiled layers."""
        config = self.model.config
        swap = config._attn_implementation == "sdpa" and (compiled or self.device.type == "cpu")
        if swap:
            # One query row per sequence: on a CPU two small matmuls beat the flash kernel with a mask;
            # compiled, they become reductions spread over every SM instead of one block per head.
            config._attn_implementation = "eager"
        try:
            yield
        finally:
            if swap:
                config._attn_implementation = "sdpa"

    def _layer_forward(self, i: int, layer: Any, *args, **kwargs) -> Any:
        """Layer `i` of a compiled step: the compiled layer code over this layer's weights and buffers."""
        if threading.get_ident() != self._step_thread:
            # Another thread's forward of the same model (its own cache, grad mode and shapes): the class's
            # forward, never the step's compiled code, its buffers or its recompile budget.
            return type(layer).forward(layer, *args, **kwargs)
        self._kv.layer_kv = (self._keys[i], self._values[i])
        return self._layer_fn(layer, *args, **kwargs)

    @contextlib.contextmanager
    def _compiled_layers(self):
        """Route this thread's decoder layer forwards through the compiled layer while the block runs."""
        self._step_thread = threading.get_ident()
        for i, layer in enumerate(self._layers):
            layer.forward = functools.partial(self._layer_forward, i, layer)
        try:
            yield
        finally:
            for layer in self._layers:
                del layer.forward  # the class's own forward again
            self._step_thread = None

    def _run_step(self, b: int, length: int, compiled: bool | None = None) -> torch.Tensor:
        """The decode step of `b` rows, with compiled layers where `b` was compiled."""
        compiled = b in self._compiled if compiled is None else compiled
        with self._attention(compiled), self._compiled_layers() if compiled else contextlib.nullcontext():
            return self._decode_step(b, length)

    @property
    def graph_sizes(self) -> list[int]:
        """Batch sizes with a captured decode graph."""
        return sorted(self._graphs)

    @property
    def compiled_sizes(self) -> list[int]:
        """Batch sizes whose decoder layers run compiled."""
        return sorted(self._compiled)

    def _set_buckets(self) -> None:
        self._buckets = sorted(set(self._graphs) | set(self._compiled))
        self._dirty = True

    def drop_graphs(self, disable: bool = True) -> None:
        """Forget captured graphs (after a failed capture); `disable` also stops capturing new ones."""
        self._graphs.clear()
        self._pick_graphs.clear()
        self._set_buckets()
        self.use_graphs = self.use_graphs and not disable
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def drop_compiled(self) -> None:
        """Forget compiled steps; graphs captured from them must be dropped too."""
        self._compiled.clear()
        self._set_buckets()

    @torch.inference_mode()
    def compile(self, buckets: list[int], budget_s: float = 60.0) -> list[int]:
        """Compile the decoder layer for `buckets`, smallest first, while `budget_s` lasts (the first always).

        One static-shape compile per size, shared by all layers; the next size starts only if the last
        one's duration still fits the budget. Raises if torch.compile fails; returns the compiled sizes.
        """
        if not self._layers:
            raise RuntimeError("no repeated decoder layers to compile")
        # One cache entry per bucket. The compiled function is transformers' gradient-checkpointing wrapper,
        # one code object shared by the decoder layers of every model class, and dynamo keeps its entries
        # and counts its recompiles per code object; its config is also per thread (torch >= 2.13), so a
        # limit raised here would not hold in another thread. Where torch.compile takes them, the limit
        # and a cache of our own go with the compiled function itself, whichever thread runs it.
        options: dict[str, Any] = {}
        params = inspect.signature(torch.compile).parameters
        if "recompile_limit" in params:
            options["recompile_limit"] = 64
        if "isolate_recompiles" in params:
            options["isolate_recompiles"] = True
        cfg = torch._dynamo.config
        limits = {"accumulated_recompile_limit": 1024}  # the cap over all regions, read where it compiles
        if "recompile_limit" not in options:  # older torch: only the config's limit
            limits["recompile_limit"] = 64
        for name, least in limits.items():
            if hasattr(cfg, name):
                setattr(cfg, name, max(getattr(cfg, name), least))
        self._layer_fn = torch.compile(
            type(self._layers[0]).forward,
            backend=_compile_backend(self.compile_mode),
            fullgraph=True,
            dynamic=False,
            **options,
        )
        started, last = time.perf_counter(), 0.0
        self._ids.zero_()
        self._pos.zero_()
        for b in sorted(set(buckets)):
            if self._compiled and time.perf_counter() - started + last > budget_s:
                log.info("compile budget of %.0f s spent; batch %d and up decode uncompiled", budget_s, b)
                break
            begun = time.perf_counter()
            for _ in range(2):  # the second call proves that the first one's guards hold
                self._run_step(b, self.max_len, compiled=True)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            last = time.perf_counter() - begun
            log.info("compiled the decoder layer for batch %d in %.1f s (%s)", b, last, self.compile_mode)
            self._compiled.add(b)
        self.compile_s = time.perf_counter() - started
        self._set_buckets()
        return self.compiled_sizes

    @torch.inference_mode()
    def capture_graphs(self, buckets: list[int]) -> None:
        """Record the decode step (compiled where it is) and the sampler as CUDA graphs per batch size."""
        if not self.use_graphs or not self._keys:
            return
        self._pos.zero_()
        self._ids.zero_()
        self.sampler.live.zero_()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for b in buckets:
                for _ in range(2):
                    logits = self._run_step(b, self.max_len)
                    for sample in (False, True):
                        self._pick(b, sample, logits)
        torch.cuda.current_stream().wait_stream(stream)
        pool = None
        for b in sorted(buckets, reverse=True):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                logits = self._run_step(b, self.max_len)
            pool = graph.pool()
            self._graphs[b] = (graph, logits)
            for sample in (False, True):
                pick = torch.cuda.CUDAGraph()
                try:
                    with torch.cuda.graph(pick, pool=pool):
                        self._pick(b, sample, logits)
                except Exception as exc:  # noqa: BLE001 - the sampler then runs eagerly after the graph
                    log.warning("sampler graph (batch %d, sample=%s) not captured: %s", b, sample, exc)
                    continue
                self._pick_graphs[(b, sample)] = pick
        torch.cuda.synchronize()
        self._set_buckets()

    def time_graph(self, bucket: int, iters: int = 50) -> dict[str, float] | None:
        """Device milliseconds per replay of the decode step and sampler graphs of `bucket` (benchmarks).

        Only while no sequence is active: the replays write junk into free slots.
        """
        if bucket not in self._graphs or self.active:
            return None
        result = {}
        for name, graph in (
            ("step_ms", self._graphs[bucket][0]),
            ("pick_ms", self._pick_graphs.get((bucket, False))),
            ("sample_ms", self._pick_graphs.get((bucket, True))),
        ):
            if graph is None:
                continue
            graph.replay()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                graph.replay()
            end.record()
            end.synchronize()
            result[name] = round(start.elapsed_time(end) / iters, 4)
        self._dirty = True
        return result


class _Probe:
    """A stand-in sequence for the equivalence check (greedy: no sampling settings)."""

    def __init__(self, prompt_ids: list[int]):
        self.prompt_ids, self.slot, self.pos, self.last = prompt_ids, None, 0, 0


@torch.inference_mode()
def equivalence_error(runner: SlotRunner, prompts: list[list[int]], steps: int = 4) -> float:
    """Largest gap between slot-path logits and a plain forward over the same tokens, scaled by logit size.

    The decode steps go through `step`, so the device sampler picks (greedily) and feeds every next input;
    a pick that is not the argmax of its own logits counts as an error of 1.
    """
    probes = [_Probe(p) for p in prompts]
    first = runner.prefill(probes)  # (len(prompts), vocab)
    got = [[row] for row in first]
    for probe, row in zip(probes, first):
        runner.advance(probe, int(row.argmax()))
    tokens = [[p.last] for p in probes]
    worst = 0.0
    for _ in range(steps):
        picked = runner.step()
        for i in range(len(probes)):
            row = runner.logits[i].clone()  # a graph's output buffer is overwritten by the next replay
            got[i].append(row)
            tokens[i].append(picked[i])
            if picked[i] != int(row.float().argmax()):
                worst = 1.0
    for probe in probes:
        runner.remove(probe)
    for prompt, rows, toks in zip(prompts, got, tokens):
        full = torch.tensor([prompt + toks[:-1]], device=runner.device)
        ref = runner.model(input_ids=full).logits[0, len(prompt) - 1 :].float()  # (steps + 1, vocab)
        err = (torch.stack(rows).float() - ref).abs().max() / (1.0 + ref.abs().max())
        worst = max(worst, float(err))
    return worst
