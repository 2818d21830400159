"""Readers: each format, and hostile input that must end in ReadError (or a lenient read)."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sidecar import clock
from sidecar.ingest import rules
from sidecar.ingest.readers import SUPPORTED_EXTENSIONS, ReadError, decode_text, read_document
from tests.ingest.conftest import encrypted_pdf, pdf_with_text, pdf_word_by_word

Write = Callable[[str, bytes | str], Path]
MAX = 1_000_000


# ---- text and markdown --------------------------------------------------------------------


def test_markdown_front_matter_date_and_title(write: Write) -> None:
    path = write("n.md", "---\ntitle: Retro\ndate: 2026-03-02\ntags: [a]\n---\n# Heading\n- [ ] a\n")
    doc = read_document(path, max_bytes=MAX)
    assert doc.kind == "markdown"
    assert doc.title == "Retro"
    assert doc.doc_date_ms == clock.to_ms(dt.date(2026, 3, 2))
    assert doc.metadata["front_matter"]["tags"] == "[a]"
    assert doc.text.startswith("---\n")  # spans index into the full text


def test_markdown_heading_title_and_no_date(write: Write) -> None:
    doc = read_document(write("n.markdown", "intro\n\n## Plan for May\n"), max_bytes=MAX)
    assert doc.title == "Plan for May"
    assert doc.doc_date_ms is None


def test_front_matter_date_in_words_and_garbage(write: Write) -> None:
    doc = read_document(write("a.md", "---\ndate: 3 December 2026\n---\n"), max_bytes=MAX)
    assert doc.doc_date_ms == clock.to_ms(dt.date(2026, 12, 3))
    doc = read_document(write("b.md", "---\ndate: whenever\n---\n"), max_bytes=MAX)
    assert doc.doc_date_ms is None
    assert any("front matter date" in w for w in doc.warnings)


def test_crlf_is_normalised(write: Write) -> None:
    doc = read_document(write("a.txt", b"one\r\ntwo\rthree\n"), max_bytes=MAX)
    assert doc.text == "one\ntwo\nthree\n"
    assert doc.title is None


def test_empty_text_file_is_an_empty_document(write: Write) -> None:
    doc = read_document(write("empty.md", b""), max_bytes=MAX)
    assert doc.text == ""
    assert rules.extract(doc) == []


def test_binary_junk_with_md_name(write: Write) -> None:
    junk = bytes(range(256)) * 8
    with pytest.raises(ReadError) as err:
        read_document(write("junk.md", junk), max_bytes=MAX)
    assert err.value.reason == "binary content"
    with pytest.raises(ReadError, match="binary content"):
        read_document(write("nul.txt", b"hello\x00world\x00\x01\x02" * 20), max_bytes=MAX)


def test_invalid_utf8_is_replaced_not_fatal(write: Write) -> None:
    data = "Notes — café\n- [ ] order tea\n".encode() + b"broken \xff\xfe here\n"
    doc = read_document(write("bad.md", data), max_bytes=MAX)
    assert "café" in doc.text and "\ufffd" in doc.text
    assert any("replaced" in w for w in doc.warnings)
    assert [i.title for i in rules.extract(doc)] == ["order tea"]


def test_utf16_with_bom(write: Write) -> None:
    data = "- [ ] Réserver la salle\nTODO: écrire le compte rendu\n".encode("utf-16")
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
    doc = read_document(write("fr.md", data), max_bytes=MAX)
    assert doc.text.startswith("- [ ] Réserver")
    assert [i.title for i in rules.extract(doc)] == ["Réserver la salle", "écrire le compte rendu"]


def test_utf8_bom_and_legacy_encoding() -> None:
    assert decode_text(b"\xef\xbb\xbfhi")[0] == "hi"
    text, encoding, _ = decode_text(
        "Caf\xe9 cr\xe8me br\xfbl\xe9e for d\xe9ssert, tr\xe8s bien\n".encode("cp1252")
    )
    assert text.startswith("Caf") and "\ufffd" not in text
    assert encoding != "utf-8"


# ---- size, permissions, vanishing files -----------------------------------------------------


def test_oversized_file_is_refused_from_stat(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("big.txt", b"")
    with path.open("r+b") as fh:
        fh.truncate(50_000_000)  # sparse: 50 MB on paper, nothing on disk

    def no_open(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the file must not be opened")

    monkeypatch.setattr(Path, "open", no_open)
    with pytest.raises(ReadError) as err:
        read_document(path, max_bytes=1_000_000)
    assert err.value.reason == "too large: 50000000 bytes (limit 1000000)"


def test_file_growing_past_the_cap_while_read(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("grow.txt", b"x" * 100)
    real_stat = Path.stat

    def small_stat(self: Path, **kwargs: Any) -> os.stat_result:
        st = real_stat(self, **kwargs)
        return os.stat_result((st.st_mode, *st[1:6], 10, *st[7:]))

    monkeypatch.setattr(Path, "stat", small_stat)
    with pytest.raises(ReadError, match="grew past 50 bytes"):
        read_document(path, max_bytes=50)


def test_permission_denied(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("secret.md", "x")

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)  # chmod does not stop root, so simulate it
    with pytest.raises(ReadError) as err:
        read_document(path, max_bytes=MAX)
    assert err.value.reason == "permission denied"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file modes")
def test_permission_denied_for_real(write: Write) -> None:
    path = write("secret.md", "x")
    path.chmod(0)
    try:
        with pytest.raises(ReadError, match="permission denied"):
            read_document(path, max_bytes=MAX)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_vanished_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="vanished"):
        read_document(tmp_path / "gone.md", max_bytes=MAX)
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(ReadError, match="not a regular file"):
        read_document(tmp_path / "folder.md", max_bytes=MAX)


def test_vanishing_between_stat_and_open(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("tmp.md", "x")

    def gone(*args: Any, **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file")

    monkeypatch.setattr(Path, "open", gone)
    with pytest.raises(ReadError, match="vanished"):
        read_document(path, max_bytes=MAX)


@pytest.mark.parametrize("name", ["report.docx", "archive.zip", "README", "photo.JPG"])
def test_unsupported_extension(write: Write, name: str) -> None:
    with pytest.raises(ReadError, match="unsupported file type"):
        read_document(write(name, "hello"), max_bytes=MAX)


def test_extension_is_case_insensitive(write: Write) -> None:
    assert read_document(write("NOTES.MD", "- [ ] a"), max_bytes=MAX).kind == "markdown"
    assert ".htm" in SUPPORTED_EXTENSIONS


# ---- HTML -------------------------------------------------------------------------------------


def test_html_to_text(write: Write) -> None:
    html = (
        "<html><head><title>Sprint &amp; plan</title><style>p{}</style></head><body>"
        "<h1>Plan</h1><ul><li>TODO: write the <b>brief</b></li><li>Coffee</li></ul>"
        "<script>var todo = 1;</script></body></html>"
    )
    doc = read_document(write("plan.html", html), max_bytes=MAX)
    assert doc.kind == "html"
    assert doc.title == "Sprint & plan"
    assert "# Plan" in doc.text and "var todo" not in doc.text
    assert [i.title for i in rules.extract(doc)] == ["write the brief"]


# ---- email ------------------------------------------------------------------------------------

PLAIN_EMAIL = (
    "From: Ana Lima <ana@example.org>\r\n"
    "To: team@example.org\r\n"
    "Subject: Budget review\r\n"
    "Date: Tue, 10 Mar 2026 09:15:00 +0100\r\n"
    "Message-ID: <1@example.org>\r\n"
    "\r\n"
    "Hi all,\r\nAction: send the figures by Friday\r\n"
)


def test_email_plain(write: Write) -> None:
    doc = read_document(write("m.eml", PLAIN_EMAIL), max_bytes=MAX)
    assert doc.kind == "email"
    assert doc.title == "Budget review"
    assert doc.doc_date_ms == clock.to_ms(dt.datetime(2026, 3, 10, 8, 15, tzinfo=dt.UTC))
    assert doc.metadata["sender"] == "Ana Lima <ana@example.org>"
    (msg,) = doc.messages
    assert doc.text[msg.body_start :].startswith("Hi all,")
    assert doc.text[msg.span.start : msg.span.end] == doc.text
    assert not msg.html_only


def test_email_html_only(write: Write) -> None:
    data = (
        "From: x@example.org\nSubject: Party\nMIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        "<p>Hello,</p><ul><li>TODO: bring the sp=C3=A9akers</li></ul>\n"
    )
    doc = read_document(write("h.eml", data), max_bytes=MAX)
    assert doc.messages[0].html_only
    assert "<p>" not in doc.text and "spéakers" in doc.text
    assert [i.title for i in rules.extract(doc)] == ["bring the spéakers"]


def test_email_plain_preferred_over_html(write: Write) -> None:
    data = (
        "From: x@example.org\nSubject: Alt\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nplain body\n"
        "--b\nContent-Type: text/html\n\n<p>html body</p>\n--b--\n"
    )
    doc = read_document(write("a.eml", data), max_bytes=MAX)
    assert "plain body" in doc.text and "html body" not in doc.text


@pytest.mark.parametrize(
    "data",
    [
        b"this is not an email at all\njust words\n",
        b"From: <<<@@@>>>\nDate: not a date\nSubject: =?utf-8?q?bad=ZZ?=\n\nbody",
        b"Subject: base64\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!\n",
        b"Subject: charset\nContent-Type: text/plain; charset=x-unknown-42\n\nhello \xe9\n",
        b'Content-Type: multipart/mixed; boundary="never-closed"\n\n--never-closed\nContent-Type: text/plain\n\nhi',
        b"Subject: header only, no body",
    ],
)
def test_malformed_email_is_read_leniently(write: Write, data: bytes) -> None:
    doc = read_document(write("bad.eml", data), max_bytes=MAX)
    assert doc.kind == "email"
    rules.extract(doc)  # must not raise either


def _nested_mime(depth: int) -> bytes:
    head = "From: a@example.org\nSubject: deep\nMIME-Version: 1.0\n"
    body = ""
    for level in range(depth):
        body += f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n'
    body += "Content-Type: text/plain\n\nTODO: find me\n"
    for level in reversed(range(depth)):
        body += f"--b{level}--\n"
    return (head + body).encode()


def test_nested_mime_is_read(write: Write) -> None:
    doc = read_document(write("nested.eml", _nested_mime(40)), max_bytes=MAX)
    assert [i.title for i in rules.extract(doc)] == ["find me"]


def test_deeply_nested_mime_is_a_read_error(write: Write) -> None:
    with pytest.raises(ReadError, match="nested too deeply"):
        read_document(write("deep.eml", _nested_mime(5000)), max_bytes=10_000_000)


def test_mbox_one_document_per_file(write: Write) -> None:
    data = (
        "From ana@example.org Tue Mar 10 09:15:00 2026\n"
        "From: ana@example.org\nSubject: First\nDate: Tue, 10 Mar 2026 09:15:00 +0000\n\n"
        "TODO: reply to the landlord\n\n"
        "From bo@example.org Wed Mar 11 10:00:00 2026\n"
        "From: bo@example.org\nSubject: [list] Re: Second\nDate: Wed, 11 Mar 2026 10:00:00 +0000\n\n"
        "Just saying hi.\n"
    )
    doc = read_document(write("box.mbox", data), max_bytes=MAX)
    assert doc.metadata["message_count"] == 2
    first, second = doc.messages
    assert first.subject == "First" and second.sender == "bo@example.org"
    assert first.span.end <= second.span.start
    items = rules.extract(doc)
    assert [(i.type, i.title) for i in items] == [("task", "reply to the landlord"), ("note", "Second")]
    assert items[1].span == second.span


def test_empty_email_and_mbox(write: Write) -> None:
    assert read_document(write("e.eml", b""), max_bytes=MAX).messages == []
    assert read_document(write("e.mbox", b"\n"), max_bytes=MAX).messages == []


def test_binary_email_is_refused(write: Write) -> None:
    with pytest.raises(ReadError, match="binary content"):
        read_document(write("x.eml", bytes(range(256)) * 4), max_bytes=MAX)


# ---- iCalendar --------------------------------------------------------------------------------

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
X-WR-CALNAME:Team
BEGIN:VEVENT
UID:1
DTSTAMP:20260301T120000Z
DTSTART;TZID=Europe/Berlin:20260318T140000
DTEND;TZID=Europe/Berlin:20260318T150000
RRULE:FREQ=WEEKLY;COUNT=3
SUMMARY:Weekly demo
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT5M
DESCRIPTION:Reminder
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:2
DTSTART;TZID=Mars/Olympus_Mons:20260320T090000
SUMMARY:Bad zone
END:VEVENT
BEGIN:VEVENT
UID:3
DTSTART;VALUE=DATE:20260401
SUMMARY:All day
END:VEVENT
BEGIN:VTODO
UID:4
DTSTART:20260301T100000Z
DURATION:PT2H
SUMMARY:Due by duration
PRIORITY:5
STATUS:IN-PROCESS
END:VTODO
BEGIN:VJOURNAL
UID:5
DESCRIPTION:Only a description here\\nsecond line
END:VJOURNAL
END:VCALENDAR
"""


