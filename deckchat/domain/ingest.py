"""Reading uploads: content-type checks, PDF/PPTX text extraction and slide image rendering."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from .content import SlideContent
from .titles import TITLE_MAX, pdf_page_title, shorten_title


class UploadError(ValueError):
    """An upload that cannot be used, with a message fit to show the presenter.

    `field` names the upload it concerns, so a form can show the message beside it: "slides" (the default),
    "notes", "faq" or "documents".
    """

    def __init__(self, message: str, field: str = "slides"):
        super().__init__(message)
        self.field = field


class RenderUnavailable(RuntimeError):
    """Slide images cannot be rendered on this machine (LibreOffice is missing)."""


PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"
MAX_ZIP_RATIO = 200  # bytes out per byte in; real Office files stay far below, zip bombs far above
EXPLICIT_TITLE_MAX = 200  # a title the author set (PowerPoint title placeholder, document title)
EMPTY_FILE = "The file is empty."


def detect_kind(path: Path) -> str:
    """Return "pdf" or "pptx" from the file's content, never from its name."""
    if path.stat().st_size == 0:
        raise UploadError(EMPTY_FILE)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(PDF_MAGIC):
        return "pdf"
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile as exc:
            raise UploadError("The file looks like a zip archive but is damaged.") from exc
        if "ppt/presentation.xml" in names:
            return "pptx"
        raise UploadError("The archive is not a PowerPoint .pptx presentation.")
    raise UploadError("The slides must be a PDF or a PowerPoint (.pptx) file.")


def check_archive(path: Path, max_unzipped: int) -> None:
    """Refuse zip bombs and entries that would escape a folder (a PPTX is a zip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            total = 0
            for info in zf.infolist():
                name = PurePosixPath(info.filename.replace("\\", "/"))
                if name.is_absolute() or ".." in name.parts:
                    raise UploadError(f"The presentation contains an unsafe entry name: {info.filename!r}.")
                total += info.file_size
                if info.compress_size and info.file_size > 1_000_000 and (
                    info.file_size / info.compress_size > MAX_ZIP_RATIO
                ):
                    raise UploadError("The presentation expands suspiciously (possible zip bomb).")
            if total > max_unzipped:
                raise UploadError(
                    f"The presentation expands to {total // 2**20} MiB, over the {max_unzipped // 2**20} MiB limit."
                )
    except zipfile.BadZipFile as exc:
        raise UploadError("The presentation is damaged (not a readable zip archive).") from exc


def pretty_stem(filename: str) -> str:
    """A title made from a file name: no extension, separators as spaces ("q3_board-deck.pdf": "Q3 board deck")."""
    text = " ".join(re.sub(r"[_.]+|(?<=\S)-+(?=\S)|\s+-+\s+", " ", Path(filename).stem).split())
    if text and text == text.lower():
        text = text[0].upper() + text[1:]
    return shorten_title(text, EXPLICIT_TITLE_MAX)


def _first_line(text: str) -> str:
    """The first non-empty line, shortened to a title."""
    for line in text.splitlines():
        if line.strip():
            return shorten_title(line)
    return ""


def _open_pdf(path: Path):
    """Open a PDF with pdfium, turning its errors into upload errors."""
    import pypdfium2 as pdfium  # noqa: PLC0415 - native library, loaded only when needed

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        reason = str(exc)
        if "password" in reason.lower():
            raise UploadError("The PDF is password-protected; upload an unprotected copy.") from exc
        raise UploadError("The PDF is damaged or unreadable.") from exc


def extract_pdf_slides(path: Path, max_slides: int = 10_000) -> list[SlideContent]:
    """One SlideContent per PDF page, with the page's text layer (notes empty)."""
    import pypdfium2 as pdfium  # noqa: PLC0415

    try:
        return _pdf_slides(path, max_slides)
    except pdfium.PdfiumError as exc:  # a page that cannot be loaded: the file is damaged
        raise UploadError("The PDF is damaged or unreadable.") from exc


