"""Slide titles from text: shortening a line to a title, and a PDF page's title from its text layer.

A PDF page has no title field, so its first paragraph stands in: the first line with the lines it
wrapped onto, told apart from a subtitle or body text by font size and position (pdfium's geometry).
"""
from __future__ import annotations

from dataclasses import dataclass

TITLE_MAX = 120  # a title guessed from a page's text is cut here, at a word


def shorten_title(text: str, limit: int = TITLE_MAX) -> str:
    """Whitespace collapsed to single spaces; past `limit`, cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


@dataclass
class TextLine:
    """One line of a PDF page's text layer with what tells a wrapped line from a new paragraph.

    `text` keeps a trailing space: PDF exports (PowerPoint, LibreOffice, Word) draw the space where a line
    wrapped, and pdfium keeps it. Sizes and boxes are in points (0 when unknown); y grows upwards.
    """

    text: str
    size: float = 0.0
    left: float = 0.0
    bottom: float = 0.0
    right: float = 0.0
    top: float = 0.0
    first_word: float = 0.0  # width of the line's first word

    @property
    def width(self) -> float:
        """Width of the line's box (0 without one)."""
        return max(0.0, self.right - self.left)

    @property
    def has_box(self) -> bool:
        """Whether pdfium gave the line a box."""
        return self.top > self.bottom


def title_from_lines(lines: list[TextLine], limit: int = TITLE_MAX) -> str:
    """The page's first paragraph: its first line with the lines it wrapped onto, up to a blank line or a clear break."""
    lines = list(lines)
    while lines and not lines[0].text.strip():
        lines.pop(0)
    if not lines:
        return ""
    block = [lines[0]]
    for line in lines[1:]:
        if not line.text.strip() or not _continues(block, line):
            break
        block.append(line)
        if sum(len(b.text) for b in block) > limit:
            break
    return shorten_title(" ".join(b.text for b in block), limit)


def _continues(block: list[TextLine], line: TextLine) -> bool:
    """Whether `line` is the rest of a paragraph that wrapped (not a subtitle, body text or another box)."""
    prev = block[-1]
    if prev.size and line.size and abs(prev.size - line.size) > 0.15 * max(prev.size, line.size):
        return False  # another font size: a subtitle or the body
    soft_wrap = prev.text.endswith((" ", "\t"))
    if not (prev.has_box and line.has_box):
        return soft_wrap
    height = max(prev.size, prev.top - prev.bottom, 1.0)
    if line.top > prev.top or prev.bottom - line.top > 1.2 * height:
        return False  # not right below: another text box, or a gap wider than a line
    if soft_wrap:
        return True
    # No space drawn at the break: a line that goes on in lower case ("…website in" / "the browser") and whose
    # first word would not have fitted on the line above wrapped; "Acme Robotics" / "Warehouse robots" did not.
    if not line.text.lstrip()[:1].islower():
        return False
    widest = max(max(b.width for b in block), line.width)
    return prev.width + line.first_word > widest


def _pdf_lines(textpage, max_chars: int = 2000) -> list[TextLine]:
    """The first lines of a page's text layer with their font size and bounding box."""
    import pypdfium2.raw as pdfium_c  # noqa: PLC0415

    lines: list[TextLine] = []
    chars: list[str] = []
    sizes: list[float] = []
    boxes: list[tuple[float, float, float, float]] = []
    word_right: float | None = None

    def close() -> None:
        nonlocal word_right
        if boxes:
            left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
            right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
            first = (word_right if word_right is not None else right) - left
            lines.append(TextLine("".join(chars), max(sizes), left, bottom, right, top, first))
        else:
            lines.append(TextLine("".join(chars), max(sizes, default=0.0)))
        chars.clear()
        sizes.clear()
        boxes.clear()
        word_right = None

    count = min(textpage.count_chars(), max_chars)
    previous = ""
    for i in range(count):
        code = pdfium_c.FPDFText_GetUnicode(textpage.raw, i) or 0x20
        if 0xD800 <= code <= 0xDFFF:
            continue  # half of a UTF-16 pair: not storable text; a title can do without it
        ch = chr(code)
        if ch == "\n" and previous == "\r":
            previous = ch
            continue
        previous = ch
        if ch in "\r\n":
            close()
            continue
        chars.append(ch)
        if ch.isspace():
            if boxes and word_right is None:
                word_right = max(b[2] for b in boxes)
            continue
        left, bottom, right, top = textpage.get_charbox(i)
        if right > left or top > bottom:
            boxes.append((left, bottom, right, top))
            sizes.append(float(pdfium_c.FPDFText_GetFontSize(textpage.raw, i)))
    if chars:
        close()
    return lines


def pdf_page_title(textpage, text: str) -> str:
    """The title of a PDF page: its first paragraph (geometry from pdfium; the plain text when that fails)."""
    try:
        lines = _pdf_lines(textpage)
    except Exception:  # noqa: BLE001 - odd char data must not fail an import that has a text layer
        lines = []
    return title_from_lines(lines) or title_from_lines([TextLine(line) for line in text.split("\n")])
