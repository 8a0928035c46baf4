"""Text handling for retrieval: query normalisation, tokens for BM25, and chunking long text."""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import Stemmer
from rapidfuzz import process
from rapidfuzz.distance import OSA

# Question scaffolding and function words: they match every chunk, so they only add noise to BM25
# and to the "does the deck mention this at all" coverage signal.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing done down during each else ever few for from
    further get got had has have having he her here hers him his how i if in into is it its itself just
    let like me might more most much must my no nor not of off on once only or other our ours out over
    own please same say says she should so some such tell than that the their theirs them then there these
    they this those through to too under until up us very via was way we were what whats when where which
    while who whom why will with would you your yours yourself explain describe mean means meaning
    go goes going come comes coming make makes take takes thing things many big large long often""".split()
)

# Investor shorthand mapped to the words decks spell out, so "CAC" finds "customer acquisition cost".
ABBREVIATIONS = {
    "arr": "annual recurring revenue",
    "mrr": "monthly recurring revenue",
    "cac": "customer acquisition cost",
    "ltv": "lifetime value",
    "clv": "customer lifetime value",
    "tam": "total addressable market",
    "sam": "serviceable addressable market",
    "som": "serviceable obtainable market",
    "gtm": "go to market",
    "kpi": "key performance indicator",
    "yoy": "year over year",
    "mom": "month over month",
    "b2b": "business to business",
    "b2c": "business to consumer",
    "saas": "software as a service",
    "nrr": "net revenue retention",
    "vcs": "version control system",
    "ip": "intellectual property",
    "ceo": "chief executive officer",
    "cto": "chief technology officer",
    "cfo": "chief financial officer",
}

# Shorthand that decks write in capitals and that means one thing there: spelled out in the indexed text too,
# so "monthly recurring revenue" finds "$52k MRR". ("IP", "SAM" or "MOM" in a deck may mean other things.)
DECK_ABBREVIATIONS = ("arr", "mrr", "cac", "ltv", "clv", "tam", "som", "gtm", "kpi", "yoy", "nrr", "saas")

# Investors ask by topic; decks title their slides by the canonical pitch-deck sections. A question that
# touches a topic also looks for that section's usual title words (at a lower weight, see `Query.topics`).
TOPICS = [
    ("founder cofounder team employee staff hire hiring people background experience", "team"),
    ("competitor competition compete alternative incumbent differentiation moat advantage", "competition"),
    ("customer client user adoption pilot growth traction", "traction customers"),
    ("price pricing charge subscription monetise monetize fee", "business model pricing"),
    ("raise raising funding investment investor round seed valuation spend spent proceeds", "ask raising"),
    ("revenue burn runway margin profit profitable financial cash", "financials"),
    ("market tam opportunity size", "market"),
    ("next future plan roadmap later vision", "roadmap"),
    ("sales deal close sell selling channel distribution", "market sales"),
    ("risk wrong threat challenge", "risks"),
    ("timing now", "why now"),
]
_CONTRACTIONS = [
    (re.compile(r"\b(can)'t\b", re.I), r"\1 not"),
    (re.compile(r"\bwon't\b", re.I), "will not"),
    (re.compile(r"n't\b", re.I), " not"),
    (re.compile(r"'re\b", re.I), " are"),
    (re.compile(r"'ve\b", re.I), " have"),
    (re.compile(r"'ll\b", re.I), " will"),
    (re.compile(r"'m\b", re.I), " am"),
    (re.compile(r"'s\b", re.I), ""),
]
# Polite openers carry no content; dropping them keeps the embedding on the actual question.
_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|ok|okay|so|and|quick question)[,!.:]?\s+)*"
    r"(?:(?:can|could|would) you (?:please )?(?:tell me|explain|say|clarify)\s*|"
    r"i (?:would like|want|wanted) to know\s*|please (?:tell me|explain)\s*|"
    r"i(?:'m| am) (?:curious|wondering) (?:about\s*)?)?",
    re.I,
)
_SLIDE_REF = re.compile(r"\bslide\s*(?:number\s*|no\.?\s*|#\s*)?(\d{1,4})\b", re.I)
# Questions that point at what is on screen instead of naming a topic.
_DEICTIC = re.compile(
    r"\b(?:this|that|current|these|those)\s+(?:slide|page|chart|graph|figure|diagram|table|number|numbers|"
    r"image|picture|screen|point|step|code|example|list|one)\b|\bhere\b|\bon screen\b|"
    r"^\s*(?:what|why|how)\s+(?:does|do|is)\s+(?:this|that|it)\b",
    re.I,
)
_TOKEN = re.compile(r"[a-z0-9]+")
_LETTERS = re.compile(r"[A-Za-z]+")
_ABBREVIATION = re.compile(r"\b(?:" + "|".join(ABBREVIATIONS) + r")\b", re.I)
_DECK_ABBREVIATION = re.compile(r"\b(" + "|".join(a.upper() for a in DECK_ABBREVIATIONS) + r")s?\b")
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class Query:
    """A question prepared for retrieval."""

    text: str  # for the embedding: original wording minus polite filler, shorthand spelled out
    plain: str  # the investor's own words minus polite filler
    tokens: tuple[str, ...]  # stemmed content words, abbreviations expanded, for BM25
    topics: tuple[str, ...]  # stemmed title words of the pitch-deck sections the question touches
    slide_ref: int | None  # "slide 7" named in the question
    deictic: bool  # refers to what is on screen ("this chart", "here")


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    """The Snowball English stemmer (cached: construction is not free)."""
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _topic_triggers() -> dict[str, tuple[str, ...]]:
    """Stemmed section title word -> stemmed trigger words."""
    out: dict[str, set[str]] = {}
    for triggers, titles in TOPICS:
        for title in tokenize(titles):
            out.setdefault(title, set()).update(tokenize(triggers))
    return {k: tuple(v) for k, v in out.items()}


def _topic_words() -> tuple[str, ...]:
    """All stemmed section title words."""
    return tuple(_topic_triggers())


def normalise(text: str) -> str:
    """Unicode-normalised, lower-cased text with contractions spelled out."""
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    return text.lower()


def tokenize(text: str, *, expand: bool = False) -> list[str]:
    """Stemmed content words of text; with expand, abbreviations also add their spelled-out words."""
    words = [w for w in _TOKEN.findall(normalise(text)) if w not in STOPWORDS]
    if expand:
        words = words + [x for w in words if w in ABBREVIATIONS for x in ABBREVIATIONS[w].split()]
    return _stemmer().stemWords(words)


def prepare_query(question: str) -> Query:
    """Normalise an investor's question for both halves of the hybrid search."""
    question = " ".join(question.split())
    stripped = plain = _FILLER.sub("", question).strip() or question
    # The embedding model does not know investor shorthand either: spell it out next to the original.
    stripped = _ABBREVIATION.sub(lambda m: f"{m.group(0)} ({ABBREVIATIONS[m.group(0).lower()]})", stripped)
    ref = _SLIDE_REF.search(question)
    tokens = list(dict.fromkeys(tokenize(_SLIDE_REF.sub(" ", stripped), expand=True)))
    return Query(
        text=stripped,
        plain=plain,
        tokens=tuple(tokens),
        topics=tuple(t for t in _topic_words() if set(_topic_triggers()[t]) & set(tokens)),
        slide_ref=int(ref.group(1)) if ref else None,
        deictic=bool(_DEICTIC.search(question)),
    )


