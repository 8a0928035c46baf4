"""Retrieval benchmark: plain vector search against the hybrid retriever on the same questions, same run.

    python bench/retrieval.py [--out bench/results/retrieval.json]
    python bench/retrieval.py --fit     # refit WEIGHTS and CALIBRATION of deckchat/ml/retrieval.py on dev

Decks: three synthetic pitch decks (bench/data/tidewater and bench/data/larder: slides, notes, a messy MDX
FAQ, two documents each; bench/data/lumen: slides, notes and the real Plausible billing FAQ as its document),
the tiny 5-slide Acme deck of the tests (bench/data/acme) and two real workshop decks (PPTX); real files are
read from ../shared/testdata/real/ (a deck is skipped, and said so, when one is absent).
Questions: bench/data/retrieval_questions.yaml; decks "git", "lumen" and "larder" are the dev set the weights
and the answerability model are fitted on, "tidewater", "resume" and "acme" the test set. Latency is measured
on a 60-slide deck with 30 pages of documents, index loaded, one question at a time, with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deckchat.domain.content import DeckContent, DocumentContent, SlideContent  # noqa: E402
from deckchat.domain.markdown import parse_faq_markdown, parse_notes_markdown  # noqa: E402
from deckchat.ml.index import build_index  # noqa: E402
from deckchat.ml.retrieval import retrieve, vector_search  # noqa: E402
from report import emit  # noqa: E402

DATA = REPO / "bench" / "data"
REAL = REPO / ".." / "shared" / "testdata" / "real"
REAL_DECKS = {
    "resume": "ms_workshop_resume_website_slides.pptx",
    "git": "ms_workshop_intro_git_github_slides.pptx",
}
# Folder decks under bench/data/<name>/: their own documents, and real documents read from ../shared.
FOLDER_DECKS = {
    "tidewater": (["security_overview.md", "market_memo.md"], []),
    "acme": ([], []),
    "lumen": ([], ["plausible_billing_faq.md"]),
    "larder": (["unit_economics.md", "case_studies.md"], []),
}
DEV_DECKS = {"git", "lumen", "larder"}
NOTES = [
    "hit@k and MRR count answerable questions; a question may list several sources that answer it.",
    "vector: llama-index VectorStoreIndex retriever over whole chunks, deduplicated per source.",
    ("hybrid: deckchat.ml.retrieval.retrieve (misspellings corrected into the deck's words; sentence, chunk, "
     "title and BM25 scores with their reciprocal ranks in one linear ranker; slide tie-break)."),
    ("dev decks (git, lumen, larder): ranking weights and the answerability model were chosen and fitted "
     "on them only (python bench/retrieval.py --fit); test decks (tidewater, resume, acme) were never "
     "tuned on. The larder deck and the later git and lumen questions were written blind, without running "
     "any retriever, and the dev set is the harder of the two: its figures are reported next to the test's."),
    ("Latency: one question at a time against the 60-slide deck, index loaded, model warm, on shared cores; "
     "CPU time counts all threads of the process."),
]


def folder_deck(deck_id: int, name: str) -> DeckContent:
    """A deck from bench/data/<name>/ (slides.yaml, notes.md, faq.md), read through the upload parsers."""
    folder = DATA / name
    local_docs, real_docs = FOLDER_DECKS[name]
    notes_path, faq_path = folder / "notes.md", folder / "faq.md"
    notes = parse_notes_markdown(notes_path.read_text(encoding="utf-8")) if notes_path.exists() else {}
    slides = [
        SlideContent(i, s["title"], s["text"], notes.get(i, ""))
        for i, s in enumerate(yaml.safe_load((folder / "slides.yaml").read_text(encoding="utf-8")), 1)
    ]
    paths = [folder / d for d in local_docs] + [REAL / d for d in real_docs]
    docs = [DocumentContent(p.name, "md", p.read_text(encoding="utf-8")) for p in paths]
    faq = parse_faq_markdown(faq_path.read_text(encoding="utf-8")) if faq_path.exists() else []
    return DeckContent(deck_id, name.capitalize(), 1, slides, faq, docs)


def pptx_deck(deck_id: int, path: Path) -> DeckContent:
    """A real PPTX deck through the app's own extractor."""
    from deckchat.domain.ingest import extract_pptx_slides  # noqa: PLC0415

    return DeckContent(deck_id, path.stem, 1, extract_pptx_slides(path))


