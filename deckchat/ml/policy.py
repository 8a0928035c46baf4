"""Answers decided before any model runs: the FAQ shortcut and the owner's guardrails."""
from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Callable, Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
FAQ_TEXT_RATIO = 0.88       # near-identical wording (typos, punctuation, word order nudges)
FAQ_COSINE = 0.92           # the same question in other words
GUARDRAIL_COSINE = 0.55     # a question about the topic, however phrased
_STOP = frozenset("a an and are as at be by can could do does for from has have how i in is it its me of on or "
                  "our please tell that the their them this to us was we what when where which who why will "
                  "with would you your".split())


def normalise(text: str) -> str:
    """Lower-case words only, so punctuation and spacing never decide a match."""
    return " ".join(_WORD.findall(text.lower()))


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


@dataclass(frozen=True)
class FaqMatch:
    """The FAQ item a question matches and how closely."""

    index: int
    question: str
    answer: str
    similarity: float


def match_faq(question: str, faq: Sequence[tuple[str, str]], embed: Callable[[list[str]], np.ndarray] | None = None
              ) -> FaqMatch | None:
    """The FAQ item this question asks almost exactly, if any (by wording, then by meaning)."""
    if not faq:
        return None
    q = normalise(question)
    ratios = [SequenceMatcher(None, q, normalise(fq)).ratio() for fq, _ in faq]
    best = int(np.argmax(ratios))
    if ratios[best] >= FAQ_TEXT_RATIO:
        return FaqMatch(best, faq[best][0], faq[best][1], ratios[best])
    if embed is None:
        return None
    vectors = embed([question, *[fq for fq, _ in faq]])
    cosines = vectors[1:] @ vectors[0]
    best = int(np.argmax(cosines))
    if cosines[best] >= FAQ_COSINE:
        return FaqMatch(best, faq[best][0], faq[best][1], float(cosines[best]))
    return None


def match_guardrail(question: str, guardrails: Sequence[tuple[str, str]],
                    embed: Callable[[list[str]], np.ndarray] | None = None) -> tuple[str, str] | None:
    """The (topic, reply) guardrail a question touches: all the topic's words appear, or the meaning is close."""
    if not guardrails:
        return None
    words = _terms(question)
    stems = {w[:5] for w in words}
    for topic, reply in guardrails:
        topic_terms = _terms(topic)
        if topic_terms and all(t in words or t[:5] in stems for t in topic_terms):
            return topic, reply
    if embed is None:
        return None
    vectors = embed([question, *[topic for topic, _ in guardrails]])
    cosines = vectors[1:] @ vectors[0]
    best = int(np.argmax(cosines))
    return tuple(guardrails[best]) if cosines[best] >= GUARDRAIL_COSINE else None
