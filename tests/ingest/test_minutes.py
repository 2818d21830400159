"""Minutes written as sentences, dated events, clean titles, the document's own date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sidecar import clock
from sidecar.ingest import rules
from sidecar.ingest.dates import date_in_head, date_in_name, document_date
from sidecar.ingest.items import Document
from sidecar.ingest.readers import read_document
from sidecar.ingest.rules.titles import clean_task_title
from tests.ingest.conftest import pdf_with_text

MINUTES = """# Editors meeting

* Date: 2024-05-01

## Present

* Hadrian Zbarcea
* Tim Berners-Lee
* Kjetil Kjernsmo

## Minutes

* KK: I will review as soon as possible.
* JB: Will submit review by next week (maybe sooner)
* Hadrian to reach out to PA about the charter
* Ultimately, Tim will make the final decision
* Someone to be named later
* Plans were discussed at length; Fred will send the notes
* Please comment on the PR
* eP: there is a scheduled meeting for Web of Things and Solid on 16 May, 2024.
* The meeting on 1 May, 2024 was short.

### Milestone 0.11.0
* SC: Tentative due date: 2024-06-30.
"""


def day(y: int, m: int, d: int) -> int:
    return clock.to_ms(dt.date(y, m, d))


def _minutes(text: str = MINUTES) -> list[tuple[str, str, list[str]]]:
    doc = Document(path=Path("2024-05-01.md"), kind="markdown", text=text, doc_date_ms=day(2024, 5, 1))
    return [(i.type, i.title, i.assignees) for i in rules.extract(doc)]


def _tasks(text: str, kind: str = "markdown", date: tuple[int, int, int] = (2024, 5, 1)) -> list[tuple[str, list[str]]]:
    """The tasks (title, assignees) the rules find in ``text`` read as a ``kind`` document of ``date``."""
    doc = Document(path=Path("m.pdf" if kind == "pdf" else "m.md"), kind=kind, text=text, doc_date_ms=day(*date))
    return [(i.title, i.assignees) for i in rules.extract(doc) if i.type == "task"]


def test_minutes_sentences_become_tasks_with_owners() -> None:
    items = _minutes()
    tasks = [(t, a) for kind, t, a in items if kind == "task"]
    assert tasks == [
        ("review as soon as possible", ["KK"]),
        ("submit review", ["JB"]),
        ("reach out to PA about the charter", ["Hadrian"]),
        ("comment on the PR", []),
    ]


def test_owners_known_from_other_people_lists_and_from_speaker_names() -> None:
    """"In attendance" lists people; so does a name used as a speaker prefix twice or more; an
    @handle names a person by itself."""
    text = ("# Team meeting minutes\n\nIn attendance: Priya Shah, Tom Reed\n\n## Notes\n\n"
            "Michael: the build is red again\nMichael: I looked at it yesterday\n"
            "* Priya has agreed to draft the budget\n* Michael to fix the build\n* Fred to buy cake\n"
            "* @sam-k will update the changelog\n")
    assert _tasks(text) == [
        ("draft the budget", ["Priya"]), ("fix the build", ["Michael"]), ("update the changelog", ["sam-k"]),
    ]


def test_owner_must_be_a_listed_person() -> None:
    """"Fred" is in no attendee list and "Ultimately, Tim" does not start with the name."""
    titles = [t for _, t, _ in _minutes()]
    assert not any("final decision" in t or "send the notes" in t for t in titles)


def test_dated_events_in_minutes() -> None:
    events = [(t, a) for kind, t, a in _minutes() if kind == "timeline"]
    assert [t for t, _ in events] == ["there is a scheduled meeting for Web of Things and Solid", "Milestone 0.11.0"]
    doc = Document(path=Path("m.md"), kind="markdown", text=MINUTES, doc_date_ms=day(2024, 5, 1))
    dates = [i.date for i in rules.extract(doc) if i.type == "timeline"]
    assert dates == [day(2024, 5, 16), day(2024, 6, 30)]


def test_an_event_named_by_a_link_takes_the_link_text_as_title() -> None:
    """The date inside a Markdown link's text: the link text is the event; an ACTION line
    naming a dated event gives the task and the timeline entry."""
    text = MINUTES.replace(
        "* eP: there is a scheduled meeting for Web of Things and Solid on 16 May, 2024.",
        "* eP: there is a scheduled meeting for [Web of Things and Solid on 16 May, 2024](https://w3.org/e/1).",
    ) + "\nACTION: Hadrian will schedule an [STM meeting about use cases on 7 May, 2024](https://x.org/p)\n"
    items = _minutes(text)
    assert [t for kind, t, _ in items if kind == "timeline"] == [
        "Web of Things and Solid", "Milestone 0.11.0", "STM meeting about use cases",
    ]
    assert ("task", "schedule an STM meeting about use cases", ["Hadrian"]) in items


def test_a_page_break_does_not_end_a_pdf_action_section() -> None:
    text = ("Minutes of the meeting\nAttendees: Ana, Bo\n1.1 Action Items\n• Book the venue for the launch\n"
            "• Order the banners\n2\n\f\n• Send the invitations to the press\n1.2 Discussion\n"
            "• Ana asked about the budget\n")
    doc = Document(path=Path("m.pdf"), kind="pdf", text=text, doc_date_ms=day(2024, 5, 1))
    assert [i.title for i in rules.extract(doc) if i.type == "task"] == [
        "Book the venue for the launch", "Order the banners", "Send the invitations to the press",
    ]


def test_not_minutes_no_sentence_rules() -> None:
    doc = Document(path=Path("essay.md"), kind="markdown", text="Hadrian to reach out to PA.\n", doc_date_ms=0)
    assert rules.extract(doc) == []


@pytest.mark.parametrize(
    ("raw", "title", "aside"),
    [
        ("88.1- Fix the build.", "Fix the build", None),
        ("○ Review the design;", "Review the design", None),
        ("implement in CSS: https://github.com/solid/community-server/issues/720", "implement in CSS", None),
        ("put into the assessment phase for now +1 JB +1 KK", "put into the assessment phase for now", None),
        ("direct edit in the browser (i.e.: to override files)", "direct edit in the browser", "i.e.: to override files"),
        ("Include data?", "Include data?", None),
        ("text", "", None),
        ("Implement Key Structural Changes: Formalize and optimize the structure within the division",
         "Implement Key Structural Changes", "Formalize and optimize the structure within the division"),
        ("reach out to Wouter so that we can discuss this from both the client and server perspectives",
         "reach out to Wouter", "so that we can discuss this from both the client and server perspectives"),
    ],
)
def test_task_titles_are_clean(raw: str, title: str, aside: str | None) -> None:
    assert clean_task_title(raw) == (title, aside)


# ---- the document's own date ------------------------------------------------------------------


def test_date_in_title_line() -> None:
    assert date_in_head("Daily stand-up, 4 March 2026 (example)\n\nOlu: done\n") == day(2026, 3, 4)
    assert date_in_head("# Minutes\n\n* Date: 2021-07-20\n") == day(2021, 7, 20)
    assert date_in_head("Notes\n\nWe met on 3 March.\n") is None  # no year: not the document's date
    assert date_in_head("\n".join(["x"] * 10 + ["4 March 2026"])) is None  # too far down


def test_date_in_file_name() -> None:
    assert date_in_name("standup-2026-03-04.txt") == day(2026, 3, 4)
    assert date_in_name("2016_08_22 notes.md") == day(2016, 8, 22)
    assert date_in_name("notes-2026-13-40.md") is None
    assert document_date("no date here\n", "sync-2020-02-26.md") == day(2020, 2, 26)
    assert document_date("Weekly sync, 5 May 2021\n", "sync-2020-02-26.md") == day(2021, 5, 5)


def test_standup_example_tomorrow_is_the_day_after_the_document(tmp_path: Path) -> None:
    """README quick start: "tomorrow" in standup-2026-03-04.txt is 5 March 2026, whatever the mtime."""
    example = Path(__file__).resolve().parents[2] / "examples" / "inbox" / "standup-2026-03-04.txt"
    doc = read_document(example, max_bytes=1_000_000)
    assert doc.doc_date_ms == day(2026, 3, 4)
    [icons] = [i for i in rules.extract(doc, now_ms=day(2031, 1, 1)) if "icon set" in i.title]
    assert icons.due_date == day(2026, 3, 5)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        # front matter beats everything
        ("n-2020-01-01.md", "---\ndate: 2022-02-02\n---\n# Notes, 3 March 2023\n- [ ] call Bo tomorrow\n", (2022, 2, 3)),
        # a date in the title / first lines beats the file name
        ("n-2020-01-01.md", "# Notes, 3 March 2023\n\n- [ ] call Bo tomorrow\n", (2023, 3, 4)),
        # the file name when the text has none
        ("n-2020-01-01.txt", "TODO: call Bo tomorrow\n", (2020, 1, 2)),
        # an email's Date header
        ("m.eml", "From: a@b.c\nSubject: x\nDate: Tue, 10 Feb 2015 09:00:00 +0000\n\nTODO: call Bo tomorrow\n",
         (2015, 2, 11)),
        # a calendar's DTSTAMP
        ("c.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:1\r\nDTSTAMP:20190301T120000Z\r\n"
                  "SUMMARY:call Bo\r\nEND:VTODO\r\nEND:VCALENDAR\r\n", (2019, 3, 1)),
    ],
)
def test_each_source_of_the_document_date(tmp_path: Path, name: str, content: str, expected: tuple[int, int, int]) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    doc = read_document(path, max_bytes=1_000_000)
    items = rules.extract(doc, now_ms=day(2031, 1, 1))
    if doc.kind == "calendar":
        assert doc.doc_date_ms is not None
        assert clock.to_ms(dt.datetime.fromtimestamp(doc.doc_date_ms / 1000).date()) == day(*expected)
    else:
        [task] = items
        assert task.due_date == day(*expected)


def test_pdf_date_in_first_lines(tmp_path: Path) -> None:
    path = tmp_path / "minutes.pdf"
    path.write_bytes(pdf_with_text("Team meeting, 9 September 2023", "TODO: send the slides tomorrow"))
    doc = read_document(path, max_bytes=1_000_000)
    [task] = rules.extract(doc, now_ms=day(2031, 1, 1))
    assert task.due_date == day(2023, 9, 10)


# ---- other languages --------------------------------------------------------------------------

GERMAN = (
    "# Protokoll der Sitzung\n\nAnwesend: Anna Müller, Jörg Weiß\n\n"
    "Action: Anna wird das Budget prüfen und die Räume für Dienstag buchen\n"
    "- [ ] Räume buchen für Dienstag\n\n"
    "Die nächste Besprechung findet im März statt. Wir haben über die Planung gesprochen, "
    "die Aufgaben verteilt und die Ergebnisse der Umfrage besprochen. Jörg übernimmt die Einladung.\n"
)
SWEDISH = (
    "Hej Person B,\n\nBerättar gärna. Enklast är om vi kan ta ett kort samtal under dagen. Jag är "
    "flexibel fram till kl 15 idag, och vi kan gå igenom rollen och företaget då.\n\nMed vänlig hälsning\n"
)


def test_other_language_keeps_only_language_neutral_items() -> None:
    doc = Document(path=Path("protokoll.md"), kind="markdown", text=GERMAN, doc_date_ms=day(2026, 3, 1))
    assert [(i.title, i.signal) for i in rules.extract(doc)] == [("Räume buchen für Dienstag", "checkbox")]


def test_other_language_without_neutral_items_is_one_note() -> None:
    doc = Document(path=Path("svar.txt"), kind="text", text=SWEDISH, doc_date_ms=day(2024, 12, 5))
    [note] = rules.extract(doc)
    assert (note.type, note.signal, note.title) == ("note", "language-note", "Hej Person B")
    assert note.description is not None and note.description.startswith("[sv] ")


def test_english_text_is_not_sent_to_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pure-ASCII text is taken as English without loading the language model."""
    from sidecar.ingest.rules import language

    def no_model() -> None:
        raise AssertionError("model loaded for ASCII text")

    monkeypatch.setattr(language, "_model", no_model)
    doc = Document(path=Path("n.md"), kind="markdown", text="Action: book the venue by Friday\n" * 5, doc_date_ms=0)
    assert [i.title for i in rules.extract(doc)] == ["book the venue"]