@lru_cache(maxsize=1)
def _english() -> Any:
    """pyspellchecker's English word list (loaded once: about 160,000 words)."""
    from spellchecker import SpellChecker  # noqa: PLC0415

    return SpellChecker(distance=1)


ENGLISH_MIN_COUNT = 100  # rarer dictionary entries ("griper", "trian") are likelier typos than words


def _is_english(word: str) -> bool:
    """Whether a lower-case word is a common enough English word to be meant as typed."""
    return _english().word_frequency[word] >= ENGLISH_MIN_COUNT


class DeckSpeller:
    """Puts right the misspelt words of a question ("gross margn") where the deck has the word meant.

    A word is left alone when it is short, holds a digit, is a stopword, or is a deck word or a common English
    word; otherwise it becomes the deck word within one edit (two for words of seven letters or more; swapping
    two neighbouring letters is one edit), the more frequent on ties. Words are only ever corrected into the
    deck's own vocabulary, so a question about something the deck never mentions gains no coverage.
    """

    def __init__(self, texts: list[str]) -> None:
        """Count the words of the deck's texts."""
        counts: dict[str, int] = {}
        for text in texts:
            for word in _TOKEN.findall(normalise(text)):
                if len(word) >= 3 and word.isalpha():
                    counts[word] = counts.get(word, 0) + 1
        self.counts = counts
        self.words = list(counts)

    def _fix(self, word: str) -> str:
        low = word.lower()
        if len(low) < 4 or not low.isalpha() or low in STOPWORDS or low in self.counts or _is_english(low):
            return word
        limit = 1 if len(low) < 7 else 2
        near = process.extract(low, self.words, scorer=OSA.distance, score_cutoff=limit, limit=None)
        if not near:
            return word
        best = min(near, key=lambda m: (m[1], -self.counts[m[0]], m[0]))
        return best[0]

    def correct(self, question: str) -> str:
        """The question with its misspelt words replaced by the deck words meant."""
        return _LETTERS.sub(lambda m: self._fix(m.group(0)), question)


