"""The chat chain (LangChain): retrieve for the question and the slide on screen → fit the prompt → engine →
answer with its sources. The same chain runs on the in-process engine, a remote one or the extractive engine.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.llms import LLM
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, GenerationChunk

from ..domain.content import DeckContent
from .engine import Engine, GenerationRequest, GenerationResult
from .policy import match_faq, match_guardrail
from .prompts import ContextBlock, FittedPrompt, PromptParts, fit_prompt, input_budget, persona_for
from .runtime import EngineProfile

_EMBED_CACHE: OrderedDict[tuple[str | None, str], np.ndarray] = OrderedDict()
_EMBED_CACHE_SIZE = 4096
_embed_lock = threading.Lock()


def cached_embed(texts: list[str], model: str | None) -> np.ndarray:
    """Embeddings with a process-wide LRU: the question is embedded once for the FAQ and guardrail checks,
    and a deck's FAQ questions and guardrail topics once per process rather than on every question."""
    from .index import embed  # noqa: PLC0415 - the embedding model loads on first use

    with _embed_lock:
        missing = [t for t in dict.fromkeys(texts) if (model, t) not in _EMBED_CACHE]
    if missing:
        vectors = embed(missing, model)
        with _embed_lock:
            for text, vector in zip(missing, vectors):
                _EMBED_CACHE[(model, text)] = vector
            while len(_EMBED_CACHE) > _EMBED_CACHE_SIZE:
                _EMBED_CACHE.popitem(last=False)
    with _embed_lock:
        rows = [_EMBED_CACHE.get((model, t)) for t in texts]
        for text, row in zip(texts, rows):
            if row is not None:
                _EMBED_CACHE.move_to_end((model, text))
    lost = [i for i, row in enumerate(rows) if row is None]  # evicted by other threads meanwhile
    if lost:
        for i, vector in zip(lost, embed([texts[i] for i in lost], model)):
            rows[i] = vector
    return np.stack(rows)


UNKNOWN_ANSWER = ("I don't know that from the material I have. I can pass your question to the presenter, "
                  "who will follow up with you.")


def _run(engine: Engine, request: GenerationRequest, sink: dict | None) -> Iterator[str]:
    """Submit to the engine and yield its deltas; cancel the request if the reader stops early."""
    stream = engine.submit(request)
    done = False
    try:
        for delta in stream:
            yield delta
        result = stream.result()
        done = True
        if sink is not None:
            sink["result"] = result
    finally:
        if not done:
            stream.cancel()


class EngineLLM(LLM):
    """LangChain LLM over a Deck Chat engine (base and seq2seq models: a string prompt)."""

    engine: Any
    preset: str = "sampling"
    max_new_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return "deckchat-engine"

    def _call(self, prompt: str, stop=None, run_manager=None, **kwargs: Any) -> str:
        return "".join(chunk.text for chunk in self._stream(prompt, stop, run_manager, **kwargs))

    def _stream(self, prompt: str, stop=None, run_manager=None, **kwargs: Any) -> Iterator[GenerationChunk]:
        request = GenerationRequest(prompt=prompt, preset=self.preset, max_new_tokens=self.max_new_tokens,
                                    stop=stop, question=kwargs.get("question", ""),
                                    passages=kwargs.get("passages", []))
        for delta in _run(self.engine, request, kwargs.get("sink")):
            if run_manager:
                run_manager.on_llm_new_token(delta)
            yield GenerationChunk(text=delta)
        yield GenerationChunk(text="")  # LangChain needs one chunk even when the model says nothing


class EngineChatModel(BaseChatModel):
    """LangChain chat model over a Deck Chat engine (instruct models with a chat template)."""

    engine: Any
    preset: str = "sampling"
    max_new_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return "deckchat-engine-chat"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        text = "".join(c.text for c in self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessageChunk(content=text))])

    def _stream(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any
                ) -> Iterator[ChatGenerationChunk]:
        roles = {"system": "system", "human": "user", "ai": "assistant"}
        request = GenerationRequest(messages=[{"role": roles.get(m.type, "user"), "content": str(m.content)}
                                              for m in messages],
                                    preset=self.preset, max_new_tokens=self.max_new_tokens, stop=stop,
                                    question=kwargs.get("question", ""), passages=kwargs.get("passages", []))
        for delta in _run(self.engine, request, kwargs.get("sink")):
            if run_manager:
                run_manager.on_llm_new_token(delta)
            yield ChatGenerationChunk(message=AIMessageChunk(content=delta))
        yield ChatGenerationChunk(message=AIMessageChunk(content=""))  # at least one chunk, as above


@dataclass
class ChatPlan:
    """What the chain decided before generating: the kind of answer, its sources and the prompt."""

    kind: str                      # "model", "faq", "guardrail" or "unknown"
    question: str
    answerable: bool
    sources: list[dict] = field(default_factory=list)   # [{"source", "slide", "score"}]
    fixed_answer: str | None = None                     # FAQ, guardrail and unknown replies
    prompt: FittedPrompt | None = None
    passages: list[tuple[str, str, float]] = field(default_factory=list)