# ---- email: the newest part ---------------------------------------------------------------------

THREAD = (
    "From: Ana <ana@example.com>\nTo: bo@example.com\nSubject: Re: slides\n"
    "Date: Mon, 02 Mar 2026 09:00:00 +0100\n\n"
    "Hi Bo,\n\nPlease send the slides by Friday.\n\nThanks, Ana\n\n"
    "Am So., 1. März 2026 um 17:22 Uhr schrieb Bo <bo@example.com>:\n\n"
    "TODO: book the projector\nAction: ask IT for a room\n"
)


def test_email_requests_in_the_newest_part_only(tmp_path: Path) -> None:
    """The request in the newest part is a task; the quoted German history (no '>' quoting)
    is cut off by mail-parser-reply, so its TODO/Action lines are not."""
    path = tmp_path / "re.eml"
    path.write_text(THREAD, encoding="utf-8")
    doc = read_document(path, max_bytes=1_000_000)
    items = rules.extract(doc, now_ms=day(2031, 1, 1))
    assert [(i.title, i.signal, i.due_date) for i in items] == [
        ("send the slides", "email-request", day(2026, 3, 6)),
    ]


def test_requests_to_named_people_and_handle_speakers() -> None:
    text = (
        "# Weekly call minutes\n\n## Present\n\n* Ana Lima (@analima)\n* Bo Chen (@bochen)\n\n## Notes\n\n"
        "* @analima please review the release notes before Friday\n"
        "* Folks, please comment on the governance PR\n"
        "* @bochen: will open an issue for the flaky test\n"
    )
    assert [(t, a) for kind, t, a in _minutes(text) if kind == "task"] == [
        ("review the release notes", ["analima"]),
        ("comment on the governance PR", []),
        ("open an issue for the flaky test", ["bochen"]),
    ]


