"""Does the chat cite an expected source? The retrieval evaluation set asked through the whole chat chain.

Every answerable question of bench/data/retrieval_questions.yaml goes through `DeckChain` with the extractive
engine (guardrails none, FAQ shortcut on, the slide on screen as in the set); a question counts as cited when
one of the answer's sources is among its expected sources. Prints JSON and writes bench/results/chat_citations.json.

    python bench/chat_citations.py
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from retrieval import load_decks  # noqa: E402

from deckchat.ml.chain import DeckChain  # noqa: E402
from deckchat.ml.engine import create_engine  # noqa: E402
from deckchat.ml.index import build_index  # noqa: E402
from deckchat.ml.runtime import profile_of  # noqa: E402


def main() -> None:
    """Run every answerable question through the chain and report the share that cites an expected source."""
    questions = yaml.safe_load((HERE / "data" / "retrieval_questions.yaml").read_text())
    decks, skipped = load_decks()
    engine = create_engine("extractive")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for deck in decks.values():
            build_index(deck, root)
        chain = DeckChain(engine, profile_of(engine), root, rebuild_stale=False)
        for name, deck in decks.items():
            for item in questions.get(name, []):
                if not item.get("expect"):
                    continue
                answer = chain.ask(deck, item["q"], slide=item.get("slide"))
                cited = [s["source"] for s in answer.sources]
                rows.append({"deck": name, "question": item["q"], "kind": answer.kind,
                             "cited": cited, "ok": any(c in item["expect"] for c in cited)})
    per_deck = {}
    for name in decks:
        mine = [r for r in rows if r["deck"] == name]
        per_deck[name] = {"questions": len(mine), "cite_expected": round(sum(r["ok"] for r in mine) / len(mine), 3)}
    result = {
        "benchmark": "chat_citations", "engine": "extractive", "command": "python bench/chat_citations.py",
        "date": time.strftime("%Y-%m-%d"), "questions": len(rows),
        "cite_expected": round(sum(r["ok"] for r in rows) / len(rows), 3), "target": 0.9,
        "per_deck": per_deck, "skipped_decks": skipped,
        "misses": [r for r in rows if not r["ok"]],
    }
    out = HERE / "results" / "chat_citations.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "misses"}, indent=2))


if __name__ == "__main__":
    main()
