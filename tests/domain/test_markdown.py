"""Markdown cleaning and the FAQ, speaker-notes and document-section parsers."""
from pathlib import Path

import pytest

from deckchat.domain.markdown import clean_markdown, parse_faq_markdown, parse_notes_markdown, split_sections

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "real"
PLAUSIBLE = REAL / "plausible_billing_faq.md"

MESSY = """---
title: Investor guide
draft: true
---
<!-- editor note: hide -->
import Tabs from '@theme/Tabs';
export const meta = {
  author: "x",
}

Intro paragraph with a [link](https://example.com/a_(b)) and ![logo](logo.png).

# Market
Big <Callout type="info">the **TAM** is $4B</Callout> market; a < b holds.
<img alt="chart" src={useBaseUrl('img/a>b.png')} />
{/* a JSX comment */}

```python
html = '<Foo/>'
## not a heading
```

## Team
<Tabs values={[{label: 'A', value: 'a'}]}>
  <TabItem value="a">Alice is CTO</TabItem>
</Tabs>

- first item
- second item with [docs][1]

[1]: https://example.com/docs
"""


@pytest.fixture(scope="module")
def plausible() -> str:
    if not PLAUSIBLE.exists():
        pytest.skip(f"real test file absent: {PLAUSIBLE.name}")
    return PLAUSIBLE.read_text(encoding="utf-8")


def test_clean_plausible_faq_leaves_prose_only(plausible):
    cleaned = clean_markdown(plausible)
    assert "import" not in cleaned
    assert "<" not in cleaned
    assert "description:" not in cleaned and "title:" not in cleaned
    assert "@context" not in cleaned and "useBaseUrl" not in cleaned and "CtaBox" not in cleaned
    assert "## How do I get an invoice?" in cleaned
    assert "Paddle (our payment processor) emails you an invoice" in cleaned
    assert "see Choose the right subscription." in cleaned  # link text kept, target dropped
    assert "https://plausible.io" not in cleaned


def test_parse_plausible_faq(plausible):
    faq = parse_faq_markdown(plausible)
    questions = [e.question for e in faq]
    assert len(faq) == 14
    assert questions[0] == "Is the billing based per account or per website?"
    assert "Why did my payment fail?" in questions
    vat = faq[questions.index("How do I add my VAT number?")]
    assert "Add VAT number" in vat.answer and "<img" not in vat.answer and "useBaseUrl" not in vat.answer
    failed = faq[-1]
    assert "3DS" in failed.answer and "Start free trial" not in failed.answer


def test_clean_messy_markdown():
    cleaned = clean_markdown(MESSY)
    assert "draft" not in cleaned and "editor note" not in cleaned
    assert "import" not in cleaned and "export" not in cleaned and "author" not in cleaned
    assert "Intro paragraph with a link and ." in cleaned
    assert "Big the TAM is $4B market; a < b holds." in cleaned  # component tags gone, prose and `<` kept
    assert "Alice is CTO" in cleaned and "TabItem" not in cleaned and "label:" not in cleaned
    assert "chart" not in cleaned and "JSX comment" not in cleaned
    assert "html = '<Foo/>'" in cleaned  # fenced code is left alone
    assert "- second item with docs" in cleaned and "example.com" not in cleaned


def test_split_sections_titles_preamble_and_ignores_code_headings():
    sections = split_sections(MESSY, "guide.md")
    assert [h for h, _ in sections] == ["Investor guide", "Market", "Team"]
    assert "not a heading" in sections[1][1]
    assert sections[2][1].startswith("Alice is CTO")


def test_split_sections_without_headings():
    assert split_sections("Just some text.\n\nMore.", "notes.txt") == [("", "Just some text.\n\nMore.")]


def test_parse_faq_requires_questions():
    with pytest.raises(ValueError, match="## Question"):
        parse_faq_markdown("Some text without any question heading.")


def test_parse_notes_heading_forms():
    text = """# Speaker notes
Preamble is ignored.

## Slide 1
Welcome everyone.
### Detail
More on the welcome.

## slide 2: The market
Market is big.

## 3
Three.

## SLIDE 4 - Team
Team notes.

## 2023 revenue
Still slide 4.

## Slide 2
Second part of slide 2.
"""
    notes = parse_notes_markdown(text)
    assert sorted(notes) == [1, 2, 3, 4]
    assert notes[1] == "Welcome everyone.\n\nDetail\n\nMore on the welcome."
    assert notes[2] == "Market is big.\n\nSecond part of slide 2."
    assert notes[3] == "Three."
    assert notes[4].startswith("Team notes.") and "Still slide 4." in notes[4]


def test_parse_notes_without_slide_headings_is_an_error():
    with pytest.raises(ValueError, match="## Slide 3"):
        parse_notes_markdown("# Notes\n\nJust talk about the product.")
    with pytest.raises(ValueError, match="start at 1"):
        parse_notes_markdown("## Slide 0\nzero")