def load_decks() -> tuple[dict[str, DeckContent], list[str]]:
    """The benchmark decks by name, and why any were skipped (a real file absent)."""
    decks: dict[str, DeckContent] = {}
    skipped = []
    for i, name in enumerate(["tidewater", "resume", "git", "lumen", "acme", "larder"], 1):
        missing = [f for f in ([REAL_DECKS[name]] if name in REAL_DECKS else FOLDER_DECKS[name][1])
                   if not (REAL / f).exists()]
        if missing:
            skipped.append(f"{name}: {', '.join(missing)} not found under ../shared/testdata/real/")
            print(f"skipping deck {skipped[-1]}", file=sys.stderr)
        else:
            decks[name] = pptx_deck(i, REAL / REAL_DECKS[name]) if name in REAL_DECKS else folder_deck(i, name)
    return decks, skipped


def filler_pages(pages: int, words_per_page: int, seed: int = 7) -> list[DocumentContent]:
    """Deterministic filler documents (a heading per page) so the latency deck has realistic bulk."""
    rng = random.Random(seed)
    vocab = re.findall(r"[A-Za-z]{3,}", (DATA / "tidewater" / "notes.md").read_text(encoding="utf-8"))
    docs = []
    for d in range(3):
        sections = []
        for p in range(pages // 3):
            words = [rng.choice(vocab) for _ in range(words_per_page)]
            sentences = [" ".join(words[i : i + 15]).capitalize() + "." for i in range(0, len(words), 15)]
            sections.append(f"## Appendix {d + 1}.{p + 1}\n\n" + " ".join(sentences))
        docs.append(DocumentContent(f"appendix_{d + 1}.md", "md", "\n\n".join(sections)))
    return docs


def latency_deck(decks: dict[str, DeckContent], deck_id: int) -> DeckContent:
    """60 slides (the benchmark decks' slides renumbered) and 30 pages of documents."""
    slides = [s for d in decks.values() for s in d.slides]
    while len(slides) < 60:
        slides = slides + slides
    slides = [SlideContent(i, s.title, s.text, s.notes) for i, s in enumerate(slides[:60], 1)]
    docs = [doc for d in decks.values() for doc in d.documents] + filler_pages(30, 500)
    faq = [f for d in decks.values() for f in d.faq]
    return DeckContent(deck_id, "Latency deck", 1, slides, faq, docs)


def score(rows: list[dict], key: str) -> dict:
    """hit@1, hit@3 and MRR of the answerable rows, answerability rates over all rows."""
    answerable = [r for r in rows if r["expect"]]
    unanswerable = [r for r in rows if not r["expect"]]
    ranks = [r[key]["rank"] for r in answerable]
    out = {
        "questions": len(rows),
        "answerable_questions": len(answerable),
        "unanswerable_questions": len(unanswerable),
        "hit@1": round(sum(1 for x in ranks if x == 1) / len(ranks), 4),
        "hit@3": round(sum(1 for x in ranks if x and x <= 3) / len(ranks), 4),
        "mrr": round(sum(1 / x for x in ranks if x) / len(ranks), 4),
    }
    if key == "hybrid":
        kept = sum(r[key]["answerable"] for r in answerable)
        out["answerable_kept_true"] = round(kept / len(answerable), 4)
        out["unanswerable_flagged_false"] = (
            round(sum(not r[key]["answerable"] for r in unanswerable) / len(unanswerable), 4)
            if unanswerable else None
        )
    return out


def rank_of(result, expect: list[str]) -> int | None:
    """1-based rank of the first expected source, or None."""
    for i, hit in enumerate(result.results, 1):
        if hit.source in expect:
            return i
    return None


def evaluate(decks: dict[str, DeckContent], questions: dict, root: Path, *, baseline: bool = True) -> list[dict]:
    """One row per question: where plain vector search and the hybrid retriever rank the expected source."""
    rows = []
    for name, deck in decks.items():
        for q in questions[name]:
            row = {"deck": name, "split": "dev" if name in DEV_DECKS else "test", "q": q["q"],
                   "slide": q.get("slide"), "expect": q["expect"]}
            hybrid = retrieve(deck, q["q"], root, k=10, slide=q.get("slide"))
            row["hybrid"] = {"rank": rank_of(hybrid, q["expect"]), "top": hybrid.results[0].source,
                             "answerable": hybrid.answerable, "confidence": round(hybrid.confidence, 3)}
            if baseline:
                plain = vector_search(deck, q["q"], root, k=10)
                row["vector"] = {"rank": rank_of(plain, q["expect"]), "top": plain.results[0].source}
            rows.append(row)
    return rows


def measure_latency(big: DeckContent, root: Path, questions: list[tuple[str, int | None]], repeat: int) -> dict:
    """Per-question wall and CPU milliseconds of the hybrid retriever and the vector baseline on one deck."""
    for q, s in questions[:5]:  # warm-up: first calls pay for lazy per-deck structures and allocator growth
        retrieve(big, q, root, slide=s)
        vector_search(big, q, root)
    timings: dict[str, list[float]] = {"hybrid": [], "hybrid_cpu": [], "vector": [], "vector_cpu": []}
    load = []
    for _ in range(repeat):
        load.append(os.getloadavg()[0])
        for q, s in questions:
            for key in ("hybrid", "vector"):
                t, c = time.perf_counter(), time.process_time()
                if key == "hybrid":
                    retrieve(big, q, root, k=3, slide=s)
                else:
                    vector_search(big, q, root, k=3)
                timings[key].append((time.perf_counter() - t) * 1000)
                # CPU time (all threads) is what the query costs; wall time also shows other work on the cores.
                timings[f"{key}_cpu"].append((time.process_time() - c) * 1000)

    def pct(values: list[float], p: float) -> float:
        return round(sorted(values)[min(len(values) - 1, int(p * len(values)))], 2)

    out = {f"{key}_{name}": pct(v, p) for key, v in timings.items() for name, p in (("p50", 0.5), ("p95", 0.95))}
    out["queries"] = len(timings["hybrid"])
    out["load_average_1min_during"] = [round(x, 2) for x in load]
    return out


def _signals(decks: dict[str, DeckContent], questions: dict, root: Path) -> list[dict]:
    """Each question with every source's ranking scores (deckchat.ml.retrieval.source_signals)."""
    from deckchat.ml.retrieval import source_signals  # noqa: PLC0415

    out = []
    for name, deck in decks.items():
        for q in questions[name]:
            names, scores = source_signals(deck, q["q"], root)
            out.append({"deck": name, "q": q, "names": names, "scores": scores})
    return out


def _matrix(scores: dict, keys: list[str]):
    """(sources, len(keys)) features."""
    import numpy as np  # noqa: PLC0415

    return np.stack([scores[k] for k in keys], axis=1)


def ranking_keys() -> list[str]:
    """The ranking features the fit weighs: each signal and its reciprocal rank among the question's sources
    (a signal's gap to the best source would add nothing: per question it is the signal less a constant)."""
    from deckchat.ml.retrieval import SIGNALS  # noqa: PLC0415

    return [*SIGNALS, *(f"rank_{k}" for k in SIGNALS)]


def fit_ranking(rows: list[dict], c: float = 0.1) -> dict[str, float]:
    """Pairwise logistic ranker (expected source above every other source of its question), weights scaled
    to absolute sum 1, on answerable questions that need no slide preference."""
    import numpy as np  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    keys = ranking_keys()
    diffs = []
    for r in rows:
        if not r["q"]["expect"] or r["q"].get("slide"):
            continue
        x = _matrix(r["scores"], keys)
        for pos in (i for i, s in enumerate(r["names"]) if s in r["q"]["expect"]):
            others = [i for i, s in enumerate(r["names"]) if s not in r["q"]["expect"]]
            diffs.append(x[pos] - x[others])
    d = np.concatenate(diffs)
    model = LogisticRegression(C=c, fit_intercept=False, max_iter=2000).fit(
        np.concatenate([d, -d]), np.r_[np.ones(len(d)), np.zeros(len(d))])
    w = model.coef_[0] / np.abs(model.coef_[0]).sum()
    return {k: round(float(v), 3) for k, v in zip(keys, w)}


def fit_calibration(rows: list[dict], weights: dict[str, float], c: float = 0.3) -> dict[str, float]:
    """Logistic answerability model: the expected source of each answerable question (among the top 5) is a
    positive, the top SUPPORT_K sources of each unanswerable question negatives; balanced classes."""
    import numpy as np  # noqa: PLC0415
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    from deckchat.ml.retrieval import CALIBRATION, SUPPORT_K  # noqa: PLC0415

    keys = [k for k in CALIBRATION if k != "bias"]
    xs, ys = [], []
    for r in rows:
        x = _matrix(r["scores"], keys)
        order = np.argsort(-sum(w * r["scores"][k] for k, w in weights.items()))
        if r["q"]["expect"]:
            found = [i for i in order[:5] if r["names"][i] in r["q"]["expect"]]
            if found:
                xs.append(x[found[0]])
                ys.append(1)
        else:
            xs.extend(x[order[:SUPPORT_K]])
            ys.extend([0] * SUPPORT_K)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(np.asarray(xs), np.asarray(ys))
    return {"bias": round(float(model.intercept_[0]), 2),
            **{k: round(float(v), 2) for k, v in zip(keys, model.coef_[0])}}


def replay(rows: list[dict], weights: dict[str, float], calibration: dict[str, float]) -> dict:
    """hit@1 and answerability of fitted constants on rows without slide preference (fast: no embedding)."""
    import numpy as np  # noqa: PLC0415

    from deckchat.ml.retrieval import ANSWERABLE_AT, SUPPORT_K  # noqa: PLC0415

    hits, top3, kept, flagged = [], [], [], []
    for r in rows:
        fused = sum(w * r["scores"][k] for k, w in weights.items())
        order = np.argsort(-fused, kind="stable")
        z = calibration["bias"] + sum(v * r["scores"][k] for k, v in calibration.items() if k != "bias")
        answerable = bool((1 / (1 + np.exp(-z[order[:SUPPORT_K]]))).max() >= ANSWERABLE_AT)
        if r["q"]["expect"]:
            kept.append(answerable)
            if not r["q"].get("slide"):
                hits.append(r["names"][order[0]] in r["q"]["expect"])
                top3.append(any(r["names"][i] in r["q"]["expect"] for i in order[:3]))
        else:
            flagged.append(not answerable)
    return {"hit@1": round(float(np.mean(hits)), 4), "hit@3": round(float(np.mean(top3)), 4),
            "answerable_kept_true": round(float(np.mean(kept)), 4),
            "unanswerable_flagged_false": round(float(np.mean(flagged)), 4) if flagged else None}


def fit(decks: dict[str, DeckContent], questions: dict, root: Path) -> dict:
    """Fit the ranking weights and the answerability model on the dev decks; report leave-one-deck-out."""
    from deckchat.ml.retrieval import CALIBRATION, WEIGHTS  # noqa: PLC0415

    rows = _signals(decks, questions, root)
    dev = [r for r in rows if r["deck"] in DEV_DECKS]
    weights = fit_ranking(dev)
    calibration = fit_calibration(dev, weights)
    held_out = {}
    for deck in sorted(DEV_DECKS & set(decks)):
        train = [r for r in dev if r["deck"] != deck]
        w = fit_ranking(train)
        held_out[deck] = replay([r for r in rows if r["deck"] == deck], w, fit_calibration(train, w))
    return {"fitted_on": sorted(DEV_DECKS & set(decks)), "weights": weights, "calibration": calibration,
            "dev_in_sample": replay(dev, weights, calibration), "dev_leave_one_deck_out": held_out,
            "in_use": {"weights": WEIGHTS, "calibration": CALIBRATION,
                       "dev": replay(dev, WEIGHTS, CALIBRATION)}}


def main() -> None:
    """Run the benchmark and print (and store) its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "retrieval.json"))
    parser.add_argument("--repeat", type=int, default=3, help="latency passes over the questions")
    parser.add_argument("--fit", action="store_true",
                        help="fit the ranking weights and answerability model on the dev decks; print them")
    args = parser.parse_args()
    if args.fit:
        decks, _ = load_decks()
        questions = yaml.safe_load((DATA / "retrieval_questions.yaml").read_text(encoding="utf-8"))
        root = Path(tempfile.mkdtemp(prefix="deckchat-fit-"))
        try:
            for deck in decks.values():
                build_index(deck, root)
            print(json.dumps(fit(decks, questions, root), indent=1))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return

    load_at_start = list(os.getloadavg())
    questions = yaml.safe_load((DATA / "retrieval_questions.yaml").read_text(encoding="utf-8"))
    decks, skipped = load_decks()
    root = Path(tempfile.mkdtemp(prefix="deckchat-bench-"))
    try:
        build = {name: build_index(deck, root) for name, deck in decks.items()}
        rows = evaluate(decks, questions, root)
        fitted = fit(decks, questions, root)
        big = latency_deck(decks, 99)
        build["latency_deck"] = build_index(big, root)
        asked = [(q["q"], q.get("slide")) for name in decks for q in questions[name]]
        latency = measure_latency(big, root, asked, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    result = {
        "command": "python bench/retrieval.py",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.machine(),
                    # The cores are shared with other work: the load says how much the timings compete.
                    "load_average_at_start": load_at_start, "load_average_at_end": list(os.getloadavg())},
        "notes": NOTES,
        "skipped_decks": skipped,
        "decks": {name: {"split": "dev" if name in DEV_DECKS else "test", "slides": len(d.slides),
                         "faq": len(d.faq), "documents": len(d.documents),
                         "nodes": build[name]["nodes"], "sources": build[name]["sources"]}
                  for name, d in decks.items()},
        "test": {k: score([r for r in rows if r["split"] == "test"], k) for k in ("vector", "hybrid")},
        "dev": {k: score([r for r in rows if r["split"] == "dev"], k) for k in ("vector", "hybrid")},
        "by_deck": {name: score([r for r in rows if r["deck"] == name], "hybrid") for name in decks},
        "latency_ms": {
            "deck": {"slides": len(big.slides),
                     "document_words": sum(len(d.text.split()) for d in big.documents),
                     "nodes": build["latency_deck"]["nodes"],
                     "build_seconds": build["latency_deck"]["seconds"]},
            **latency,
        },
        # What refitting on the dev decks gives now, next to the constants in use (they should agree).
        "fit": fitted,
        "misses": [
            {k: r[k] for k in ("deck", "split", "q", "slide", "expect", "vector", "hybrid")}
            for r in rows
            if (r["expect"] and r["hybrid"]["rank"] != 1) or (bool(r["expect"]) != r["hybrid"]["answerable"])
        ],
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
