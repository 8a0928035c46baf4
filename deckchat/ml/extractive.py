"""ExtractiveEngine: answers with the best retrieved passages; no language model, fully deterministic."""

from __future__ import annotations

import re
import time

from .engine import Engine, GenerationRequest, GenerationResult, Stream

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STOPWORDS = frozenset(
    "a an and are as at be by do does for from has have how i in is it its of on or "
    "our that the their this to was we what when where which who why will with you your".split()
)
NO_ANSWER = "I could not find anything about that in this deck."


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def best_sentences(question: str, text: str, limit: int = 2) -> str:
    """The passage's sentences that share most words with the question, in their original order."""
    sentences = [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]
    if len(sentences) <= limit:
        return " ".join(sentences)
    q = _terms(question)
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(q & _terms(sentences[i])), i))[:limit]
    return " ".join(sentences[i] for i in sorted(ranked))


class ExtractiveEngine(Engine):
    """Quotes the top passages (by retrieval score, then word overlap with the question)."""

    name = "extractive"
    model_name = "extractive"

    def __init__(self, max_passages: int = 3, sentences_per_passage: int = 2):
        self.max_passages, self.sentences = max_passages, sentences_per_passage

    def answer(self, question: str, passages: list[tuple[str, str, float]]) -> str:
        """The answer text for a question and its retrieved (source, text, score) passages."""
        q = _terms(question)
        ranked = sorted(passages, key=lambda p: (-float(p[2]), -len(q & _terms(p[1])), p[0]))
        parts = []
        for source, text, _score in ranked[: self.max_passages]:
            snippet = best_sentences(question, text, self.sentences)
            if snippet:
                parts.append(f"[{source}] {snippet}")
        return "\n\n".join(parts) if parts else NO_ANSWER

    def submit(self, request: GenerationRequest) -> Stream:
        """Answer at once; the stream still yields word-sized deltas like a model would."""
        started = time.perf_counter()
        stream = Stream(request)
        text = self.answer(request.question or request.prompt, list(request.passages))
        pieces = re.findall(r"\s*\S+", text)
        for piece in pieces:
            stream.push(piece)
        stream.finish(
            GenerationResult(
                text=text,
                finish_reason="stop",
                prompt_tokens=len((request.question or request.prompt).split()),
                completion_tokens=len(pieces),
                ttft_s=0.0,
                total_s=time.perf_counter() - started,
                engine=self.name,
                model=self.model_name,
            )
        )
        return stream