def test_calls_for_help_are_requests() -> None:
    text = (
        "# Weekly call minutes\n\n## Present\n\n* Ana Lima\n\n## Notes\n\n"
        "* The streams rewrite is nearly there, need more eyes on PR 4512\n"
        "* Ana: looking for reviewers for the release notes\n"
        "* We had help from many people last year\n"
    )
    assert [t for kind, t, _ in _minutes(text) if kind == "task"] == [
        "need more eyes on PR 4512", "looking for reviewers for the release notes",
    ]


# ---- fourth session: forms found in the new dev sources (CPC minutes, PDF minutes) ------------

CPC_STYLE = """# Foundation Council Meeting 2024-03-04

## Present

- Ana Lima (@ana)
- Bo Chen (@bo)
- Cy Park

## Agenda

* Release policy draft [#23](https://example.org/pull/23)
  - Ana takes action to land
  - Action to revisit in next meeting to find a better time
* Travel fund privacy [#7](https://example.org/issues/7)
  - Hold on this while the infra work happens, Bo will comment
  - Cy going through the legal training will report back in a few weeks
  - Ultimately, Ana will decide
"""


def test_takes_action_to_and_action_to_are_actions() -> None:
    items = _minutes(CPC_STYLE)
    tasks = [(t, a) for kind, t, a in items if kind == "task"]
    assert ("revisit in next meeting to find a better time", []) in tasks
    assert ("land – Release policy draft", ["Ana"]) in tasks