def test_ics_components(write: Write) -> None:
    doc = read_document(write("c.ics", ICS), max_bytes=MAX)
    assert doc.kind == "calendar" and doc.title == "Team"
    assert doc.doc_date_ms == clock.parse_iso_to_ms("2026-03-01T12:00:00Z")
    weekly, bad, allday, todo, journal = doc.calendar_components
    assert weekly.start_ms == clock.parse_iso_to_ms("2026-03-18T13:00:00Z")  # TZID honoured (CET)
    assert weekly.end_ms == clock.parse_iso_to_ms("2026-03-18T14:00:00Z")
    assert weekly.rrule == "FREQ=WEEKLY;COUNT=3"
    assert doc.text[weekly.span.start : weekly.span.end].startswith("BEGIN:VEVENT")
    assert doc.text[weekly.span.start : weekly.span.end].endswith("END:VEVENT")
    # unknown TZID: floating, read in the user's zone, and said so
    assert bad.start_ms == clock.to_ms(dt.datetime(2026, 3, 20, 9, 0))
    assert any("Mars/Olympus_Mons" in w for w in doc.warnings)
    assert allday.all_day and allday.start_ms == clock.to_ms(dt.date(2026, 4, 1))
    # RFC 5545 §3.6.2: no DUE, so DTSTART + DURATION
    assert todo.due_ms == clock.parse_iso_to_ms("2026-03-01T12:00:00Z")
    assert todo.priority == 5 and todo.status == "IN-PROCESS"
    assert journal.kind == "VJOURNAL" and journal.summary is None


