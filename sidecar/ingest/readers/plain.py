"""Plain text (``.txt``) and Markdown (``.md``) files: decoded text; for Markdown the front
matter's ``title``/``date`` and the first ATX heading as title. The document date: front matter
``date:``, else :func:`sidecar.ingest.dates.document_date` (title/first lines, file name)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sidecar.ingest.dates import document_date
from sidecar.ingest.items import Document, DocumentKind
from sidecar.ingest.readers.base import decode_text, parse_loose_date

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_KEY = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_ATX_HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _front_matter(text: str) -> dict[str, str]:
    """Top-level ``key: value`` pairs of a leading ``---`` block (YAML-ish, not full YAML)."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}
    return {m.group(1).lower(): m.group(2) for m in _FRONT_KEY.finditer(match.group(1))}


def _read_plain(path: Path, data: bytes, kind: DocumentKind) -> Document:
    text, encoding, warnings = decode_text(data)
    title: str | None = None
    doc_date: int | None = None
    metadata: dict[str, Any] = {"encoding": encoding}
    if kind == "markdown":
        front = _front_matter(text)
        if front:
            metadata["front_matter"] = front
        if front.get("date"):
            doc_date = parse_loose_date(front["date"])
            if doc_date is None:
                warnings.append(f"front matter date {front['date']!r} not understood")
        title = front.get("title", "").strip().strip("'\"") or None
        if title is None:
            heading = _ATX_HEADING.search(text)
            title = heading.group(1).strip() if heading else None
    if doc_date is None:
        doc_date = document_date(_FRONT_MATTER.sub("", text, count=1), path.name)
    return Document(
        path=path,
        kind=kind,
        text=text,
        title=title,
        doc_date_ms=doc_date,
        metadata=metadata,
        warnings=warnings,
    )


def read_markdown(path: Path, data: bytes) -> Document:
    return _read_plain(path, data, "markdown")


def read_text(path: Path, data: bytes) -> Document:
    return _read_plain(path, data, "text")