@dataclass
class ChatAnswer:
    """A finished answer with everything that is stored about it."""

    text: str
    kind: str
    answerable: bool
    sources: list[dict]
    engine: str
    model: str
    ttft_ms: float | None
    total_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str = "stop"


@dataclass
class DeckChain:
    """Plans and streams answers for one deck's questions on one engine."""

    engine: Engine
    profile: EngineProfile
    index_root: Path
    embed_model: str | None = None
    k: int = 3
    answer_tokens: int = 100
    preset: str = "sampling"
    rebuild_stale: bool = True  # rebuild a missing or stale index before answering, never answer from it

    def plan(self, content: DeckContent, question: str, *, slide: int | None = None,
             history: list[tuple[str, str]] | None = None, persona: str | None = None,
             guardrails: list[tuple[str, str]] | None = None) -> ChatPlan:
        """Decide how to answer: guardrail reply, FAQ answer, "I don't know", or a fitted model prompt."""
        from .retrieval import retrieve  # noqa: PLC0415 - the embedding model loads on first use

        question = " ".join(question.split())

        def embedder(texts: list[str]):
            return cached_embed(texts, self.embed_model)

        guard = match_guardrail(question, guardrails or [], embedder)
        if guard is not None:
            return ChatPlan("guardrail", question, True, fixed_answer=guard[1])
        faq = match_faq(question, [(f.question, f.answer) for f in content.faq], embedder)
        if faq is not None:
            source = {"source": f"faq:{faq.question}", "slide": None, "score": round(faq.similarity, 4)}
            return ChatPlan("faq", question, True, [source], fixed_answer=faq.answer)
        found = retrieve(content, question, self.index_root, k=self.k, slide=slide, embed_model=self.embed_model,
                         rebuild=self.rebuild_stale)
        if not found.answerable or not found.results:
            return ChatPlan("unknown", question, False, fixed_answer=UNKNOWN_ANSWER)
        blocks = [ContextBlock(h.source, h.text, h.score) for h in found.results]
        parts = PromptParts(persona_for(content.title, persona), question, blocks,
                            [(e.question, e.answer) for e in content.examples], list(history or []))
        prompt = None
        if self.profile.needs_prompt:
            budget = input_budget(self.profile.max_input, self.answer_tokens, self.profile.seq2seq)
            prompt = fit_prompt(parts, self.profile.count_tokens, budget, chat=self.profile.chat)
            blocks = prompt.context
        slides = {h.source: h.slide for h in found.results}
        sources = [{"source": b.source, "slide": slides.get(b.source), "score": round(b.score, 6)} for b in blocks]
        return ChatPlan("model", question, True, sources, prompt=prompt,
                        passages=[(b.source, b.text, b.score) for b in blocks])

    def runnable(self):
        """The LangChain runnable that generates: a chat model for instruct engines, an LLM otherwise."""
        cls = EngineChatModel if self.profile.chat else EngineLLM
        return cls(engine=self.engine, preset=self.preset, max_new_tokens=self.answer_tokens)

    def stream(self, plan: ChatPlan, answer: dict) -> Iterator[str]:
        """Yield the answer's text deltas; `answer["answer"]` holds the ChatAnswer when the stream ends."""
        started = time.perf_counter()
        if plan.fixed_answer is not None:
            yield plan.fixed_answer
            answer["answer"] = ChatAnswer(plan.fixed_answer, plan.kind, plan.answerable, plan.sources,
                                          self.profile.name, self.profile.model, 0.0,
                                          (time.perf_counter() - started) * 1000, None, None)
            return
        sink: dict = {}
        llm = self.runnable().bind(question=plan.question, passages=plan.passages, sink=sink)
        if plan.prompt is None:
            prompt_input: Any = plan.question
        elif plan.prompt.messages is not None:
            prompt_input = [(_lc_role(m["role"]), m["content"]) for m in plan.prompt.messages]
        else:
            prompt_input = plan.prompt.text
        parts: list[str] = []
        for chunk in llm.stream(prompt_input):
            delta = chunk if isinstance(chunk, str) else str(chunk.content)
            if delta:
                parts.append(delta)
                yield delta
        result: GenerationResult | None = sink.get("result")
        text = "".join(parts).strip()
        answer["answer"] = ChatAnswer(
            text, "model", True, plan.sources, self.profile.name, self.profile.model,
            None if result is None or result.ttft_s is None else result.ttft_s * 1000,
            (time.perf_counter() - started) * 1000,
            result.prompt_tokens if result else None, result.completion_tokens if result else None,
            result.finish_reason if result else "stop")

    def ask(self, content: DeckContent, question: str, **kwargs: Any) -> ChatAnswer:
        """Plan and generate a whole answer (CLI, comparisons, tests)."""
        answer: dict = {}
        for _ in self.stream(self.plan(content, question, **kwargs), answer):
            pass
        return answer["answer"]


def _lc_role(role: str) -> str:
    return {"user": "human", "assistant": "ai"}.get(role, role)