def _pdf_slides(path: Path, max_slides: int) -> list[SlideContent]:
    """Read each page's text with pdfium."""
    pdf = _open_pdf(path)
    try:
        if len(pdf) == 0:
            raise UploadError("The PDF has no pages.")
        if len(pdf) > max_slides:
            raise UploadError(f"The PDF has {len(pdf)} pages; the limit is {max_slides}.")
        slides = []
        for i in range(len(pdf)):
            page = pdf[i]
            textpage = page.get_textpage()
            text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n").strip()
            title = pdf_page_title(textpage, text) if text else ""
            textpage.close()
            page.close()
            slides.append(SlideContent(i + 1, title, text, ""))
        return slides
    finally:
        pdf.close()


def pdf_text(path: Path) -> str:
    """All text of a PDF document, pages separated by blank lines."""
    return "\n\n".join(s.text for s in extract_pdf_slides(path))


def extract_pptx_slides(path: Path) -> list[SlideContent]:
    """One SlideContent per slide of a PPTX: title, visible text and speaker notes."""
    try:
        return _read_pptx(path)
    except UploadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file fails deep inside zip, zlib, lxml or python-pptx
        raise UploadError("The PowerPoint file is damaged or unreadable.") from exc


def _read_pptx(path: Path) -> list[SlideContent]:
    """Parse a PPTX with python-pptx (any error means a damaged file)."""
    from pptx import Presentation  # noqa: PLC0415

    prs = Presentation(str(path))
    slides = []
    for number, slide in enumerate(prs.slides, start=1):
        parts: list[str] = []
        for shape in slide.shapes:
            parts.extend(_shape_text(shape))
        text = "\n".join(p for p in parts if p.strip())
        notes = ""
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
        slides.append(SlideContent(number, _pptx_title(slide, parts), text, notes))
    return slides


def _pptx_title(slide, parts: list[str]) -> str:
    """The title placeholder's whole text (its lines joined); else the slide's first block of text."""
    shape = slide.shapes.title
    if shape is not None and shape.has_text_frame:
        title = shorten_title(shape.text_frame.text, EXPLICIT_TITLE_MAX)
        if title:
            return title
    for part in parts:
        if part.strip():
            # A short block ("Introduction to" / "Git & GitHub") is a heading set on several lines: keep it whole.
            if len(" ".join(part.split())) <= TITLE_MAX:
                return shorten_title(part)
            return _first_line(part)
    return ""


# What PowerPoint, Keynote and LibreOffice put in the document title when the author never set one.
GENERIC_TITLES = {"powerpoint presentation", "presentation", "untitled", "untitled presentation", "slide 1",
                  "title", "click to add title", "präsentation", "présentation"}


def pptx_document_title(path: Path) -> str:
    """The title in a PPTX file's document properties (docProps/core.xml), or "" when unset or generic."""
    from lxml import etree  # noqa: PLC0415 - python-pptx's own XML library

    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("docProps/core.xml")
            if info.file_size > 1_000_000:
                return ""
            data = zf.read(info)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        root = etree.fromstring(data, parser)
    except (KeyError, zipfile.BadZipFile, etree.XMLSyntaxError, OSError, ValueError):
        return ""
    found = root.find("{http://purl.org/dc/elements/1.1/}title")
    title = shorten_title(found.text or "", EXPLICIT_TITLE_MAX) if found is not None else ""
    if title.lower() in GENERIC_TITLES or re.fullmatch(r"(?i)presentation\s*\d*", title):
        return ""
    return title


def _shape_text(shape) -> list[str]:
    """Text of a shape, including grouped shapes and table cells."""
    out: list[str] = []
    if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
        for sub in shape.shapes:
            out.extend(_shape_text(sub))
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        out.append(shape.text_frame.text.strip())
    if getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            out.append(" | ".join(cell.text.strip() for cell in row.cells))
    return out