def spell_out(text: str) -> str:
    """Deck text with its capitalised investor shorthand followed by the spelled-out words (for indexing)."""
    return _DECK_ABBREVIATION.sub(lambda m: f"{m.group(0)} ({ABBREVIATIONS[m.group(1).lower()]})", text)


def split_text(text: str, max_words: int) -> list[str]:
    """Split text into pieces of at most max_words words, at paragraph, then sentence, then word bounds."""
    if len(_WORD.findall(text)) <= max_words:
        return [text.strip()] if text.strip() else []
    pieces: list[tuple[str, str]] = []  # (text, separator that joins it to the piece before)
    for para in re.split(r"\n\s*\n", text):
        if len(_WORD.findall(para)) <= max_words:
            pieces.append((para.strip(), "\n\n"))
            continue
        for sentence in _SENTENCE_END.split(para):
            words = _WORD.findall(sentence)
            pieces.extend((" ".join(words[i : i + max_words]), " ") for i in range(0, len(words), max_words))
    chunks: list[str] = []
    size = 0
    for piece, sep in pieces:
        n = len(_WORD.findall(piece))
        if not n:
            continue
        if chunks and size + n <= max_words:
            chunks[-1] += sep + piece
            size += n
        else:
            chunks.append(piece)
            size = n
    return chunks


def split_sentences(text: str, min_words: int = 3) -> list[str]:
    """Sentences and bullet lines of text with at least min_words words (shorter ones say too little)."""
    parts = (p.strip(" -*\u2022\t") for line in text.split("\n") for p in _SENTENCE_END.split(line))
    return [p for p in parts if len(_WORD.findall(p)) >= min_words]


def covered_words(question: str, vocabulary: set[str]) -> tuple[int, int]:
    """(covered, total) content words of a question that the deck's vocabulary has, directly, through an
    abbreviation's spelled-out words, or through a pitch-deck section the word points to."""
    triggers = _topic_triggers()
    words = list(dict.fromkeys(tokenize(question)))
    covered = 0
    for word in words:
        raw = word.lower()
        spelled = tokenize(ABBREVIATIONS.get(raw, "")) if raw in ABBREVIATIONS else []
        topical = [t for t, trig in triggers.items() if word in trig]
        if word in vocabulary or (spelled and all(w in vocabulary for w in spelled)) or any(
            t in vocabulary for t in topical
        ):
            covered += 1
    return covered, len(words)


class Bm25:
    """Okapi BM25 (Lucene's idf, k1=1.5, b=0.75) over tokenised documents, scored by the bm25s library, in the
    classic scale: a word found once in a document of average length scores its idf."""

    K1 = 1.5
    B = 0.75

    def __init__(self, docs: list[list[str]]) -> None:
        """Index the documents (lists of tokens, as `tokenize` makes them)."""
        import bm25s  # noqa: PLC0415

        self.size = len(docs)
        self.df: dict[str, int] = {}
        for doc in docs:
            for word in set(doc):
                self.df[word] = self.df.get(word, 0) + 1
        self._index = None
        if self.df:
            self._index = bm25s.BM25(method="lucene", k1=self.K1, b=self.B)
            self._index.index([list(d) for d in docs], show_progress=False)

    def idf(self, word: str) -> float:
        """Lucene's idf; a word no document has gets the highest."""
        df = self.df.get(word, 0)
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, tokens: tuple[str, ...] | list[str], weight: float = 1.0) -> np.ndarray:
        """BM25 score of every document for the tokens, times weight (documents, float32)."""
        known = [w for w in dict.fromkeys(tokens) if w in self.df]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        # bm25s leaves out Lucene's constant (k1 + 1) numerator factor; put it back so scores compare with idf.
        return (self._index.get_scores(known) * (weight * (self.K1 + 1))).astype(np.float32)

    def ideal(self, tokens: tuple[str, ...] | list[str]) -> float:
        """The score of a document of average length holding each token once: sum of the tokens' idf."""
        return sum(self.idf(w) for w in dict.fromkeys(tokens))
