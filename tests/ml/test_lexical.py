"""Query normalisation, tokens and splitting used by retrieval (no model needed)."""
import math

import pytest

from deckchat.ml.lexical import (
    Bm25,
    covered_words,
    prepare_query,
    spell_out,
    split_sentences,
    split_text,
    tokenize,
)


def test_prepare_query_strips_filler_and_spells_out_shorthand():
    q = prepare_query("Hi, could you tell me what your CAC is?")
    assert q.text == "what your CAC (customer acquisition cost) is?"
    assert {"cac", "custom", "acquisit", "cost"} <= set(q.tokens)
    assert q.slide_ref is None and not q.deictic


def test_prepare_query_finds_slide_references_and_pointing():
    assert prepare_query("What is on slide 7?").slide_ref == 7
    assert "7" not in prepare_query("What is on slide 7?").tokens
    assert prepare_query("What does this chart show?").deictic
    assert prepare_query("Can you explain the numbers here?").deictic
    assert not prepare_query("How big is the market?").deictic


def test_topics_add_pitch_deck_section_words():
    assert "team" in prepare_query("Who are the founders?").topics
    assert "competit" in prepare_query("Who are your competitors?").topics
    assert prepare_query("What colour is the logo?").topics == ()


def test_tokenize_stems_and_drops_question_words():
    assert tokenize("What are the leaks costing cities?") == ["leak", "cost", "citi"]
    assert tokenize("Don't we?") == []


def test_split_text_respects_the_word_limit():
    text = "\n\n".join(" ".join(f"w{i}_{j}" for j in range(40)) + "." for i in range(6))
    chunks = split_text(text, 100)
    assert len(chunks) == 3 and all(len(c.split()) <= 100 for c in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split())
    assert split_text("short text", 100) == ["short text"]
    assert split_text("   ", 100) == []
    one_long_sentence = " ".join(["word"] * 250)
    assert [len(c.split()) for c in split_text(one_long_sentence, 100)] == [100, 100, 50]


def test_split_sentences_keeps_lines_and_sentences_with_content():
    text = "Raising $6M seed. It funds sales.\n- 45% engineering | 35% sales\nOK"
    assert split_sentences(text) == ["Raising $6M seed.", "It funds sales.", "45% engineering | 35% sales"]


def test_covered_words_counts_topics_and_abbreviations():
    vocabulary = set(tokenize("Team slide. Net revenue retention is high. Leaks in pipes."))
    assert covered_words("Who are the founders?", vocabulary) == (1, 1)
    assert covered_words("What is your NRR?", vocabulary) == (1, 1)
    assert covered_words("Do you use React?", vocabulary) == (0, 2)


def test_spell_out_expands_deck_shorthand_written_in_capitals_only():
    assert spell_out("$52k MRR, TAM $9B") == "$52k MRR (monthly recurring revenue), TAM (total addressable market) $9B"
    assert spell_out("KPIs") == "KPIs (key performance indicator)"
    # Shorthand that means other things in a deck, and lower-case words, stay as they are.
    assert spell_out("IP addresses, Sam and arr") == "IP addresses, Sam and arr"


def test_bm25_scores_by_the_okapi_formula_with_lucene_idf():
    docs = [tokenize(t) for t in ("Leaks in water pipes cost cities money", "The team: a CTO and a CEO",
                                  "Pipes pipes pipes everywhere", "Raising money for the seed round")]
    bm25 = Bm25(docs)
    query = tokenize("pipe leaks money")
    scores = bm25.scores(query)
    assert scores.shape == (4,) and scores[1] == 0.0 and scores[0] == scores.max()
    idf = math.log(1 + (4 - 1 + 0.5) / (1 + 0.5))  # "leak" is in one document of four
    avgdl = sum(len(d) for d in docs) / 4
    leak = idf * 2.5 / (1 + 1.5 * (0.25 + 0.75 * len(docs[0]) / avgdl))
    assert bm25.scores(["leak"])[0] == pytest.approx(leak, rel=1e-5)
    assert bm25.scores(query, 0.5) == pytest.approx(scores * 0.5)
    assert bm25.scores(["zebra"]).tolist() == [0.0] * 4
    # The ideal score (each word once in a document of average length) is the sum of idfs; unknown words
    # have the highest idf, so a question about things the deck lacks scores a small share of it.
    assert bm25.ideal(["leak"]) == pytest.approx(idf)
    assert bm25.idf("zebra") > bm25.idf("leak")
    assert Bm25([]).scores(query).tolist() == []
