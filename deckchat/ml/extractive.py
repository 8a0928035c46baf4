"""ExtractiveEngine: answers with the best retrieved passages; no language model, fully deterministic."""

from __future__ import annotations

import re
import time

from .engine import Engine, GenerationRequest, GenerationResult, Stream

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_LABEL = re.compile(r"^(speaker notes|notes|answer|question)\s*:\s*", re.I)
_STOPWORDS = frozenset(
    "a an and are as at be by do does for from has have how i in is it its of on or "
    "our that the their this to was we what when where which who why will with you your".split()
)
NO_ANSWER = "I could not find anything about that in this deck."


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def split_sentences(text: str) -> list[str]:
    """Sentences and lines of a passage, without labels such as "Speaker notes:"."""
    out = []
    for line in text.splitlines():
        line = _LABEL.sub("", line.strip())
        out.extend(s.strip() for s in _SENTENCE.split(line) if s.strip())
    return out


def best_sentences(question: str, text: str, limit: int = 2) -> str:
    """The passage's sentences that share most words with the question, in their original order."""
    sentences = split_sentences(text)
    if len(sentences) <= limit:
        return " ".join(sentences)
    q = _terms(question)
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(q & _terms(sentences[i])), i))[:limit]
    return " ".join(sentences[i] for i in sorted(ranked))


class ExtractiveEngine(Engine):
    """Answers with the retrieved sentences that best match the question (sources are cited separately)."""

    name = "extractive"
    model_name = "extractive"

    def __init__(self, max_passages: int = 3, sentences_per_passage: int = 2, max_sentences: int = 3):
        self.max_passages, self.sentences, self.max_sentences = max_passages, sentences_per_passage, max_sentences

    def answer(self, question: str, passages: list[tuple[str, str, float]]) -> str:
        """The answer text for a question and its retrieved (source, text, score) passages."""
        q = _terms(question)
        ranked = sorted(passages, key=lambda p: (-float(p[2]), -len(q & _terms(p[1])), p[0]))[: self.max_passages]
        candidates = []  # (words shared with the question, passage rank, position, sentence)
        for rank, (_source, text, _score) in enumerate(ranked):
            for pos, sentence in enumerate(split_sentences(text)):
                candidates.append((len(q & _terms(sentence)), rank, pos, sentence))
        if not candidates:
            return NO_ANSWER
        # The best passage always speaks first; others add only sentences that share words with the question.
        best = max((c for c in candidates if c[1] == 0), key=lambda c: (c[0], -c[2]), default=candidates[0])
        chosen = [best] + sorted((c for c in candidates if c is not best and c[0] > 0),
                                 key=lambda c: (-c[0], c[1], c[2]))[: self.max_sentences - 1]
        seen, parts = set(), []
        for c in sorted(chosen, key=lambda c: (c[1], c[2])):
            if c[3].lower() not in seen:
                seen.add(c[3].lower())
                parts.append(c[3] if c[3].endswith((".", "!", "?")) else c[3] + ".")
        return " ".join(parts)

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