def test_ics_bad_tzid_does_not_crash_extraction(write: Write) -> None:
    doc = read_document(write("c.ics", ICS), max_bytes=MAX)
    titles = {i.title: i for i in rules.extract(doc)}
    assert titles["Bad zone"].date == clock.to_ms(dt.datetime(2026, 3, 20, 9, 0))


@pytest.mark.parametrize(
    "data",
    ["BEGIN:VCALENDAR\nnot really\n", "hello world", "BEGIN:VEVENT\nDTSTART:notadate\nEND:VEVENT\n"],
)
def test_invalid_ics_is_a_read_error_or_empty(write: Write, data: str) -> None:
    try:
        doc = read_document(write("x.ics", data), max_bytes=MAX)
    except ReadError as err:
        assert "iCalendar" in err.reason
    else:
        rules.extract(doc)


def test_empty_ics(write: Write) -> None:
    doc = read_document(write("e.ics", ""), max_bytes=MAX)
    assert doc.calendar_components == []


# ---- PDF --------------------------------------------------------------------------------------


def test_pdf_text(write: Write) -> None:
    path = write(
        "m.pdf", pdf_with_text("Minutes", "TODO: send the (draft) report", "Next meeting: 2026-05-04")
    )
    doc = read_document(path, max_bytes=MAX)
    assert doc.kind == "pdf" and doc.metadata["pages"] == 1
    assert "TODO: send the (draft) report" in doc.text
    kinds = [(i.type, i.title) for i in rules.extract(doc)]
    assert ("task", "send the (draft) report") in kinds
    assert ("timeline", "Next meeting") in kinds


