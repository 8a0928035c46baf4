"""llama-index's view of the process-wide sentence-transformers model, so both share one loaded copy."""
from __future__ import annotations

from llama_index.core.embeddings import BaseEmbedding


class LlamaEmbedding(BaseEmbedding):
    """A llama-index embedding backed by `index.get_embedder` (loaded lazily, once per process)."""

    def __init__(self, model_name: str, **kwargs) -> None:
        """Name the sentence-transformers model (as resolved by `index.resolve_model_name`)."""
        super().__init__(model_name=model_name, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        """llama-index's registry name for this class."""
        return "DeckChatSentenceTransformer"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        from .index import embed  # noqa: PLC0415 - index imports this module

        return embed(texts, self.model_name).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embeddings([query])[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
