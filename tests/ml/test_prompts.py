"""Prompt fitting: history goes first, then the weakest context; the question is never cut."""
from __future__ import annotations

import pytest

from deckchat.ml.prompts import (
    ContextBlock, PromptParts, PromptTooLong, fit_prompt, input_budget, persona_for, render_base,
)


def words(text: str) -> int:
    return len(text.split())


def _parts(question="What is the runway?") -> PromptParts:
    context = [ContextBlock(f"slide:{i}", f"context {i} " + "fact " * 20, 1.0 - i / 10) for i in range(1, 4)]
    history = [(f"old question {i}", "old answer " * 10) for i in range(1, 4)]
    return PromptParts("You are the CEO.", question, context, [("Example?", "Example answer.")], history)


def test_everything_fits_when_the_budget_allows():
    fitted = fit_prompt(_parts(), words, 10_000)
    assert (fitted.dropped_history, fitted.dropped_context, fitted.dropped_examples) == (0, 0, 0)
    assert fitted.text.endswith("Question: What is the runway?\nAnswer:")
    assert fitted.text.index("Example answer.") < fitted.text.index("old question 1") < fitted.text.index("runway")


def test_oldest_history_is_dropped_first():
    full = words(render_base(_parts(), _parts().context, _parts().examples, _parts().history))
    fitted = fit_prompt(_parts(), words, full - 30)  # one history turn (25 words) is not enough
    assert fitted.dropped_history == 2 and fitted.dropped_context == 0
    assert fitted.history == [("old question 3", "old answer " * 10)]
    assert fitted.tokens <= full - 30


def test_weakest_context_goes_after_all_history():
    parts = _parts()
    no_history = words(render_base(parts, parts.context, parts.examples, []))
    fitted = fit_prompt(parts, words, no_history - 5)
    assert fitted.dropped_history == 3 and fitted.dropped_context == 1
    assert [b.source for b in fitted.context] == ["slide:1", "slide:2"]  # the best kept, in order


def test_question_is_never_cut():
    question = "Can you explain " + "in detail " * 30 + "the unit economics?"
    parts = _parts(question)
    fitted = fit_prompt(parts, words, words(question) + 12)
    assert question in fitted.text and fitted.context == [] and fitted.history == []
    tight = fit_prompt(parts, words, words(question) + 6)  # the persona is shortened, the question kept whole
    assert tight.text.startswith("You are") and "the CEO." not in tight.text and question in tight.text
    with pytest.raises(PromptTooLong):
        fit_prompt(parts, words, words(question))


def test_budget_for_seq2seq_and_causal_models():
    assert input_budget(512, 100, seq2seq=True) == 512      # the encoder reads 512, the decoder writes apart
    assert input_budget(1024, 100, seq2seq=False) == 924    # prompt and answer share the window


def test_chat_messages_keep_turns_in_order():
    fitted = fit_prompt(_parts(), words, 10_000, chat=True)
    roles = [m["role"] for m in fitted.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant",
                     "user"]
    assert "[slide:1]" in fitted.messages[0]["content"] and fitted.messages[-1]["content"] == "What is the runway?"


def test_default_and_custom_persona():
    assert "Acme" in persona_for("Acme", None) and "investors" in persona_for("Acme", "  ")
    assert persona_for("Acme", "You are Jane, CEO of Acme.") == "You are Jane, CEO of Acme."
