"""Test data built on the fly: PDFs with a real text layer, PPTX files, zips."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "testdata" / "real"
REAL_PPTX = REAL / "ms_workshop_resume_website_slides.pptx"


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one page per string, drawn as real text (Helvetica)."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        lines = text.split("\n")
        ops = ["BT", "/F1 28 Tf", "60 500 Td", "34 TL"]
        for line in lines:
            safe = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({safe}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 960 540] /Resources << /Font << /F1 {font_id} 0 R >> >> "
            f"/Contents {4 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def make_pptx(slides: list[tuple[str, str, str]]) -> bytes:
    """A PPTX with (title, body, notes) per slide, written by python-pptx."""
    from pptx import Presentation

    prs = Presentation()
    for title, body, notes in slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    """A zip archive with the given entries (names are written as given, unsafe ones too)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


PITCH_PAGES = [
    "Acme Robotics\nWarehouse robots that pick anything",
    "The problem\nPicking is 60% of warehouse labour cost",
    "Our solution\nA gripper that learns new items in minutes",
    'Traction\n12 customers and 2.1M ARR\nPilot <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">',
    "The ask\nRaising 8M Series A",
]

PITCH_NOTES = """# Speaker notes

## Slide 1
We founded Acme in 2021 after running warehouses for a decade.

## Slide 3: Solution
Our gripper uses suction and fingers together; training a new item takes five minutes.

## Slide 4
Our pilot customer doubled picking speed in the first month.

## Slide 5
The round closes in March; we have 3M committed.
"""

PITCH_FAQ = """---
title: Acme FAQ
---
## How much have you raised so far?
We raised a 1.5M seed round from Example Ventures in 2022.

## Who are your competitors?
Mostly manual labour, and two robotics startups that only pick boxes.
"""
