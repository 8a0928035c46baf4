"""Hybrid retrieval over one deck's index, and plain vector search as the baseline it is measured against.

Ranking: a linear model over four scores of each source, all on a 0..1-ish scale that does not depend on the
deck's size: its best sentence's cosine, its best whole-chunk cosine, its title's cosine (an FAQ question or a
section heading is often the question in other words) and its BM25 score over stemmed words (investor
shorthand spelled out, pitch-deck section words added) divided by what a document holding each question word
once would score. Each score also enters as its reciprocal rank among the question's sources (1 / (2 + rank), as
in reciprocal rank fusion), so that one signal that puts a source clearly first is not drowned by three that
barely separate any. The slide on screen only breaks near-ties, unless the question points at it ("this
chart"); a slide the question names ("slide 7") comes first.

Answerability: a logistic model of the same scores, the share of the question's words the deck knows and how
far the source's sentence cosine stands above the deck's median source for this question (some questions are
close to everything, some to nothing), evaluated on the best few sources before any slide preference; the
question is answerable when the best-supported of them is. Both were fitted on the dev decks of
bench/retrieval.py only (see its notes).

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
from .lexical import Bm25, DeckSpeller, Query, covered_words, prepare_query, spell_out, tokenize

SIGNALS = ("sentence", "body", "title", "lexical")
# Weights of the ranking features (`ranking_features`): a pairwise logistic ranker fitted on the dev decks only,
# scaled to absolute sum 1 and rounded (`python bench/retrieval.py --fit` refits them and reports
# leave-one-deck-out figures).
WEIGHTS = {"sentence": 0.18, "body": 0.15, "title": 0.07, "lexical": 0.16,
           "rank_sentence": 0.13, "rank_body": 0.13, "rank_title": 0.07, "rank_lexical": 0.11}
TOPIC_WEIGHT = 0.5  # section title words a topic implies count less than the investor's own words
SLIDE_MARGIN = 0.02  # the slide on screen comes first within this of the best source (set by hand)
# Logistic model of "this source answers the question" (balanced classes, L2 C=0.3), fitted on the dev decks:
# positives are the expected source of each answerable question, negatives the top sources of unanswerable
# ones. Every feature is a cosine, a difference of cosines or a share, so the model carries over to decks of
# any size.
CALIBRATION = {"bias": -2.84, "sentence": 1.27, "body": 0.87, "lexical": 1.97, "deck_coverage": 1.66,
               "sentence_spread": 1.05}
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
        texts = [spell_out(f"{u.title}\n{u.text}") for u in loaded.units.values()]
        corpus = [tokenize(text) for text in texts]
        self.speller = DeckSpeller(texts)
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


def _reciprocal_ranks(values: np.ndarray) -> np.ndarray:
    """1 / (2 + rank) of each value among all of them, rank 1 the largest (ties keep source order)."""
    order = np.argsort(-values, kind="stable")
    out = np.empty(len(values), dtype=np.float32)
    out[order] = 1.0 / (2.0 + np.arange(1, len(values) + 1, dtype=np.float32))
    return out


def ranking_features(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The scores of `source_scores` plus each one's reciprocal rank among the sources ("rank_<score>"): the
    features WEIGHTS weigh, (sources,) each."""
    out = dict(scores)
    for name in SIGNALS:
        out[f"rank_{name}"] = _reciprocal_ranks(scores[name])
    return out


def _spread(values: np.ndarray) -> np.ndarray:
    """Each source's value less the median over the deck's sources."""
    return values - np.median(values)


def fuse(features: dict[str, np.ndarray]) -> np.ndarray:
    """(sources,) ranking score: the WEIGHTS-weighted sum of the ranking features."""
    return sum(weight * features[name] for name, weight in WEIGHTS.items())


def _signals(loaded: LoadedIndex, question: str) -> tuple[_DeckSearch, Query, np.ndarray, dict[str, np.ndarray]]:
    """The deck's search structures, the prepared question (misspellings put right), its cosine with every chunk
    and every source's ranking features with the answerability ones ("sentence_spread", "deck_coverage")."""
    search = _search(loaded)
    query = prepare_query(search.speller.correct(question))
    cosines = query_cosines(loaded, query.text)  # (chunks,)
    scores = ranking_features(source_scores(search, query, cosines))
    scores["sentence_spread"] = _spread(scores["sentence"])
    covered, total = covered_words(query.plain, search.vocabulary)
    scores["deck_coverage"] = np.full(len(loaded.source_names), covered / total if total else 0.0)
    return search, query, cosines, scores


def source_signals(content: DeckContent, question: str, root: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every source's ranking and answerability features, (sources,) each: what WEIGHTS and CALIBRATION are
    fitted on (bench/retrieval.py --fit)."""
    loaded = _load(content, root, None, False)
    return loaded.source_names, _signals(loaded, question)[3]


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
    search, query, cosines, scores = _signals(loaded, question)
    fused = fuse(scores)  # (sources,)

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
    support = []
    for i in order[:SUPPORT_K]:
        features = {name: round(float(scores[name][i]), 4) for name in (*SIGNALS, "sentence_spread", "deck_coverage")}
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
