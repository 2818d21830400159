"""The item model: validation rules and the fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sidecar.ingest.items import Document, ExtractedItem, Span, normalise_title


def _task(**kw: object) -> ExtractedItem:
    base: dict[str, object] = {
        "type": "task",
        "title": "Buy milk",
        "span": Span(start=0, end=8),
        "confidence": 0.9,
        "signal": "checkbox",
    }
    base.update(kw)
    return ExtractedItem(**base)  # type: ignore[arg-type]


def test_defaults_and_strip() -> None:
    item = _task(title="  Buy milk \n")
    assert item.title == "Buy milk"
    assert item.status == "todo"
    assert item.assignees == []
    assert item.priority is None


@pytest.mark.parametrize(
    "kw",
    [
        {"title": "   "},
        {"title": "x" * 501},
        {"confidence": 1.5},
        {"confidence": -0.1},
        {"type": "timeline"},  # no date
        {"type": "note", "due_date": 5},
        {"date": 5},  # task with a timeline date
        {"status": "blocked"},
        {"priority": "p1"},
        {"signal": ""},
    ],
)
def test_invalid_items_are_rejected(kw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _task(**kw)


def test_span_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        Span(start=5, end=2)
    with pytest.raises(ValidationError):
        Span(start=0, end=2, line_start=3, line_end=1)
    assert Span(start=3, end=3).end == 3


def test_timeline_needs_date() -> None:
    item = ExtractedItem(
        type="timeline",
        title="Demo",
        date=1_700_000_000_000,
        span=Span(start=0, end=1),
        confidence=1,
        signal="vevent",
    )
    assert item.date == 1_700_000_000_000


def test_fingerprint_ignores_offsets_case_and_punctuation() -> None:
    a = _task(title="Buy MILK!", span=Span(start=0, end=9), confidence=0.5)
    b = _task(title="buy milk", span=Span(start=400, end=408, line_start=20, line_end=20), due_date=1)
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64
    note = ExtractedItem(
        type="note", title="Buy milk", span=Span(start=0, end=1), confidence=1, signal="email-note"
    )
    assert note.fingerprint() != a.fingerprint()
    assert _task(title="Buy bread").fingerprint() != a.fingerprint()


def test_normalise_title() -> None:
    assert normalise_title("  Ship   IPLD. ") == "ship ipld"
    assert normalise_title("Café — déjà vu") == "café déjà vu"


def test_document_defaults() -> None:
    doc = Document(path=Path("a.md"), kind="markdown", text="")
    assert doc.calendar_components == [] and doc.messages == [] and doc.warnings == []
    with pytest.raises(ValidationError):
        Document(path=Path("a.doc"), kind="word", text="")  # type: ignore[arg-type]