def test_a_bare_action_takes_its_topic_from_the_item_above() -> None:
    """"land" / "will comment" say nothing alone: the parent list item (without its issue link)
    is the topic; a full action keeps its own words."""
    tasks = [(t, a) for kind, t, a in _minutes(CPC_STYLE) if kind == "task"]
    assert ("comment – Travel fund privacy", ["Bo"]) in tasks
    assert ("report back in a few weeks", ["Cy"]) in tasks


def test_a_commitment_after_a_clause_needs_a_listed_person_and_a_real_clause() -> None:
    """"…, Bo will comment" counts (Bo is listed); "Ultimately, Ana will decide" is one adverb
    before the name, a remark about who decides; an unlisted name after a clause is no owner."""
    titles = [t for kind, t, _ in _minutes(CPC_STYLE) if kind == "task"]
    assert not any("decide" in t for t in titles)
    text = CPC_STYLE + "  - After the call with legal, Fred will draft the FAQ\n"
    assert not any("FAQ" in t for kind, t, _ in _minutes(text) if kind == "task")


def test_next_meeting_label_over_a_date_line() -> None:
    """A PDF form gives "Next meeting" and its value on separate lines (blank ones between)."""
    text = ("Meeting Minutes & Action Items\n \nDate & Time\n \nWednesday, September 23, 2020 at 10:10am EDT\n"
            " \nAttendance\n \nAll members are present.\n \nNext meeting\n \n \nWednesday, September 30, 2020 at"
            " 10:10am EDT\n \nAction items\n \nDate & Time\n \nMinutes (i.e. Decisions)\n")
    doc = Document(path=Path("m.pdf"), kind="pdf", text=text, doc_date_ms=day(2020, 9, 23))
    items = rules.extract(doc)
    assert [(i.type, i.title) for i in items] == [("timeline", "Next meeting")]
    assert items[0].date is not None and day(2020, 9, 30) <= items[0].date < day(2020, 10, 1)


