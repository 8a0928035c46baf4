"""The demo deck: a small, realistic pitch with speaker notes, an FAQ and a whitepaper, built on the fly."""
from __future__ import annotations

from pathlib import Path

TITLE = "Northwind Analytics — Seed pitch"

SLIDES = [
    ("Northwind Analytics", "Spreadsheets that explain themselves",
     "Hi, I'm Dana, CEO of Northwind. We make spreadsheets explain themselves: every number gets a plain-English "
     "story of where it came from."),
    ("The problem", "Finance teams spend 40% of close week tracing numbers\nErrors cost mid-size firms $1.2M a year",
     "Every controller we interviewed — 62 of them — told us month-end close is spent asking 'where did this "
     "number come from?'. Our survey put it at 40% of close week."),
    ("Our solution", "Lineage for every cell\nAnswers in plain English\nWorks inside Excel and Google Sheets",
     "Northwind reads the workbook, builds a lineage graph of every formula and import, and answers questions "
     "like 'why did revenue drop in March?' with the cells that explain it."),
    ("How it works", "Add-in parses formulas → lineage graph → explanation engine",
     "The add-in parses formulas locally; only the graph, never the data, goes to our servers. The explanation "
     "engine is a small language model fine-tuned on accounting workpapers."),
    ("Traction", "38 paying teams · $410k ARR · 9% monthly growth",
     "We launched in January. 38 teams pay today, ARR is $410k, growing 9% a month, with net revenue retention "
     "of 128%."),
    ("Business model", "$49 per seat per month\nEnterprise plan from $30k a year",
     "Self-serve at $49 per seat per month; enterprise starts at $30k a year with SSO and on-premise parsing."),
    ("Team", "Dana Ruiz, CEO — ex-controller at Contoso\nSam Okafor, CTO — built Excel's calc engine tooling",
     "Dana ran close at Contoso for eight years; Sam spent six years on Excel's calculation engine."),
    ("The ask", "Raising $3M seed\n18 months of runway to $2M ARR",
     "We are raising $3M: 60% engineering, 25% go-to-market, 15% security certification. It takes us to $2M ARR "
     "in 18 months."),
]

FAQ = """# Northwind FAQ

## How much have you raised so far?
A $600k pre-seed from Example Angels in 2025.

## Who are your competitors?
Manual auditing tools and spreadsheet linters; none explains numbers in plain English.

## Is customer data stored on your servers?
No. Formulas are parsed inside the add-in; only the lineage graph is sent, encrypted.
"""

WHITEPAPER = """# Northwind whitepaper

## Lineage graph
Each cell is a node; formulas, imports and pivot tables become edges. The graph is rebuilt incrementally on
every edit, in under 50 ms for workbooks of 100,000 formulas.

## Explanation engine
Questions are matched to the subgraph that explains a number; a small language model writes the answer and
cites the cells.

## Security
SOC 2 Type I is planned for next year. Data never leaves the customer's machine.
"""


def write_demo_files(folder: Path) -> dict[str, Path]:
    """Write the demo deck (PPTX with notes), FAQ and whitepaper into `folder`; return their paths."""
    from pptx import Presentation  # noqa: PLC0415
    from pptx.util import Inches

    folder.mkdir(parents=True, exist_ok=True)
    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    for title, body, notes in SLIDES:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        slide.notes_slide.notes_text_frame.text = notes
    paths = {"slides": folder / "northwind-seed.pptx", "faq": folder / "faq.md", "doc": folder / "whitepaper.md"}
    prs.save(paths["slides"])
    paths["faq"].write_text(FAQ)
    paths["doc"].write_text(WHITEPAPER)
    return paths
