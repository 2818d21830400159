"""Shared helpers for the ingest tests."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfWriter

# the watch fixtures, declared once in the harness
from tests.ingest.harness import inbox, ing  # noqa: F401


def pdf_with_text(*lines: str) -> bytes:
    """A small valid one-page PDF whose text layer holds ``lines`` (Helvetica, one per line).

    The cross-reference table is computed, so strict readers accept it too.
    """
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    return _one_page_pdf("\n".join(ops).encode("latin-1"))


def _one_page_pdf(stream: bytes) -> bytes:
    """A valid one-page PDF (Helvetica as /F1) with ``stream`` as its page content."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def encrypted_pdf(user_password: str) -> bytes:
    """A one-page PDF encrypted with ``user_password`` (AES-256, pypdf's writer)."""
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes | str], Path]:
    """``write(name, content)`` → path of a new file in a temporary folder."""

    def _write(name: str, content: bytes | str) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return _write


def pdf_word_by_word(*lines: str) -> bytes:
    """Like :func:`pdf_with_text`, but every word is its own text object placed by absolute
    position on a flipped page (as some generators write it): pypdf then gives one word per
    line; the lines exist only in the layout."""
    ops = ["1 0 0 -1 0 792 cm"]  # a top-down page, text matrices flipped back (as Google Docs writes)
    for row, line in enumerate(lines):
        x = 72.0
        for word in line.split():
            escaped = word.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /F1 12 Tf 1 0 0 -1 {x:.1f} {72 + 14 * row} Tm 0 -10 Td ({escaped}) Tj ET")
            x += 7.0 * len(word) + 4.0
    return _one_page_pdf("\n".join(ops).encode("latin-1"))


def pdf_with_table(heading: str, rows: list[list[str]], widths: tuple[int, ...] = (220, 90, 120)) -> bytes:
    """A one-page PDF with ``heading`` above a ruled table (stroked cell borders, one text line a
    cell, Helvetica 10): what a word processor exports for a minutes table."""
    x0, top, height = 60, 680, 22
    ops = ["BT", "/F1 12 Tf", f"{x0} 720 Td", f"({heading}) Tj", "ET", "0.8 w"]
    edges = [x0]
    for w in widths:
        edges.append(edges[-1] + w)
    for r, row in enumerate(rows):
        y = top - r * height
        for c, cell in enumerate(row):
            ops.append(f"{edges[c]} {y - height} {widths[c]} {height} re S")
            escaped = cell.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops += ["BT", "/F1 10 Tf", f"{edges[c] + 4} {y - height + 7} Td", f"({escaped}) Tj", "ET"]
    return _one_page_pdf("\n".join(ops).encode("latin-1"))