def test_zero_byte_pdf(write: Write) -> None:
    with pytest.raises(ReadError) as err:
        read_document(write("zero.pdf", b""), max_bytes=MAX)
    assert err.value.reason == "empty PDF (0 bytes)"


def test_truncated_pdf(write: Write) -> None:
    data = pdf_with_text("Minutes", "TODO: a")
    with pytest.raises(ReadError, match="broken PDF"):
        read_document(write("cut.pdf", data[: len(data) // 2]), max_bytes=MAX)


@pytest.mark.parametrize("data", [b"%PDF-1.7\n", b"%PDF-1.4\n1 0 obj\n<<>>\n%%EOF", b"not a pdf at all"])
def test_broken_pdf(write: Write, data: bytes) -> None:
    with pytest.raises(ReadError) as err:
        read_document(write("b.pdf", data), max_bytes=MAX)
    assert err.value.reason.startswith("broken PDF")


def test_encrypted_pdf(write: Write) -> None:
    with pytest.raises(ReadError) as err:
        read_document(write("locked.pdf", encrypted_pdf("s3cret")), max_bytes=MAX)
    assert err.value.reason == "encrypted PDF"


def test_pdf_encrypted_with_empty_user_password_is_readable(write: Write) -> None:
    doc = read_document(write("owner-only.pdf", encrypted_pdf("")), max_bytes=MAX)
    assert doc.metadata["encrypted"] is True
    assert any("no text layer" in w for w in doc.warnings)


def test_mbox_vanishing_between_reads(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    import mailbox

    path = write("box.mbox", "From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nhi\n")

    def gone(*args: Any, **kwargs: Any) -> Any:
        raise mailbox.NoSuchMailboxError(str(path))

    monkeypatch.setattr(mailbox, "mbox", gone)
    with pytest.raises(ReadError, match="vanished"):
        read_document(path, max_bytes=MAX)


BROKEN_ZONE_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
    "BEGIN:STANDARD\r\nDTSTART:18931101T000000\r\nTZOFFSETFROM:+5328\r\nTZOFFSETTO:+0100\r\n"
    "END:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTART;TZID=Europe/Berlin:20161103T180000\r\n"
    "SUMMARY:Friseur\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_ics_with_a_broken_time_zone_definition_keeps_its_events(write: Write) -> None:
    """iCloud exports carry historical offsets (+5328) icalendar refuses; the events still count."""
    doc = read_document(write("icloud.ics", BROKEN_ZONE_ICS), max_bytes=MAX)
    [event] = doc.calendar_components
    assert event.summary == "Friseur"
    assert event.start_ms == clock.to_ms(dt.datetime(2016, 11, 3, 18, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    assert doc.metadata["method"] == "REQUEST"
    assert any("time zone definitions ignored" in w for w in doc.warnings)


def test_pdf_with_one_word_per_line_gets_its_lines_back(write: Write) -> None:
    """A text layer pypdf gives word by word is rebuilt from the layout (pdfplumber), so the
    line rules see "Action: …" lines instead of single words."""
    lines = [f"Action: review item number {i} by Friday" for i in range(6)]
    doc = read_document(write("m.pdf", pdf_word_by_word(*lines)), max_bytes=MAX)
    assert doc.text.split("\n") == lines
    assert any("rebuilt from the page layout" in w for w in doc.warnings)
    assert len(rules.extract(doc)) == 6
    normal = read_document(write("n.pdf", pdf_with_text(*lines)), max_bytes=MAX)
    assert normal.text.split("\n") == lines and normal.warnings == []


def test_pdf_action_table_is_read_from_the_layout(tmp_path: Path) -> None:
    """A ruled owner/action/deadline table: pypdf runs each row's cells together (its rows end in
    a name, not a date, so no text rule can split them); the cells pdfplumber finds give one task
    a row with its owner and deadline, read relative to the date in the first line."""
    from sidecar.ingest import rules
    from tests.ingest.conftest import pdf_with_table

    path = tmp_path / "minutes.pdf"
    path.write_bytes(pdf_with_table("Team meeting minutes, 3 March 2026", [
        ["Action", "Deadline", "Owner"],
        ["Book the venue for the launch", "Friday", "Ana Lopez"],
        ["Send the press kit", "10/03/2026", "Bo Chen"],
        ["Order banners", "N/A", "All"],
    ]))
    doc = read_document(path, max_bytes=1 << 20)
    assert doc.metadata["tables"][0]["rows"][1] == ["Book the venue for the launch", "Friday", "Ana Lopez"]
    tasks = [(i.title, i.assignees, i.due_date) for i in rules.extract(doc, now_ms=0) if i.type == "task"]
    assert tasks == [
        ("Book the venue for the launch", ["Ana Lopez"], clock.to_ms(dt.date(2026, 3, 6))),
        ("Send the press kit", ["Bo Chen"], None),  # 10/03: day or month first is not proven
        ("Order banners", [], None),
    ]


def test_pdf_zero_width_spaces_between_words_are_dropped() -> None:
    # Google Docs PDF exports put "\u200b  \u200b" between every two words; titles must not keep them
    from sidecar.ingest.readers.pdf import _drop_zero_width

    assert _drop_zero_width("Minutes \u200b  \u200b 12/1/17:\n ● Met \u200b  \u200b in") == "Minutes 12/1/17:\n ● Met in"
    assert _drop_zero_width("co\u200bordinate the\ufeff \u200breview") == "coordinate the review"