def test_record_headings_are_not_tasks_but_items_with_numbers_are() -> None:
    """The record's own headings ("Date & Time", "Meeting Minutes & Action Items", "Minutes
    (i.e. Decisions)") taken from a PDF action section are no tasks; "Item 5" is."""
    text = ("Minutes of the meeting\nAttendees: Ana, Bo\nAction items\nMeeting Minutes & Action Items\n"
            "Book the venue for the launch\nMinutes (i.e. Decisions)\n")
    doc = Document(path=Path("m.pdf"), kind="pdf", text=text, doc_date_ms=day(2024, 5, 1))
    assert [i.title for i in rules.extract(doc) if i.type == "task"] == ["Book the venue for the launch"]
    assert [i.title for i in rules.extract(Document(path=Path("n.md"), kind="markdown",
                                                    text="- [ ] Item 5\n- [ ] Date & Time\n"))] == ["Item 5"]


def test_pdf_table_hint_sees_a_header_whose_cells_are_lines_of_their_own() -> None:
    """Google Docs PDFs give each table cell its own text line; the page still qualifies for the
    table finder ("Task Description" / "Assign To" / "Due Date")."""
    from sidecar.ingest.readers.pdf import _TABLE_HEADER_HINT, _cells_joined

    page = "Next meeting\n \nID#\n \nTask Description\n \nAssign To\n \nDue Date\n \n1.\n \nRead more\n"
    assert _TABLE_HEADER_HINT.search(page) is None
    assert _TABLE_HEADER_HINT.search(_cells_joined(page)) is not None


def test_a_speaker_giving_an_instruction_and_a_filler_before_a_request() -> None:
    """"KK: Engage the design team to coordinate" is KK's proposed action; "SC: Need to check …"
    and "SC: See the thread" are remarks; "JB: So lets move …" is a request despite the "So"."""
    text = ("# Editors meeting minutes\n\n## Present\n\n* Kim Kay\n* Sam Cole\n* Jo Berg\n\n## Notes\n\n"
            "* KK: Engage the design team to coordinate\n* SC: Need to check their scopes first\n"
            "* SC: See the thread for details\n* JB: So lets move the known issues into the next milestone\n"
            "* KK: thanks all\n")
    assert _tasks(text) == [
        ("Engage the design team to coordinate", ["KK"]),
        ("move the known issues into the next milestone", []),
    ]


def test_a_deadline_on_the_documents_own_day_is_still_an_event() -> None:
    """The document's day is when the meeting was held — unless the line names a deadline or a
    milestone on it (a PDF's date is often its creation day, the last day of a project)."""
    text = ("Meeting minutes\nAttendees: Ana, Bo\nDate: 17/02/2020\n"
            "● Arranging a milestone on 05/03/2020 to be done with the coding\n"
            "● The meeting on 05/03/2020 was short\n")
    doc = Document(path=Path("m.pdf"), kind="pdf", text=text, doc_date_ms=day(2020, 3, 5))
    events = [(i.title, i.date) for i in rules.extract(doc) if i.type == "timeline"]
    assert events == [("Arranging a milestone to be done with the coding", day(2020, 3, 5))]


def test_a_second_clause_without_its_subject_is_the_speakers_or_named_persons_action() -> None:
    """"Rich: looked into it, will open an issue" — the speaker; "Cy checking the numbers; will
    report back on the budget" — the listed person the line starts with; an unlisted first word
    ("Nobody knows, will see") names no one."""
    text = ("# Team meeting minutes\n\n## Present\n\n* Rich Roe\n* Cy Park\n\n## Notes\n\n"
            "* Rich: looked into it, will open an issue for the flaky test\n"
            "* Cy checking the numbers; will report back on the budget\n"
            "* Maybe later, will open the discussion again\n")
    assert _tasks(text) == [
        ("open an issue for the flaky test", ["Rich"]), ("report back on the budget", ["Cy"]),
    ]


