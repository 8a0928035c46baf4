"""Prompt templates (LangChain) and fitting into the model's input budget: pure functions, easy to test.

Fitting order when the prompt is too long: the oldest history turns go first, then the weakest retrieved
context, then the presenter's examples, and last the persona is shortened; the question is never cut (a
question that alone does not fit is refused with PromptTooLong).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate

DEFAULT_PERSONA = (
    "You are the founder presenting the deck \"{title}\" to investors. Answer their questions politely and "
    "professionally, in a few sentences, using only the material below. If the material does not contain the "
    "answer, say that you do not know and offer to follow up."
)

BASE_TEMPLATE = PromptTemplate.from_template("{persona}\n\nMaterial:\n{context}\n\n{turns}Question: {question}\nAnswer:")

CHAT_TEMPLATE = ChatPromptTemplate.from_messages([
    ("system", "{persona}\n\nMaterial:\n{context}"),
    MessagesPlaceholder("turns"),
    ("human", "{question}"),
])

SUMMARY_TEMPLATE = PromptTemplate.from_template(
    "Summarise the following section of \"{document}\" for an investor in at most {words} words, keeping "
    "every number and name.\n\n{text}\n\nSummary:"
)


class PromptTooLong(ValueError):
    """The question alone does not fit the model's input."""


@dataclass(frozen=True)
class ContextBlock:
    """One retrieved passage with its source name and retrieval score."""

    source: str
    text: str
    score: float


@dataclass
class PromptParts:
    """Everything that may go into a prompt, before fitting."""

    persona: str
    question: str
    context: list[ContextBlock] = field(default_factory=list)       # best first
    examples: list[tuple[str, str]] = field(default_factory=list)   # presenter's (question, answer)
    history: list[tuple[str, str]] = field(default_factory=list)    # this visit's turns, oldest first


@dataclass
class FittedPrompt:
    """The prompt that fits, and what was left out to make it fit."""

    text: str                                  # the base-model prompt (also a rendering of the chat)
    messages: list[dict[str, str]] | None      # chat models: role/content messages
    context: list[ContextBlock]
    history: list[tuple[str, str]]
    examples: list[tuple[str, str]]
    tokens: int
    dropped_history: int = 0
    dropped_context: int = 0
    dropped_examples: int = 0


def persona_for(title: str, persona: str | None) -> str:
    """The deck's persona preamble, or the default one for its title."""
    return persona.strip() if persona and persona.strip() else DEFAULT_PERSONA.format(title=title)


def _context_text(blocks: list[ContextBlock]) -> str:
    return "\n\n".join(f"[{b.source}] {b.text.strip()}" for b in blocks) or "(none)"


def render_base(parts: PromptParts, context, examples, history) -> str:
    """The `Question: … Answer:` prompt for base (and seq2seq) models."""
    turns = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in [*examples, *history])
    return BASE_TEMPLATE.format(persona=parts.persona, context=_context_text(context), turns=turns,
                                question=parts.question)


def render_chat(parts: PromptParts, context, examples, history) -> list[dict[str, str]]:
    """Chat messages for instruct models: system (persona + material), few-shot and history turns, question."""
    turns = []
    for q, a in [*examples, *history]:
        turns += [HumanMessage(q), AIMessage(a)]
    value = CHAT_TEMPLATE.invoke({"persona": parts.persona, "context": _context_text(context), "turns": turns,
                                  "question": parts.question})
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles[m.type], "content": m.content} for m in value.to_messages()]


def input_budget(max_input: int, answer_tokens: int, seq2seq: bool) -> int:
    """Tokens the prompt may use: the whole input for seq2seq; input minus the answer for causal models."""
    return max_input if seq2seq else max_input - answer_tokens


def fit_prompt(parts: PromptParts, count_tokens: Callable[[str], int], budget: int, chat: bool = False,
               template_overhead: int = 0) -> FittedPrompt:
    """Drop the oldest history, then the weakest context, then examples, until the prompt fits `budget`."""
    context, examples, history = list(parts.context), list(parts.examples), list(parts.history)

    def measure() -> tuple[str, list[dict[str, str]] | None, int]:
        return _measure(parts, count_tokens, chat, template_overhead, context, examples, history)

    text, messages, tokens = measure()
    while tokens > budget and (history or context or examples):
        if history:
            history.pop(0)
        elif context:
            context.pop()
        else:
            examples.pop()
        text, messages, tokens = measure()
    if tokens > budget:
        parts, text, messages, tokens = _shorten_persona(parts, measure_with=lambda p: _measure(
            p, count_tokens, chat, template_overhead), budget=budget)
    return FittedPrompt(text, messages, context, history, examples, tokens,
                        dropped_history=len(parts.history) - len(history),
                        dropped_context=len(parts.context) - len(context),
                        dropped_examples=len(parts.examples) - len(examples))


def _measure(parts: PromptParts, count_tokens, chat: bool, overhead: int, context=(), examples=(), history=()):
    """Render and count a prompt: (text, messages or None, tokens)."""
    if chat:
        messages = render_chat(parts, list(context), list(examples), list(history))
        text = "\n\n".join(m["content"] for m in messages)
        return text, messages, count_tokens(text) + overhead * len(messages)
    text = render_base(parts, list(context), list(examples), list(history))
    return text, None, count_tokens(text)


def _shorten_persona(parts: PromptParts, measure_with, budget: int):
    """Keep the longest leading part of the persona that lets the bare question fit; else PromptTooLong."""
    words = parts.persona.split()
    lo, hi, best = 0, len(words), None
    while lo <= hi:  # binary search on the number of persona words kept
        mid = (lo + hi) // 2
        trial = PromptParts(" ".join(words[:mid]), parts.question)
        text, messages, tokens = measure_with(trial)
        if tokens <= budget:
            best, lo = (trial, text, messages, tokens), mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise PromptTooLong("The question is too long for this model; please shorten it.")
    return best
