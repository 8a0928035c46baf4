"""Hybrid retrieval over one deck's index, and plain vector search as the baseline it is measured against.

Ranking: a weighted sum of four scores of each source, all on a 0..1-ish scale that does not depend on the
deck's size: its best sentence's cosine, its best whole-chunk cosine, its title's cosine (an FAQ question or a
section heading is often the question in other words) and its BM25 score over stemmed words (investor
shorthand spelled out, pitch-deck section words added) divided by what a document holding each question word
once would score. The slide on screen only breaks near-ties, unless the question points at it ("this chart");
a slide the question names ("slide 7") comes first.

Answerability: a logistic model of the same scores plus the share of the question's words the deck knows,
evaluated on the best few sources before any slide preference; the question is answerable when the
best-supported of them is. Both were fitted on the dev decks of bench/retrieval.py only (see its notes).

Per deck, the index's unit-norm embedding matrix, the BM25 postings and the chunk-to-source layout are built
once and cached with the loaded index; a question costs one embedding, one matrix-vector product and a few
vector operations.

Stale or missing indexes raise (StaleIndexError, IndexMissingError) unless the caller passes rebuild=True,
which rebuilds synchronously first: a stale index is never served.
"""
from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..domain.content import DeckContent
from .index import IndexMissingError, LoadedIndex, StaleIndexError, build_index, load_index, query_cosines
from .lexical import Bm25, Query, covered_words, prepare_query, spell_out, tokenize

# Weights of the ranking scores: a pairwise logistic ranker fitted on the dev decks only, rounded
# (`python bench/retrieval.py --fit` refits them and reports leave-one-deck-out figures).
WEIGHTS = {"sentence": 0.24, "body": 0.24, "title": 0.21, "lexical": 0.31}
TOPIC_WEIGHT = 0.5  # section title words a topic implies count less than the investor's own words
SLIDE_MARGIN = 0.02  # the slide on screen comes first within this of the best source (set by hand)
# Logistic model of "this source answers the question" (balanced classes, L2 C=0.3), fitted on the dev decks:
# positives are the expected source of each answerable question, negatives the top sources of unanswerable
# ones. Every feature is a cosine or a share, so the model carries over to decks of any size.
CALIBRATION = {"bias": -1.99, "sentence": 0.80, "body": 0.68, "lexical": 1.32, "deck_coverage": 1.27}
ANSWERABLE_AT = 0.5
SUPPORT_K = 3  # answerability looks at this many of the best sources

_state_lock = threading.Lock()


@dataclass(frozen=True)
class Hit:
    """One retrieved source with the text the prompt may quote."""

    source: str
    slide: int | None
    score: float
    text: str


