"""Keeping a deck's chat index in step with its stored material (called after imports and edits)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..domain.decks import deck_content

log = logging.getLogger(__name__)


def index_root(instance_path: str | Path) -> Path:
    """Folder holding every deck's index."""
    return Path(instance_path) / "indexes"


def reindex(deck_id: int, instance_path: str | Path, embed_model: str | None = None,
            progress: bool = False) -> list[str]:
    """Rebuild a deck's index from the database; return warnings rather than failing the caller's upload."""
    from .index import build_index  # noqa: PLC0415 - loads the embedding stack only when needed

    try:
        build_index(deck_content(deck_id), index_root(instance_path), embed_model=embed_model or None,
                    progress=progress)
    except Exception as exc:  # noqa: BLE001 - the deck is stored; chat reports the missing index later
        log.exception("indexing deck %s failed", deck_id)
        return [f"The chat index could not be built ({exc}); run `deckchat deck index {deck_id}`."]
    return []


def drop_index(deck_id: int, instance_path: str | Path) -> None:
    """Delete a deck's index folder."""
    from .index import delete_index  # noqa: PLC0415

    delete_index(deck_id, index_root(instance_path))
