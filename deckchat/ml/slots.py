"""Continuous batching for causal models: a fixed array of KV-cache slots, one sequence per slot.

Each sequence owns a slot row of the cache and its own position, so a request can join or leave the
running batch between any two decode steps. The model's own forward does the work; only the cache
object and the attention mask are ours. On CUDA the decode step is captured once per batch-size bucket
as a CUDA graph (static shapes, no launch overhead). Before that, the model's repeated decoder layer can
be compiled with torch.compile, once per bucket and shared by every layer (seconds, not the minutes a
48-layer graph takes): it fuses the small kernels of a layer and turns single-row matrix products into
bandwidth-bound reductions. Sampling runs on the device right after the step and writes the next step's
inputs, so a steady decode step costs the host two graph replays and one small copy back.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from .decoding import DeviceSampler, device_samplable

log = logging.getLogger(__name__)

# Architectures whose forward takes per-row position_ids and an additive 4D mask and applies no attention
# rule of its own on top; GPT-Neo's local layers slice a causal buffer by key length, so it is left out.
SLOT_ARCHS = {"gpt2", "gptj", "llama", "qwen2", "qwen3", "mistral", "phi3", "olmo2", "granite"}

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


def slots_supported(config: Any) -> bool:
    """Whether the slot runner may be tried for this model (the equivalence check still decides)."""
    if config.model_type not in SLOT_ARCHS or getattr(config, "is_encoder_decoder", False):
        return False
    sliding = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
    return not sliding and "sliding_attention" not in (getattr(config, "layer_types", None) or [])


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


def _repeated_layers(model: Any) -> list[Any]:
    """The model's decoder layers: the longest ModuleList whose modules all share one class."""
    best: list[Any] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > len(best):
            if len({type(m) for m in module}) == 1:
                best = list(module)
    return best