@dataclass
class Retrieval:
    """The best sources for a question, and whether any of them is good enough to answer from."""

    results: list[Hit]
    answerable: bool
    confidence: float = 0.0
    features: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The CLI/API shape: results, answerable and the confidence behind it."""
        return {
            "results": [asdict(h) for h in self.results],
            "answerable": self.answerable,
            "confidence": round(self.confidence, 4),
        }


class _ViewMax:
    """Best chunk score per source over the chunks of one view, as one `np.maximum.reduceat`."""

    def __init__(self, loaded: LoadedIndex, view: str) -> None:
        """Group the view's chunks by source."""
        chunks = np.flatnonzero(loaded.view_masks[view])
        self.order = chunks[np.argsort(loaded.source_index[chunks], kind="stable")]
        owners = loaded.source_index[self.order]
        self.starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if len(owners) else owners
        self.owners = owners[self.starts] if len(owners) else owners

    def __call__(self, scores: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """(sources,) best score of each source's chunks; fallback where a source has none of this view."""
        out = fallback.copy()
        if len(self.order):
            out[self.owners] = np.maximum.reduceat(scores[self.order], self.starts)
        return out


class _DeckSearch:
    """What retrieval needs of one loaded index beyond its embeddings, built once per index."""

    def __init__(self, loaded: LoadedIndex) -> None:
        """BM25 over each source's title and text, the deck's vocabulary and per-view score grouping."""
        corpus = [tokenize(spell_out(f"{u.title}\n{u.text}")) for u in loaded.units.values()]
        self.bm25 = Bm25(corpus)
        self.vocabulary = set().union(*corpus) if corpus else set()
        self.views = {view: _ViewMax(loaded, view) for view in ("body", "sentence", "title")}
        self.bodies = {source: np.flatnonzero((loaded.source_index == i) & loaded.view_masks["body"])
                       for i, source in enumerate(loaded.source_names)}
        self.position = {source: i for i, source in enumerate(loaded.source_names)}


def _search(loaded: LoadedIndex) -> _DeckSearch:
    """The loaded index's search structures, built on first use."""
    if loaded.search is None:
        with _state_lock:
            if loaded.search is None:
                loaded.search = _DeckSearch(loaded)
    return loaded.search


def _load(content: DeckContent, root: Path, embed_model: str | None, rebuild: bool) -> LoadedIndex:
    """The deck's current index; rebuilt first when asked to and it is missing or stale."""
    try:
        return load_index(content, root, embed_model=embed_model)
    except (IndexMissingError, StaleIndexError):
        if not rebuild:
            raise
    build_index(content, root, embed_model=embed_model)
    return load_index(content, root, embed_model=embed_model)


def _hit_text(loaded: LoadedIndex, search: _DeckSearch, source: str, cosines: np.ndarray) -> str:
    """Whole slides and FAQ answers; for long document sections the best-matching chunk."""
    unit = loaded.units[source]
    idx = search.bodies[source]
    if unit.kind != "doc" or len(idx) <= 1:
        return unit.text
    return loaded.chunk_texts[int(idx[np.argmax(cosines[idx])])]


def source_scores(search: _DeckSearch, query: Query, cosines: np.ndarray) -> dict[str, np.ndarray]:
    """The ranking scores of every source, (sources,) each: sentence, body, title and lexical."""
    body = search.views["body"](cosines, np.full(len(search.position), -1.0, dtype=np.float32))
    # A unit too short to have sentences, or without a title, counts with its body there.
    scores = {
        "sentence": search.views["sentence"](cosines, body),
        "body": body,
        "title": search.views["title"](cosines, body),
    }
    lexical = search.bm25.scores(query.tokens)
    if query.topics:
        lexical += search.bm25.scores(query.topics, TOPIC_WEIGHT)
    ideal = search.bm25.ideal(query.tokens)
    scores["lexical"] = np.minimum(1.0, lexical / ideal) if ideal else np.zeros_like(lexical)
    return scores


def source_signals(content: DeckContent, question: str, root: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every source's ranking scores and the question's deck coverage (as "deck_coverage", (sources,) like the
    others): what WEIGHTS and CALIBRATION are fitted on (bench/retrieval.py --fit)."""
    loaded = _load(content, root, None, False)
    search = _search(loaded)
    query = prepare_query(question)
    scores = source_scores(search, query, query_cosines(loaded, query.text))
    covered, total = covered_words(query.plain, search.vocabulary)
    scores["deck_coverage"] = np.full(len(loaded.source_names), covered / total if total else 0.0)
    return loaded.source_names, scores


def confidence(features: dict) -> float:
    """Calibrated probability that a source answers the question, from its `Retrieval.features`."""
    z = CALIBRATION["bias"] + sum(CALIBRATION[k] * features[k] for k in CALIBRATION if k != "bias")
    return 1.0 / (1.0 + math.exp(-z))


def retrieve(
    content: DeckContent,
    question: str,
    root: Path,
    *,
    k: int = 3,
    slide: int | None = None,
    embed_model: str | None = None,
    rebuild: bool = False,
) -> Retrieval:
    """The k best sources of this deck for a question, the slide on screen favoured, with answerability."""
    loaded = _load(content, root, embed_model, rebuild)
    if not loaded.chunk_texts or not question.strip():
        return Retrieval([], False)
    search = _search(loaded)
    query = prepare_query(question)
    cosines = query_cosines(loaded, query.text)  # (chunks,)
    scores = source_scores(search, query, cosines)
    fused = sum(weight * scores[name] for name, weight in WEIGHTS.items())  # (sources,)

    names = loaded.source_names
    order = [int(i) for i in np.argsort(-fused, kind="stable")]
    first = None
    if query.slide_ref is not None and f"slide:{query.slide_ref}" in search.position:
        first = search.position[f"slide:{query.slide_ref}"]
    elif slide is not None and f"slide:{slide}" in search.position:
        on_screen = search.position[f"slide:{slide}"]
        if query.deictic or fused[order[0]] - fused[on_screen] <= SLIDE_MARGIN:
            first = on_screen
    ranked = ([first] if first is not None else []) + [i for i in order if i != first]

    # Answerability is judged on the best-supported of the top sources as the searches ranked them: the slide
    # on screen must neither lend a vague question support nor hide the source that answers it.
    covered, total = covered_words(query.plain, search.vocabulary)
    coverage = covered / total if total else 0.0
    support = []
    for i in order[:SUPPORT_K]:
        features = {name: round(float(values[i]), 4) for name, values in scores.items()}
        features["deck_coverage"] = round(coverage, 4)
        support.append((confidence(features), names[i], features))
    conf, best, features = max(support, key=lambda s: s[0])
    features = {**features, "source": best, "deictic": query.deictic}
    # A question about the slide on screen, or a slide it names, is answered by that slide however vague it is.
    pointed = first is not None and (query.deictic or query.slide_ref is not None)
    hits = [Hit(names[i], loaded.units[names[i]].slide, round(float(fused[i]), 6),
                _hit_text(loaded, search, names[i], cosines)) for i in ranked[: max(1, k)]]
    return Retrieval(hits, pointed or conf >= ANSWERABLE_AT, 1.0 if pointed else conf, features)


def vector_search(content: DeckContent, question: str, root: Path, *, k: int = 3) -> Retrieval:
    """Plain llama-index vector search, one hit per source: the baseline the benchmark compares with."""
    loaded = _load(content, root, None, False)
    from llama_index.core.vector_stores import ExactMatchFilter, MetadataFilters  # noqa: PLC0415

    # Whole chunks only: the per-sentence and title vectors belong to the hybrid retriever.
    only_body = MetadataFilters(filters=[ExactMatchFilter(key="view", value="body")])
    retriever = loaded.vector_index.as_retriever(similarity_top_k=max(1, k) * 5, filters=only_body)
    hits: list[Hit] = []
    for scored in retriever.retrieve(question):
        source = scored.node.metadata["source"]
        if all(h.source != source for h in hits):
            hits.append(Hit(source, scored.node.metadata.get("slide"), float(scored.score or 0.0),
                            scored.node.get_content()))
    hits = hits[:k]
    return Retrieval(hits, bool(hits), hits[0].score if hits else 0.0)
