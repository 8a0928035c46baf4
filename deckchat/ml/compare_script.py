"""Comparison scripts (YAML) and the prompts they produce.

A script says who the bot is (persona, short or long template with few-shot Q&A), which questions are asked
in order, whether each answer joins the next question's context (a conversation), the generation preset per
model, how many runs per model, and optionally a deck whose retrieval supplies context. Prompts are fitted with
`prompts.fit_prompt` (the chat chain's own fitting); where LangChain is not installed (the GPU benchmark
machine), an equivalent plain renderer takes over, checked against it by the tests.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

TEMPLATES = ("short", "long")
EXAMPLE_SCRIPT = "investor.yaml"


class ScriptError(ValueError):
    """The script is not valid; the message says what to fix."""


@dataclass(frozen=True)
class Question:
    """One scripted question, with the slide on screen when it was asked (replays)."""

    text: str
    slide: int | None = None


@dataclass(frozen=True)
class CompareScript:
    """A parsed comparison script."""

    name: str
    questions: list[Question]
    persona: str = "You are the CEO of {title}. Answer the investor's questions in a few sentences."
    template: str = "long"                   # "short": persona only; "long": persona and few-shot examples
    examples: list[tuple[str, str]] = field(default_factory=list)
    accumulate: bool = True                  # each answer joins the context of the next question
    preset: str = "sampling"
    presets: dict[str, str] = field(default_factory=dict)  # model name -> preset
    runs: int = 1
    max_new_tokens: int = 60
    title: str = "the company"               # fills {title} in the persona; a deck's title wins
    material: str = ""                       # fixed context when no deck is given
    deck: int | None = None                  # retrieval from this deck supplies the context
    retrieval_k: int = 3
    source: str = ""                         # file name, "example" or "replay"

    def preset_for(self, model: str) -> str:
        """The generation preset of a model (by the name it was given, or its folder's name)."""
        return self.presets.get(model) or self.presets.get(Path(model).name) or self.preset

    def to_dict(self) -> dict[str, Any]:
        """The script as it goes into the report."""
        return {"name": self.name, "source": self.source, "template": self.template, "persona": self.persona,
                "examples": [{"question": q, "answer": a} for q, a in self.examples], "accumulate": self.accumulate,
                "preset": self.preset, "presets": dict(self.presets), "runs": self.runs,
                "max_new_tokens": self.max_new_tokens, "title": self.title, "material": self.material,
                "deck": self.deck, "retrieval_k": self.retrieval_k,
                "questions": [{"text": q.text, "slide": q.slide} for q in self.questions]}


def _int(data: dict, key: str, default: int | None, low: int, high: int) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScriptError(f"{key} must be a whole number from {low} to {high}")
    return value


def parse_script(data: str | dict, source: str = "") -> CompareScript:
    """A CompareScript from YAML text or an already-parsed mapping; ScriptError when it is not valid."""
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.YAMLError as exc:
            raise ScriptError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScriptError("a script is a YAML mapping with at least `questions`")
    known = {"name", "description", "persona", "template", "examples", "questions", "accumulate", "preset",
             "presets", "runs", "max_new_tokens", "title", "material", "deck", "retrieval_k"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ScriptError(f"unknown key(s): {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}")
    questions = []
    for item in data.get("questions") or []:
        if isinstance(item, dict):
            text, slide = item.get("text") or item.get("question"), item.get("slide")
        else:
            text, slide = item, None
        if not isinstance(text, str) or not text.strip():
            raise ScriptError("each question is a non-empty string (or a mapping with `text` and `slide`)")
        questions.append(Question(" ".join(text.split()), slide if isinstance(slide, int) else None))
    if not questions:
        raise ScriptError("the script has no questions")
    template = data.get("template", "long")
    if template not in TEMPLATES:
        raise ScriptError(f"template must be one of {', '.join(TEMPLATES)}")
    examples = []
    for item in data.get("examples") or []:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) \
                or not isinstance(item.get("answer"), str):
            raise ScriptError("each example is a mapping with `question` and `answer`")
        examples.append((item["question"].strip(), item["answer"].strip()))
    presets = data.get("presets") or {}
    if not isinstance(presets, dict) or not all(isinstance(v, str) for v in presets.values()):
        raise ScriptError("presets maps a model name to a preset name")
    for name in [data.get("preset", "sampling"), *presets.values()]:
        _check_preset(name)
    persona = data.get("persona", CompareScript.persona)
    if not isinstance(persona, str) or not persona.strip():
        raise ScriptError("persona must be a non-empty string")
    return CompareScript(
        name=str(data.get("name") or source or "comparison"), questions=questions, persona=persona.strip(),
        template=template, examples=examples, accumulate=bool(data.get("accumulate", True)),
        preset=data.get("preset", "sampling"), presets={str(k): v for k, v in presets.items()},
        runs=_int(data, "runs", 1, 1, 100), max_new_tokens=_int(data, "max_new_tokens", 60, 1, 4096),
        title=str(data.get("title") or "the company"), material=str(data.get("material") or "").strip(),
        deck=_int(data, "deck", None, 1, 2**62), retrieval_k=_int(data, "retrieval_k", 3, 1, 20), source=source)


def _check_preset(name: Any) -> None:
    from .models import PRESETS  # noqa: PLC0415 - models.py imports nothing heavy at module level

    if name not in PRESETS:
        raise ScriptError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")


def load_script(path: str | Path | None = None) -> CompareScript:
    """Read a script file; None reads the example shipped with Deck Chat."""
    if path is None:
        text = resources.files("deckchat.ml").joinpath("compare_scripts", EXAMPLE_SCRIPT).read_text("utf-8")
        return parse_script(text, "example")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read {path}: {exc.strerror}") from None
    return parse_script(text, Path(path).name)


def replay_script(base: CompareScript, questions: list[tuple[str, int | None]], deck: int) -> CompareScript:
    """The base script's persona and settings with investors' real questions; each question stands alone."""
    if not questions:
        raise ScriptError("nobody has asked this deck's assistant a question yet")
    return replace(base, name=f"Replay of investors' questions on deck {deck}", source="replay", deck=deck,
                   questions=[Question(q, s) for q, s in questions], accumulate=False)


# ---- prompts ----

@dataclass
class BuiltPrompt:
    """A fitted prompt: text for base models, messages for chat models, and what fitting left out."""

    text: str
    messages: list[dict[str, str]] | None
    tokens: int
    history_turns: int
    dropped_history: int
    dropped_context: int
    dropped_examples: int


def build_prompt(script: CompareScript, question: str, context: list[dict], history: list[tuple[str, str]],
                 count_tokens: Callable[[str], int], budget: int, chat: bool, title: str | None = None
                 ) -> BuiltPrompt:
    """Persona, fixed context, examples (long template) and this run's history, fitted into `budget` tokens."""
    persona = script.persona.replace("{title}", title or script.title)
    examples = list(script.examples) if script.template == "long" else []
    try:
        from .prompts import ContextBlock, PromptParts, fit_prompt  # noqa: PLC0415 - needs LangChain
    except ImportError:
        fit_prompt = None
    if fit_prompt is None:
        fitted = plain_fit(persona, question, context, examples, history, count_tokens, budget, chat)
    else:
        blocks = [ContextBlock(c["source"], c["text"], float(c.get("score") or 0.0)) for c in context]
        fitted = fit_prompt(PromptParts(persona, question, blocks, examples, list(history)), count_tokens, budget,
                            chat=chat)
    return BuiltPrompt(fitted.text, fitted.messages, fitted.tokens, len(fitted.history), fitted.dropped_history,
                       fitted.dropped_context, fitted.dropped_examples)


@dataclass
class _Plain:
    text: str
    messages: list[dict[str, str]] | None
    history: list
    tokens: int
    dropped_history: int
    dropped_context: int
    dropped_examples: int


def plain_render(persona: str, question: str, context: list[dict], turns: list[tuple[str, str]], chat: bool):
    """The same text (and chat messages) as `prompts.render_base`/`render_chat`, without LangChain."""
    material = "\n\n".join(f"[{c['source']}] {c['text'].strip()}" for c in context) or "(none)"
    if chat:
        messages = [{"role": "system", "content": f"{persona}\n\nMaterial:\n{material}"}]
        for q, a in turns:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": question})
        return "\n\n".join(m["content"] for m in messages), messages
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in turns)
    return f"{persona}\n\nMaterial:\n{material}\n\n{shots}Question: {question}\nAnswer:", None


def plain_fit(persona: str, question: str, context: list[dict], examples: list, history: list,
              count_tokens: Callable[[str], int], budget: int, chat: bool) -> _Plain:
    """`prompts.fit_prompt`'s order without LangChain: oldest history, weakest context, examples, persona."""
    ctx, ex, hist = list(context), list(examples), list(history)

    def measure(p: str = persona):
        text, messages = plain_render(p, question, ctx, [*ex, *hist], chat)
        return text, messages, count_tokens(text)

    text, messages, tokens = measure()
    while tokens > budget and (hist or ctx or ex):
        (hist.pop(0) if hist else ctx.pop() if ctx else ex.pop())
        text, messages, tokens = measure()
    words = persona.split()
    while tokens > budget and words:  # rare: the bare question barely fits; drop persona words from the end
        words = words[:-max(1, len(words) // 8)]
        text, messages, tokens = measure(" ".join(words))
    if tokens > budget:
        raise ValueError("The question is too long for this model; please shorten it.")
    return _Plain(text, messages, hist, tokens, len(history) - len(hist), len(context) - len(ctx),
                  len(examples) - len(ex))