def render_pdf(pdf_path: Path, out_dir: Path, width: int, thumb_width: int) -> int:
    """Render each page to out_dir/slides/NNN.png and out_dir/thumbs/NNN.png; return the page count."""
    import pypdfium2 as pdfium  # noqa: PLC0415

    try:
        return _render_pages(pdf_path, out_dir, width, thumb_width)
    except pdfium.PdfiumError as exc:
        raise UploadError("The PDF is damaged: a page could not be rendered.") from exc


def _render_pages(pdf_path: Path, out_dir: Path, width: int, thumb_width: int) -> int:
    """Render with pdfium and save PNGs with Pillow."""
    (out_dir / "slides").mkdir(parents=True, exist_ok=True)
    (out_dir / "thumbs").mkdir(parents=True, exist_ok=True)
    pdf = _open_pdf(pdf_path)
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            scale = width / page.get_width()
            image = page.render(scale=scale).to_pil().convert("RGB")
            image.save(out_dir / "slides" / f"{i + 1:03d}.png", optimize=False)
            thumb_height = round(image.height * thumb_width / image.width)
            image.resize((thumb_width, thumb_height)).save(out_dir / "thumbs" / f"{i + 1:03d}.png")
            page.close()
        return len(pdf)
    finally:
        pdf.close()


def pptx_to_pdf(pptx_path: Path, out_dir: Path, soffice: str = "soffice", timeout: int = 300) -> Path:
    """Convert a PPTX to PDF with LibreOffice; raise RenderUnavailable when it is not installed."""
    exe = shutil.which(soffice)
    if exe is None:
        raise RenderUnavailable(
            "LibreOffice is not installed, so slide images are placeholders; install it "
            "(Debian: apt-get install libreoffice-impress) and re-import the deck for real images."
        )
    # A private profile per run: LibreOffice refuses to start while another process holds the default one.
    with tempfile.TemporaryDirectory(prefix="deckchat-lo-") as profile:
        cmd = [exe, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
               "--convert-to", "pdf", "--outdir", str(out_dir), str(pptx_path)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise UploadError("Rendering the presentation took too long.") from exc
        except subprocess.CalledProcessError as exc:
            raise UploadError("LibreOffice could not render the presentation.") from exc
    pdf = out_dir / (pptx_path.stem + ".pdf")
    if not pdf.exists():
        raise UploadError("LibreOffice could not render the presentation.")
    return pdf


def render_placeholders(slides: list[SlideContent], out_dir: Path, width: int, thumb_width: int) -> None:
    """Draw a plain 16:9 image with each slide's title, for when real rendering is unavailable."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    (out_dir / "slides").mkdir(parents=True, exist_ok=True)
    (out_dir / "thumbs").mkdir(parents=True, exist_ok=True)
    height = width * 9 // 16
    size = max(16, width // 30)
    for slide in slides:
        image = Image.new("RGB", (width, height), "#f4f5f7")
        draw = ImageDraw.Draw(image)
        lines = _wrap(draw, f"{slide.number}. {slide.title}", size, width * 10 // 12, max_lines=4)
        draw.multiline_text((width // 12, height // 3), "\n".join(lines), fill="#1d2433", font_size=size,
                            spacing=size // 3)
        image.save(out_dir / "slides" / f"{slide.number:03d}.png")
        image.resize((thumb_width, thumb_width * 9 // 16)).save(out_dir / "thumbs" / f"{slide.number:03d}.png")


def _wrap(draw, text: str, size: int, max_width: int, max_lines: int) -> list[str]:
    """Words of `text` in lines no wider than `max_width` pixels; an ellipsis ends what does not fit."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font_size=size) <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while draw.textlength(word, font_size=size) > max_width and len(word) > 1:  # a long URL: cut it
            cut = len(word) - 1
            while cut > 1 and draw.textlength(word[:cut], font_size=size) > max_width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(" ,;:.") + "…"
    return lines
