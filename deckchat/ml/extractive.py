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
# A line of code or markup ("font-size: 1.5em;", "<h1>", "x = 1"): quoted only when it shares several words
# with the question (a question about that very code), never as filler.
_CODE = re.compile(r"[{};<>]|^\s*[\w.-]+\s*[:=]\s*\S+\s*;?\s*$")
MIN_WORDS = 3  # shorter pieces ("1.", "Questions?") say nothing on their own


def _terms(text: str) -> set[str]:
    """Content words of a text (single characters such as "1" or "a" match too much to count)."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def _closed(sentence: str) -> str:
    """A sentence with a full stop unless it already ends in punctuation (code keeps its own)."""
    return sentence + "." if sentence[-1:].isalnum() else sentence


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
        """The answer text for a question and its retrieved (source, text, score) passages.

        Only sentences that share words with the question are quoted, the best passage's best one first;
        when none does, the best passage's first sentence of prose stands alone (retrieval found it, so it is
        the likeliest answer). Fragments are never quoted, and lines of code only for a question about them.
        """
        q = _terms(question)
        ranked = sorted(passages, key=lambda p: (-float(p[2]), -len(q & _terms(p[1])), p[0]))[: self.max_passages]
        candidates = []  # (words shared with the question, passage rank, position, sentence)
        for rank, (_source, text, _score) in enumerate(ranked):
            for pos, sentence in enumerate(split_sentences(text)):
                shared = len(q & _terms(sentence))
                if len(_WORD.findall(sentence.lower())) < MIN_WORDS or (_CODE.search(sentence) and shared < 2):
                    continue
                candidates.append((shared, rank, pos, sentence))
        if not candidates:
            return NO_ANSWER
        matching = [c for c in candidates if c[0] > 0]
        if not matching:
            best = min(candidates, key=lambda c: (c[1], c[2]))
            return _closed(best[3])
        # The best passage speaks first when it has a matching sentence; others add their best matches.
        first = [c for c in matching if c[1] == 0] or matching
        best = max(first, key=lambda c: (c[0], -c[1], -c[2]))
        floor = max(1, best[0] // 2)  # companions must match at least half as well
        chosen = [best] + sorted((c for c in matching if c is not best and c[0] >= floor),
                                 key=lambda c: (-c[0], c[1], c[2]))[: self.max_sentences - 1]
        seen, parts = set(), []
        for c in sorted(chosen, key=lambda c: (c[1], c[2])):
            if c[3].lower() not in seen:
                seen.add(c[3].lower())
                parts.append(_closed(c[3]))
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