def test_a_speakers_have_to_is_their_commitment_and_but_name_will_counts() -> None:
    """"RV: Got to go. Have to follow up via comments." is RV's; "Have to …" with no speaker, and a
    speaker's "Need to …" (a remark about the work), are not; "…, but Cy will …" names Cy."""
    text = ("# Team meeting minutes\n\n## Present\n\n* Rob Vale\n* Cy Park\n\n## Notes\n\n"
            "* RV: Got to go. Have to follow up via comments.\n* RV: Need to get implementors together\n"
            "* Have to think about it\n* The review could be slow, but Cy will chase the editors\n")
    assert _tasks(text) == [
        ("follow up via comments", ["RV"]), ("chase the editors", ["Cy"]),
    ]


def test_work_delegated_under_a_persons_name() -> None:
    """In minutes, items under a listed person's name (or one who owns an action elsewhere:
    "Samuel to …") are that person's tasks — not reports ("Finished his part", "Starting
    today"), not the attendee list (which ends at the "Notes:" label), not a topic word over its
    sub-items; "Leon - Elicitation" likewise. "Samuel to …" is no owner line of its own: Samuel
    is not listed."""
    text = ("Meeting minutes\nAttendees:\n- Leon Sun\n- Haixing Huang\n- Christian Politis\nNotes:\n"
            "- Delegation of roles:\n- Leon\n- Update quiz question\n- Move a quiz question\n- Samuel\n"
            "- Restore a quiz from trash\n- Haixing\n- Finished his part\n- Starting today\n"
            "- Samuel to complete the quiz list\n- For Pdf:\n- Leon - Elicitation\n- Newsletter\n- Stickers\n")
    assert _tasks(text, "pdf", (2024, 3, 4)) == [
        ("Update quiz question", ["Leon"]), ("Move a quiz question", ["Leon"]),
        ("Restore a quiz from trash", ["Samuel"]), ("Elicitation", ["Leon"]),
    ]


@pytest.mark.parametrize(
    "people_list",
    [
        "## Attendees:\n\n* Ana Lima\n* Dr. Bo Chen, ACME.\n\n",  # under a people label: not Ana's work
        "Present: Ana Lima\n\nReviewers:\n- Ana\n- Bo Chen (@bo)\n- Cy Park (@cy)\n\n",  # names under a name
    ],
)
def test_a_list_of_people_is_no_delegated_work(people_list: str) -> None:
    text = f"Meeting minutes\n\n{people_list}## Notes\n\n* Ana to book the room\n"
    doc = Document(path=Path("m.md"), kind="markdown", text=text, doc_date_ms=day(2024, 3, 4))
    assert [i.title for i in rules.extract(doc) if i.type == "task"] == ["book the room"]


def test_a_suggestions_or_to_do_label_before_the_next_occasion_opens_an_action_section() -> None:
    text = (
        "Meeting with graders\n"
        "Current problem:\n"
        " - Obstacle in writing the report\n"
        "Suggestion before next grading:\n"
        " - Read through the report before setting up a meeting\n"
        " - Switch to slack to improve communication\n"
        "To do before the next lab:\n"
        " - Solder the second sensor board\n"
    )
    assert [t for t, _ in _tasks(text, "pdf")] == [
        "Read through the report before setting up a meeting",
        "Switch to slack to improve communication",
        "Solder the second sensor board",
    ]


def test_delegated_work_under_a_short_name_after_a_blank_line_and_not_a_title_case_name() -> None:
    """"Chris" is a short form of the listed Christian, "Sam" of Samuel; Samuel's items may follow
    his name after one blank line; a Title-Case phrase noted under a name ("Major Project
    Presentation W11 Tuesday 10am") is an event or heading, not that person's work."""
    text = ("Meeting minutes\nAttendees:\n- Christian Politis\n- Samuel Lee\n- Leon Sun\nNotes:\n"
            "- Chris\n- Logout\n- Transfer the quiz to another owner\n- Sam\n\n- View quiz in trash\n"
            "- Leon\n- Set up issue boards\n- Major Project Presentation W11 Tuesday 10am\n")
    assert _tasks(text, "pdf", (2024, 3, 4)) == [
        ("Logout", ["Chris"]), ("Transfer the quiz to another owner", ["Chris"]),
        ("View quiz in trash", ["Sam"]), ("Set up issue boards", ["Leon"]),
    ]


