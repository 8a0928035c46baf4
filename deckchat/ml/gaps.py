"""Knowledge gaps grouped by meaning (sentence embeddings); closing one so the bot answers it next time."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..domain.gaps import Gap, GapGroup, close_gap, content_words, group_gaps
from ..models import Deck, FaqItem
from .indexing import reindex

log = logging.getLogger(__name__)

COSINE_THRESHOLD = 0.72  # all-MiniLM-L6-v2: paraphrases of one question sit above, neighbouring topics below
LEXICAL_THRESHOLD = 0.5
MAX_EMBEDDED = 500  # distinct wordings embedded per page view; beyond that, word overlap alone


def group_by_meaning(gaps: Sequence[Gap], embed_model: str | None = None) -> list[GapGroup]:
    """Group gaps whose questions mean the same (cosine of embeddings) or share most words."""
    if not gaps:
        return []
    wordings = list(dict.fromkeys(g.question for g in gaps))
    position = {w: i for i, w in enumerate(wordings)}
    words = [content_words(w) for w in wordings]
    cosines = None
    if len(wordings) <= MAX_EMBEDDED:
        try:
            from .index import embed  # noqa: PLC0415 - loads the embedding model on first use

            vectors = embed(wordings, embed_model)
            cosines = vectors @ vectors.T
        except Exception:  # noqa: BLE001 - grouping by shared words still gives the owner a usable list
            log.exception("embedding gap questions failed; grouping by shared words")

    def similar(a: str, b: str) -> bool:
        i, j = position[a], position[b]
        if words[i] and words[j] and len(words[i] & words[j]) / len(words[i] | words[j]) >= LEXICAL_THRESHOLD:
            return True
        return cosines is not None and float(cosines[i, j]) >= COSINE_THRESHOLD

    return group_gaps(gaps, similar)


def answer_gap(
    deck: Deck,
    exchange_ids: Sequence[int],
    question: str,
    answer: str,
    instance_path: str | Path,
    embed_model: str | None = None,
) -> tuple[FaqItem, list[str]]:
    """Close gaps with an FAQ answer and rebuild the deck's index; return the item and any index warnings."""
    item = close_gap(deck, exchange_ids, question, answer)
    return item, reindex(deck.id, instance_path, embed_model)