class _SlotKV:
    """Duck-typed transformers Cache over the runner's slot buffers (keys/values: slots, heads, len, dim)."""

    is_compileable = False

    def __init__(self, runner: SlotRunner, rows: torch.Tensor | None, pos: torch.Tensor | None, length: int):
        self.runner, self.rows, self.pos, self.length = runner, rows, pos, length
        # Set by the runner before each compiled layer: that layer's buffers. The compiled code never
        # reads the layer index, so one compiled layer serves them all.
        self.layer_kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Store this step's keys/values (batch, heads, q, dim) and return what attention should read."""
        if self.layer_kv is not None:
            keys, values = self.layer_kv
        else:
            keys, values = self.runner.buffers(layer_idx, key, value)
        if self.rows is not None:  # prefill: whole prompts, starting at position 0 of their slots
            n = key.shape[2]
            keys[self.rows, :, :n] = key
            values[self.rows, :, :n] = value
            return key, value
        b = key.shape[0]
        # An index_put on the whole buffer, not a scatter into a slice of it: a compiled step then writes
        # the new row in place instead of copying the slice around it.
        rows = self.runner.rows[:b]
        keys[rows, :, self.pos] = key[:, :, 0]
        values[rows, :, self.pos] = value[:, :, 0]
        return keys[:b, :, : self.length], values[:b, :, : self.length]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Unused: the runner always passes position_ids."""
        return 0


class SlotRunner:
    """Owns the KV slots of one causal model; the engine thread is its only caller."""

    def __init__(
        self,
        model: Any,
        max_batch: int,
        max_len: int,
        cuda_graphs: bool = True,
        max_prefill_tokens: int = 8192,
        eos_ids: list[int] | tuple[int, ...] = (),
        compile_mode: str = "decode",
    ):
        self.model, self.max_batch, self.max_len = model, max_batch, max_len
        self.device = model.device
        self.dtype = next(model.parameters()).dtype
        self.active: list[Any] = []  # sequences in slot order: active[i].slot == i
        self.max_prefill_tokens = max_prefill_tokens
        self.compile_mode = compile_mode
        self.compile_s = 0.0
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5.2x
        self._neg = torch.finfo(self.dtype).min
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}  # bucket -> graph, logits
        self._pick_graphs: dict[tuple[int, bool], torch.cuda.CUDAGraph] = {}  # (bucket, sample) -> graph
        self._compiled: set[int] = set()  # buckets whose decoder layers run compiled
        self._layers = _repeated_layers(model)
        self._layer_fn: Callable | None = None  # the compiled forward of the layer class
        # The thread running a compiled step. The layers are the model's own modules, shared with every
        # other user of the model (a plain generate in a web or test thread): while a step runs, their
        # patched forward sends only this thread through the compiled code.
        self._step_thread: int | None = None
        self._kv: _SlotKV | None = None  # the cache object of the step in progress
        self._buckets: list[int] = []  # sizes with a static decode step, ascending
        self._ids = torch.zeros(max_batch, 1, dtype=torch.long, device=self.device)  # (slots, 1)
        self._pos = torch.zeros(max_batch, dtype=torch.long, device=self.device)  # (slots,)
        self._tokens = torch.zeros(max_batch, dtype=torch.long, device=self.device)  # (slots,) last picks
        on_gpu = self.device.type == "cuda"
        self._host_tokens = torch.zeros(max_batch, dtype=torch.long, pin_memory=on_gpu)  # (slots,)
        self._picked = torch.cuda.Event() if on_gpu else None
        self._arange = torch.arange(max_len, device=self.device)  # (len,)
        self.rows = torch.arange(max_batch, device=self.device)  # (slots,)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        vocab = getattr(head, "out_features", None) or model.config.vocab_size
        self.sampler = DeviceSampler(max_batch, vocab, self.device, list(eos_ids))
        self.logits: torch.Tensor | None = None  # the last decode step's logits (active, vocab)
        self._out: torch.Tensor | None = None  # ... of every row it computed (bucket, vocab)
        self._sample = False  # whether any active row samples: picks the sampler variant
        self._dirty = True  # the device-side ids/positions/settings lag behind `active`

    @property
    def free(self) -> int:
        """Slots open for new sequences."""
        return self.max_batch - len(self.active)

    def buffers(
        self, layer: int, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's cache buffers (slots, kv heads, max_len, head dim), allocated at first use."""
        while len(self._keys) <= layer:
            shape = (self.max_batch, key.shape[1], self.max_len, key.shape[3])
            self._keys.append(torch.zeros(shape, dtype=key.dtype, device=key.device))
            self._values.append(torch.zeros(shape, dtype=value.dtype, device=value.device))
        return self._keys[layer], self._values[layer]

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache: _SlotKV, keep: Any = 1
    ) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            position_ids=positions,
            attention_mask=mask,
            use_cache=True,
            logits_to_keep=keep,
            **{self._cache_kw: cache},
        )
        return out.logits

    @torch.inference_mode()
    def prefill(self, seqs: list[Any]) -> torch.Tensor:
        """Give each sequence a slot, run its prompt, and return next-token logits (len(seqs), vocab)."""
        if len(seqs) > self.free:
            raise ValueError("not enough free slots")
        self._dirty = True
        out: list[torch.Tensor] = []
        start = 0
        while start < len(seqs):  # chunks bound the activation memory of one prefill
            end = start + 1
            longest = len(seqs[start].prompt_ids)
            while (
                end < len(seqs)
                and max(longest, len(seqs[end].prompt_ids)) * (end + 1 - start) <= self.max_prefill_tokens
            ):
                longest = max(longest, len(seqs[end].prompt_ids))
                end += 1
            out.append(self._prefill_chunk(seqs[start:end]))
            start = end
        return torch.cat(out)

    def _prefill_chunk(self, seqs: list[Any]) -> torch.Tensor:
        lengths = [len(s.prompt_ids) for s in seqs]
        n = max(lengths)
        # Right padding: real tokens sit at 0..len-1 of their slot and never see the pads (causal mask).
        ids = torch.zeros(len(seqs), n, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : lengths[i]] = torch.tensor(s.prompt_ids)
            s.slot = len(self.active)
            s.pos = lengths[i]
            self.active.append(s)
        ids = ids.to(self.device)
        rows = torch.tensor([s.slot for s in seqs], device=self.device)
        positions = torch.arange(n, device=self.device)[None].expand(len(seqs), n)  # (b, n)
        causal = torch.ones(n, n, dtype=torch.bool, device=self.device).tril()
        mask = torch.zeros(n, n, dtype=self.dtype, device=self.device).masked_fill(~causal, self._neg)
        mask = mask[None, None].expand(len(seqs), 1, n, n)  # (b, 1, n, n)
        last = sorted({x - 1 for x in lengths})
        logits = self._forward(
            ids, positions, mask, _SlotKV(self, rows, None, n), keep=torch.tensor(last, device=self.device)
        )  # (b, len(last), vocab)
        pick = torch.tensor([last.index(x - 1) for x in lengths], device=self.device)
        return logits[torch.arange(len(seqs), device=self.device), pick]  # (b, vocab)

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

    def _decode_step(self, b: int, length: int) -> torch.Tensor:
        """Logits (b, vocab) for the inputs in slot rows 0..b-1, attending to the first `length` positions."""
        pos = self._pos[:b]
        visible = self._arange[:length][None, :] <= pos[:, None]  # (b, length)
        mask = torch.zeros(visible.shape, dtype=self.dtype, device=self.device).masked_fill(
            ~visible, self._neg
        )
        self._kv = _SlotKV(self, None, pos, length)
        logits = self._forward(self._ids[:b], pos[:, None], mask[:, None, None, :], self._kv)
        return logits[:, -1]  # (b, vocab)

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

    def _pick(self, n: int, sample: bool, logits: torch.Tensor) -> None:
        """Sample rows 0..n-1 on the device and make the picks the next step's inputs (graph-safe)."""
        tokens = self.sampler.pick(logits, self._pos[:n], sample)
        live = self.sampler.live[:n]
        self._tokens[:n] = tokens
        self._ids[:n, 0] = torch.where(live, tokens, 0)  # idle rows write harmless junk at position 0
        self._pos[:n] = torch.where(live, (self._pos[:n] + 1).clamp_(max=self.max_len - 1), 0)

    def _upload(self) -> None:
        """Write every slot's input token, position and decoding settings to the device."""
        rows, pad = self.active, self.max_batch - len(self.active)
        self._ids[:, 0].copy_(torch.tensor([s.last for s in rows] + [0] * pad))
        self._pos.copy_(torch.tensor([s.pos for s in rows] + [0] * pad))
        params = [getattr(s, "params", None) for s in rows]
        # A token sampled with its input at position p is the (p - prompt + 1)th of the completion.
        until = [len(s.prompt_ids) + (p.min_new_tokens if p else 0) - 1 for s, p in zip(rows, params)]
        self.sampler.load(params, until)
        self._sample = any(p is not None and p.do_sample for p in params)
        self._dirty = False

    def samples_on_device(self) -> bool:
        """Whether `step` can sample for every active sequence (else: `decode` and sample on the host)."""
        return all(device_samplable(getattr(s, "params", None)) for s in self.active)

    @torch.inference_mode()
    def decode(self) -> torch.Tensor:
        """One decode step for every active sequence; returns logits (active, vocab) in slot order."""
        b = len(self.active)
        if self._dirty:
            self._upload()
        n = next((k for k in self._buckets if k >= b), None)
        if n is not None and n in self._graphs:
            graph, logits = self._graphs[n]
            graph.replay()
        elif n is not None:
            logits = self._run_step(n, self.max_len)  # compiled, without graphs (CPU, or graphs off)
        else:
            # Eager: attend only to the longest live prefix, not the whole buffer; a multiple of 64 keeps
            # the mask aligned for the fused GPU attention kernels (the extra keys are masked).
            n, length = b, max(s.pos for s in self.active) + 1
            if self.device.type == "cuda":
                length = min(self.max_len, -(-length // 64) * 64)
            logits = self._run_step(b, length)
        for s in self.active:
            s.pos += 1
        self._dirty = True  # the device inputs are stale until `step` writes the picks there
        self._out, self.logits = logits, logits[:b]
        return self.logits

    @torch.inference_mode()
    def step(self) -> list[int]:
        """One decode step with sampling on the device; returns each active sequence's next token."""
        self.decode()
        n, b = self._out.shape[0], len(self.active)
        graph = self._pick_graphs.get((n, self._sample))
        if graph is not None and self._out is self._graphs[n][1]:
            graph.replay()
        else:
            self._pick(n, self._sample, self._out)
        if self._picked is not None:
            # The step's one sync, on an event: it lets go of the GIL, so stream readers run meanwhile.
            self._host_tokens[:b].copy_(self._tokens[:b], non_blocking=True)
            self._picked.record()
            self._picked.synchronize()
            tokens = self._host_tokens[:b].tolist()
        else:
            tokens = self._tokens[:b].tolist()
        for s, token in zip(self.active, tokens):
            s.last = token
        self._dirty = False
        return tokens

    def advance(self, seq: Any, token: int) -> None:
        """Record the sampled token that the next decode step feeds in."""
        if seq.last != token:
            seq.last = token
            self._dirty = True

    def remove(self, seq: Any) -> None:
        """Free the sequence's slot, moving the last active sequence into it to keep slots packed."""
        i, last = seq.slot, len(self.active) - 1
        mover = self.active[last]
        if i != last:
            n = mover.pos
            for buf in (*self._keys, *self._values):
                buf[i, :, :n] = buf[last, :, :n]
            mover.slot = i
            self.active[i] = mover
        self.active.pop()
        seq.slot = None
        self._dirty = True

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