def test_work_assigned_in_the_passive_to_a_listed_person() -> None:
    text = ("Meeting minutes\nPresent:\n- Adam Lee\n- Bo Chen\n\n## Notes\n\n"
            "- New PR to be opened by Adam on the README with the current contents migrated\n"
            "- The spec needs to be protected by W3C agreements\n"
            "- A draft to be reviewed by Zed before Friday\n")
    assert _tasks(text) == [("New PR to be opened by Adam on the README with the current contents migrated", ["Adam"])]


def test_a_speakers_commitment_to_refrain_or_watch_is_no_action() -> None:
    text = ("Meeting minutes\nPresent: SC, HZ\n\n## Notes\n\n* SC: I'll abstain from reviewing 391\n"
            "* HZ: I will keep an eye on the list\n* SC: Will submit review this week\n")
    assert [t for t, _ in _tasks(text)] == ["submit review this week"]


def test_a_name_dash_topic_over_sub_items_is_no_task() -> None:
    """"Saulo - Website redesign" over the items of his report names what he reports on; without
    sub-items, "Leon - Elicitation" is still Leon's part of the work."""
    text = ("# Committee Meeting 2020-03-05\n\n## Present\n\n* Saulo Nunes (@saulonunes)\n* Leon Sun\n\n"
            "## Agenda\n\n* Saulo - Website redesign\n  * Hackathon last weekend, worked on search button\n"
            "* Leon - Elicitation\n")
    assert _tasks(text) == [("Elicitation", ["Leon"])]


def test_an_agenda_item_naming_an_issue_is_no_spoken_action() -> None:
    """"Chore: Move to OpenJS slack [#421](…)" is an issue's title on the agenda ("Chore:" is no
    speaker); the notes under it may still hold actions."""
    text = ("# Committee Meeting 2020-03-05\n\n## Present\n\n* Joe Sepi\n\n## Agenda\n\n"
            "* Chore: Move to OpenJS slack (TBD) [#421](https://github.com/nodejs/nodejs.dev/issues/421)\n"
            "  * Joe to update the channel list\n"
            "* Chore: Upgrade to Node 12 [#419](https://github.com/nodejs/nodejs.dev/issues/419)\n")
    assert _tasks(text) == [("update the channel list", ["Joe"])]


def test_a_list_item_wrapped_onto_the_next_line_is_read_whole() -> None:
    text = ("# Committee Meeting 2020-03-05\n\n## Present\n\n* Joe Sepi\n\n## Agenda\n\n"
            "* CPC\n  * CoCP panel, Node.js can have a representative, Joe will open issues to\n"
            "     help identify the Node.js representative\n")
    assert _tasks(text) == [("open issues to help identify the Node.js representative", ["Joe"])]


def test_a_request_word_continuing_a_paragraph_line_is_no_request() -> None:
    """"If you will be attending as a guest, / please comment on this issue …": the line starts
    inside a sentence (a conditional template remark); a request that starts its line is one."""
    text = ("# Committee Meeting 2020-03-05\n\n## Present\n\n* Joe Sepi\n\n"
            "Attend by calling in to Zoom. If you will be attending as a guest,\n"
            "please comment on this issue to let us know you'll be joining.\n\n"
            "## Notes\n\n* Please review the budget PR\n")
    assert [t for t, _ in _tasks(text)] == ["review the budget PR"]


def test_an_action_pointing_back_takes_the_heading_above_as_its_topic() -> None:
    text = ("# Committee Meeting 2018-02-22\n\n## Present\n\n- Olivia Hugger\n\n## Notes\n\n"
            "### Explain inclusivity better [#117](https://github.com/nodejs/community-committee/issues/117)\n"
            "- Nobody has raised their hand yet\n- Olivia is going to dedicate some time to address this\n")
    assert _tasks(text) == [("dedicate some time to address this – Explain inclusivity better", ["Olivia"])]
