"""PDF files: page text by pypdf (pages joined with a form feed line); pdfplumber rebuilds the
lines when the text layer is one word per line, and reads ruled action tables (owner/due
columns) from the page layout. The document date: a date in the title or first lines, an ISO
date in the file name, else the info dictionary's CreationDate."""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path
from typing import Any

import pypdf
from pypdf.errors import DependencyError

from sidecar import clock
from sidecar.ingest.dates import document_date
from sidecar.ingest.items import Document
from sidecar.ingest.readers.base import ReadError, normalise_newlines, short_reason

_PAGE_BREAK = "\f"
#: Typographic ligatures (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ) that PDF text extraction returns as single characters.
_LIGATURES = re.compile("[\ufb00-\ufb06]")
_PDF_JUNK = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")
#: Zero-width characters with the spaces around them (Google Docs exports put "\u200b  \u200b"
#: between every two words): one space where spaces were, nothing inside a word.
_ZERO_WIDTH = re.compile("[ \t]*(?:[\u200b\u200c\u200d\u2060\ufeff][ \t]*)+")


def _drop_zero_width(text: str) -> str:
    return _ZERO_WIDTH.sub(lambda m: " " if " " in m.group() or "\t" in m.group() else "", text)


def read_pdf(path: Path, data: bytes) -> Document:
    if not data:
        raise ReadError("empty PDF (0 bytes)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError:
                raise ReadError("encrypted PDF") from None
            if not opened:
                raise ReadError("encrypted PDF")
        pages = list(reader.pages)
    except ReadError:
        raise
    except Exception as exc:
        raise ReadError(f"broken PDF ({short_reason(exc)})") from None
    warnings: list[str] = []
    texts: list[str] = []
    for number, page in enumerate(pages, start=1):
        try:
            page_text = page.extract_text() or ""
        except Exception as exc:
            warnings.append(f"page {number} text not extractable ({short_reason(exc)})")
            page_text = ""
        page_text = _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), page_text)
        texts.append(_PDF_JUNK.sub(" ", normalise_newlines(page_text)).strip("\n"))
    if pages and all(w.startswith("page ") for w in warnings) and len(warnings) == len(pages):
        raise ReadError("broken PDF (no page could be read)")
    if _fragmented("\n".join(texts)):
        texts = _layout_texts(data, texts, warnings)
    texts = [_drop_zero_width(t) for t in texts]
    text = ""
    page_offsets: list[int] = []
    for page_text in texts:
        if page_offsets:
            text += "\n" + _PAGE_BREAK + "\n"
        page_offsets.append(len(text))
        text += page_text
    if not text.strip():
        warnings.append("PDF has no text layer (scanned?)")
    metadata: dict[str, Any] = {"pages": len(pages), "page_offsets": page_offsets, "encrypted": bool(reader.is_encrypted)}
    tables = _pdf_tables(data, texts, warnings)
    if tables:
        metadata["tables"] = tables
    title, info_date = _pdf_info(reader)
    doc_date = document_date(text, path.name)
    if doc_date is None:
        doc_date = info_date
    return Document(
        path=path,
        kind="pdf",
        text=text,
        title=title,
        doc_date_ms=doc_date,
        metadata=metadata,
        warnings=warnings,
    )


#: A line that reads like the header of an action table: an action/task word and an owner or
#: deadline word. Only pages with one are given to the (slower) table finder.
_OWNER_WORD = r"\b(?:owners?|responsible|assign(?:ed)?|assignees?|who)\b"
_DUE_WORD = r"\b(?:deadline|due|completion|by[ \t]+when|target[ \t]+date|when)\b"
_TABLE_HEADER_HINT = re.compile(
    rf"^(?:(?=.*\b(?:actions?|tasks?|to[- ]?dos?)\b)(?=.*(?:{_OWNER_WORD}|{_DUE_WORD}))"
    rf"|(?=.*{_OWNER_WORD})(?=.*{_DUE_WORD})).{{0,150}}$",
    re.IGNORECASE | re.MULTILINE,
)
#: Most tables read from one PDF (a bound on the work a hostile file can cause).
_MAX_PDF_TABLES = 50


def _pdf_tables(data: bytes, texts: list[str], warnings: list[str]) -> list[dict[str, Any]]:
    """Ruled tables on the pages whose text has an action-table header line, found by pdfplumber
    from the page's lines and cells (pypdf's text runs a table's cells together): a list of
    ``{"page": 0-based page, "rows": [[cell text, …], …]}``, cells with whitespace collapsed
    (a word hyphenated over two lines joined). Empty when no page qualifies or pdfplumber fails."""
    wanted = [k for k, t in enumerate(texts) if _TABLE_HEADER_HINT.search(t) or _TABLE_HEADER_HINT.search(_cells_joined(t))]
    if not wanted:
        return []
    import pdfplumber  # here: only pages that look like they hold an action table need it

    out: list[dict[str, Any]] = []
    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            for k in wanted:
                if k >= len(pdf.pages):
                    break
                for table in pdf.pages[k].extract_tables():
                    rows = [[_cell_text(c) for c in row] for row in table]
                    rows = [r for r in rows if any(r)]
                    if len(rows) >= 2:
                        out.append({"page": k, "rows": rows})
                    if len(out) >= _MAX_PDF_TABLES:
                        return out
    except Exception as exc:
        warnings.append(f"tables not read ({short_reason(exc)})")
        return out
    return out


def _cells_joined(text: str) -> str:
    """A page's text with runs of short lines joined in fours (a header whose cells each came out
    on a line of their own: "Task Description" / "Assign To" / "Due Date"), for the header hint."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    return "\n".join(" ".join(lines[j : j + 4]) for j in range(len(lines)) if len(lines[j]) <= 40)


def _cell_text(cell: str | None) -> str:
    text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", cell or "")
    return " ".join(_PDF_JUNK.sub(" ", text).split())


def _fragmented(text: str) -> bool:
    """True when a text layer came out one word per line (some generators place every word on
    its own; pypdf then loses the lines): most of at least 20 non-blank lines are one word."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) < 20:
        return False
    single = sum(1 for ln in lines if len(ln.split()) == 1)
    return single / len(lines) >= 0.6


def _layout_texts(data: bytes, fallback: list[str], warnings: list[str]) -> list[str]:
    """Page texts rebuilt from character positions by pdfplumber (words joined into lines by
    their baseline); the pypdf texts are kept if pdfplumber fails on the file."""
    import pdfplumber  # imported here: only fragmented PDFs need it, and it is slower than pypdf

    try:
        with pdfplumber.open(io.BytesIO(data)) as pdf:
            texts = [
                _PDF_JUNK.sub(" ", normalise_newlines(page.extract_text() or "")).strip("\n")
                for page in pdf.pages
            ]
    except Exception as exc:
        warnings.append(f"layout text not recovered ({short_reason(exc)})")
        return fallback
    if len(texts) != len(fallback):
        return fallback
    warnings.append("text layer was one word per line: lines rebuilt from the page layout")
    return texts


def _pdf_info(reader: pypdf.PdfReader) -> tuple[str | None, int | None]:
    """``(title, creation date ms)`` from the PDF info dictionary, each ``None`` when unusable."""
    try:
        info = reader.metadata
    except Exception:
        return None, None
    if info is None:
        return None, None
    title: str | None = None
    doc_date: int | None = None
    try:
        raw_title = info.title
        title = (" ".join(str(raw_title).split()) or None) if raw_title else None
    except Exception:
        title = None
    try:
        created = info.creation_date
        doc_date = clock.to_ms(created) if created is not None else None
    except Exception:
        doc_date = None
    return title, doc_date

