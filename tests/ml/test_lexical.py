"""Query normalisation, tokens and splitting used by retrieval (no model needed)."""
from deckchat.ml.lexical import covered_words, prepare_query, split_sentences, split_text, tokenize


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
