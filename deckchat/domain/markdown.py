"""Markdown as presenters hand it in: clean docs-site noise; split FAQ, speaker notes, document sections."""
from __future__ import annotations

import html
import re

from .content import FaqEntry

_FRONT_MATTER = re.compile(r"\A\ufeff?\s*---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
# Elements whose content is never prose a reader sees: drop them with everything inside.
_NOISE_BLOCK = re.compile(
    r"<(head|script|style|svg|noscript|iframe|template|object)\b[^>]*?(?:/>|>.*?</\1\s*>)",
    re.DOTALL | re.IGNORECASE,
)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_JSX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.DOTALL)
_MDX_STATEMENT = re.compile(r"^(import|export)\s")
_ADMONITION = re.compile(r"^\s*:::\s*\w*.*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_NOTES_HEADING = re.compile(r"^(?:slide\s*#?\s*(\d+)\b.*|(\d+)\s*(?:[:.)\-\u2013\u2014].*)?)$", re.IGNORECASE)


def _split_fences(text: str) -> list[tuple[bool, str]]:
    """Cut text into (is_code, chunk) runs so cleaning never touches fenced code."""
    runs: list[tuple[bool, list[str]]] = [(False, [])]
    fence = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            runs.append((True, [line]))
        elif fence is not None:
            runs[-1][1].append(line)
            if line.strip().startswith(fence):
                fence = None
                runs.append((False, []))
        else:
            runs[-1][1].append(line)
    return [(code, "\n".join(lines)) for code, lines in runs if lines]


def _tag_end(text: str, start: int) -> int:
    """Index just past the `>` closing the tag at `start`, skipping quotes and JSX braces; -1 if none."""
    depth, quote, i = 0, "", start + 1
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == ">" and depth == 0:
            return i + 1
        elif ch == "<" and depth == 0 and text[i + 1 : i + 2].isalpha():
            return -1  # a second tag opens first: the first `<` was a plain less-than sign
        i += 1
    return -1


def _strip_tags(text: str) -> str:
    """Remove HTML/JSX tags (keeping the prose between paired tags); a lone `<` in prose stays."""
    out, i = [], 0
    while True:
        j = text.find("<", i)
        if j < 0:
            out.append(text[i:])
            break
        nxt = text[j + 1 : j + 2]
        end = _tag_end(text, j) if (nxt.isalpha() or nxt in "/!") else -1
        if end < 0:
            out.append(text[i : j + 1])
            i = j + 1
            continue
        out.append(text[i:j])
        # An inline tag leaves a space so the words on either side do not fuse.
        line_end = text.find("\n", end)
        before = text[text.rfind("\n", 0, j) + 1 : j]
        after = text[end : line_end if line_end >= 0 else len(text)]
        alone = not before.strip() and not after.strip()
        out.append("" if alone else " ")
        i = end
    return "".join(out)


def _drop_mdx_statements(text: str) -> str:
    """Drop MDX `import`/`export` statements, including multi-line ones with braces."""
    out, depth, skipping = [], 0, False
    for line in text.split("\n"):
        if not skipping and _MDX_STATEMENT.match(line):
            skipping = True
            depth = 0
        if skipping:
            depth += line.count("{") + line.count("(") + line.count("[")
            depth -= line.count("}") + line.count(")") + line.count("]")
            if depth <= 0:
                skipping = False
            continue
        out.append(line)
    return "\n".join(out)


def _clean_prose(text: str) -> str:
    """Clean one non-code run of Markdown."""
    text = _HTML_COMMENT.sub("", text)
    text = _JSX_COMMENT.sub("", text)
    text = _NOISE_BLOCK.sub("\n", text)
    text = _drop_mdx_statements(text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _strip_tags(text)
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    lines = [
        line.rstrip()
        for line in text.split("\n")
        if not _REF_DEF.match(line) and not _ADMONITION.match(line)
    ]
    # Indentation left behind by removed wrapper tags would turn prose into code blocks; lists keep theirs.
    lines = [line.lstrip() if not re.match(r"\s*([-*+]|\d+[.)])\s", line) else line for line in lines]
    lines = [re.sub(r"(?<=\S) {2,}", " ", line) for line in lines]
    return html.unescape("\n".join(lines))


def front_matter_title(text: str) -> str:
    """The `title:` of a Markdown file's YAML front matter, or ""."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return ""
    title = re.search(r"^title:\s*(.+?)\s*$", match.group(1), re.MULTILINE)
    return title.group(1).strip("\"'") if title else ""


def clean_markdown(text: str) -> str:
    """Markdown without front matter, HTML/JSX markup, MDX statements or link targets; prose kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _FRONT_MATTER.sub("", text, count=1)
    parts = [chunk if code else _clean_prose(chunk) for code, chunk in _split_fences(text)]
    text = "\n".join(parts)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _sections(text: str, max_level: int) -> list[tuple[int, str, str]]:
    """(level, heading, body) per heading of level <= max_level in cleaned text; level 0 is the preamble."""
    sections: list[tuple[int, str, list[str]]] = [(0, "", [])]
    in_code = None
    for line in text.split("\n"):
        fence = _FENCE.match(line)
        if fence and in_code is None:
            in_code = fence.group(1)[0] * 3
        elif in_code is not None and line.strip().startswith(in_code):
            in_code = None
        elif in_code is None:
            match = _HEADING.match(line)
            if match and len(match.group(1)) <= max_level:
                sections.append((len(match.group(1)), match.group(2).strip(), []))
                continue
        sections[-1][2].append(line)
    return [(level, heading, "\n".join(body).strip()) for level, heading, body in sections]


def parse_faq_markdown(text: str) -> list[FaqEntry]:
    """FAQ entries from Markdown with one `##` heading per question; raises ValueError when there are none."""
    cleaned = clean_markdown(text)
    entries = [
        FaqEntry(question=heading, answer=body)
        for level, heading, body in _sections(cleaned, 2)
        if level == 2 and heading and body
    ]
    if not entries:
        raise ValueError(
            "no FAQ questions found: write each question as a '## Question?' heading with its answer below"
        )
    return entries


def parse_notes_markdown(text: str) -> dict[int, str]:
    """Speaker notes by slide number from `## Slide N` sections; raises ValueError when there are none."""
    notes: dict[int, str] = {}
    current = 0
    for level, heading, body in _sections(clean_markdown(text), 6):
        match = _NOTES_HEADING.match(heading) if level else None
        if not match:
            if level and current:
                # A sub-heading inside one slide's notes belongs to that slide.
                notes[current] = f"{notes[current]}\n\n{heading}\n\n{body}".strip()
            continue
        number = int(match.group(1) or match.group(2))
        if number < 1:
            raise ValueError(f"slide numbers start at 1, found heading '{heading}'")
        current = number
        notes[number] = f"{notes[number]}\n\n{body}".strip() if number in notes else body
    if not notes:
        raise ValueError("no slide headings found: start each slide's notes with a heading like '## Slide 3'")
    return notes


def split_sections(text: str, filename: str) -> list[tuple[str, str]]:
    """(heading, body) per heading section of a document; text before the first heading gets the title."""
    # The preamble's heading is the front matter title, else "": the file name already names the source.
    del filename
    title = front_matter_title(text)
    out = []
    for level, heading, body in _sections(clean_markdown(text), 6):
        if not body:
            continue
        out.append((heading if level else title, body))
    return out
