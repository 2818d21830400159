"""HTML pages (``.html``/``.htm``): text by html2text (no wrapping, no images), the ``<title>``
as title, the document date from the text's first lines or the file name."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import html2text

from sidecar.ingest.dates import document_date
from sidecar.ingest.items import Document
from sidecar.ingest.readers.base import decode_text, normalise_newlines


class _TitleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._in_title = False
        self.parts: list[str] = []
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.done:
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.parts.append(data)


def _html_title(markup: str) -> str | None:
    parser = _TitleParser()
    try:
        parser.feed(markup[:200_000])
        parser.close()
    except Exception:  # HTMLParser is lenient; a title is a nicety, never a failure
        return None
    title = " ".join("".join(parser.parts).split())
    return title or None


def html_to_text(markup: str) -> str:
    """Readable text of an HTML fragment or page (html2text, no line wrapping, no images)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.unicode_snob = True
    return normalise_newlines(converter.handle(markup))


def read_html(path: Path, data: bytes) -> Document:
    markup, encoding, warnings = decode_text(data)
    text = html_to_text(markup) if markup.strip() else ""
    return Document(
        path=path,
        kind="html",
        text=text,
        title=_html_title(markup),
        doc_date_ms=document_date(text, path.name),
        metadata={"encoding": encoding},
        warnings=warnings,
    )

