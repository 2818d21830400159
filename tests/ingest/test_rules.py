"""The ``rules`` extractor, rule by rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar import clock
from sidecar.ingest import rules
from sidecar.ingest.items import CalendarComponent, Document, ExtractedItem, Span
from sidecar.ingest.rules.markdown import parsed_structure, structure

#: Wednesday 25 November 2026, 00:00 in the user's zone.
WED = clock.to_ms(dt.date(2026, 11, 25))


def day(y: int, m: int, d: int) -> int:
    return clock.to_ms(dt.date(y, m, d))


def doc(text: str, *, kind: str = "markdown", name: str = "note.md", date: int | None = WED) -> Document:
    return Document(path=Path(name), kind=kind, text=text, doc_date_ms=date)  # type: ignore[arg-type]


def run(text: str, **kw: object) -> list[ExtractedItem]:
    options = {k: kw.pop(k) for k in ("want", "skip_done", "now_ms") if k in kw}
    return rules.extract(doc(text, **kw), **options)  # type: ignore[arg-type]


def titles(text: str, **kw: object) -> list[str]:
    return [i.title for i in run(text, **kw)]


def test_constants() -> None:
    assert rules.EXTRACTOR_NAME == "rules"
    assert rules.EXTRACTOR_VERSION
    with pytest.raises(ValueError, match="unknown item kinds"):
        rules.extract(doc(""), want={"tasks", "emails"})


# ---- checkboxes -------------------------------------------------------------------------------


def test_checkbox_states() -> None:
    items = run(
        "- [ ] open item\n* [x] closed item\n+ [X] also closed\n1. [~] half done\n- [/] started\n"
        "- [-] cancelled\n- [ ] ~~struck entirely~~\n- [ ] ~~old plan~~ new plan\n"
    )
    assert [(i.title, i.status) for i in items] == [
        ("open item", "todo"),
        ("closed item", "done"),
        ("also closed", "done"),
        ("half done", "in_progress"),
        ("started", "in_progress"),
        ("struck entirely", "done"),
        ("new plan", "todo"),
    ]
    assert {i.signal for i in items} == {"checkbox"}
    assert all(i.confidence == 0.95 for i in items)


def test_checkbox_styles_without_a_list_marker_and_check_marks() -> None:
    items = run(
        "[ ] bare open box\n[x] bare done box\n- [✓] ticked box\n☐ ballot box\n☑ checked ballot box\n"
        "✅ shipped the release\n[see the notes]\n"
    )
    assert [(i.title, i.status) for i in items] == [
        ("bare open box", "todo"),
        ("bare done box", "done"),
        ("ticked box", "done"),
        ("ballot box", "todo"),
        ("checked ballot box", "done"),
        ("shipped the release", "done"),
    ]


@pytest.mark.parametrize(
    "line",
    [
        "- [ ] ~~write the brief~~",
        "- [ ] write the brief (done)",
        "- [ ] write the brief [DONE]",
        "- [ ] write the brief ✓",
        "- [ ] write the brief - ✅",
        "- [ ] DONE: write the brief",
        "- [ ] (completed) write the brief",
    ],
)
def test_done_markers_in_their_styles(line: str) -> None:
    (item,) = run(line + "\n")
    assert (item.title, item.status) == ("write the brief", "done")


def test_o_and_bracketed_numbers_are_list_markers_in_a_todo_file() -> None:
    text = "o fix the build on BSD\no write a man page\n(1) port to Windows\n(b) add a test suite\n"
    todo = rules.extract(Document(path=Path("TODO.txt"), kind="text", text=text))
    assert [i.title for i in todo] == [
        "fix the build on BSD", "write a man page", "port to Windows", "add a test suite",
    ]


def test_skip_done_and_want() -> None:
    text = "- [ ] a task\n- [x] done task\n"
    assert titles(text, skip_done=True) == ["a task"]
    assert titles(text, want={"notes"}) == []
    assert titles(text, want={"tasks"}) == ["a task", "done task"]


def test_checkbox_details_become_description() -> None:
    (item,) = run("- [ ] Sharding\n  - waiting on review\n  - needs a benchmark\n- plain bullet\n")
    assert item.description == "waiting on review\nneeds a benchmark"


def test_not_a_checkbox() -> None:
    assert titles("- [] empty box\n-[ ] no space\nWe should [x] something\n[ ]no space after the box\n") == []


def test_code_fences_are_ignored() -> None:
    assert titles("```\n- [ ] in code\nTODO: in code\n```\n- [ ] outside\n") == ["outside"]


# ---- labelled lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "title", "signal"),
    [
        ("TODO: water the plants", "water the plants", "todo-line"),
        ("TODO water the plants", "water the plants", "todo-line"),
        ("- TODO: water the plants", "water the plants", "todo-line"),
        ("todo: water the plants", "water the plants", "todo-line"),
        ("To-do: water the plants", "water the plants", "todo-line"),
        ("Action: water the plants", "water the plants", "action-line"),
        ("Action item: water the plants", "water the plants", "action-line"),
        ("Action items: water the plants", "water the plants", "action-line"),
        ("**Action:** water the plants", "water the plants", "action-line"),
        ("AI: water the plants", "water the plants", "ai-line"),
        ("*AI:* water the plants", "water the plants", "ai-line"),
        ("Next steps: water the plants", "water the plants", "next-step-line"),
        ("Next step: water the plants", "water the plants", "next-step-line"),
        ("Follow-up: water the plants", "water the plants", "follow-up-line"),
    ],
)
def test_label_lines(line: str, title: str, signal: str) -> None:
    (item,) = run(f"Intro text.\n{line}\nOutro.\n")
    assert (item.title, item.signal, item.type) == (title, signal, "task")


@pytest.mark.parametrize(
    "line",
    [
        "We still have a todo list somewhere.",
        "todo water the plants",  # lower case needs a colon
        "Action movies are fun",
        "AI is everywhere these days",
        "ai: lower-case AI is not the label",
        "AI systems: a survey",
        "Review of action items from prior meeting.",
        "FM: What's the action item that we would be taking?",
        "Next step is unclear",
        "The TODO.md file is long",
    ],
)
def test_prose_is_not_a_task(line: str) -> None:
    assert titles(f"{line}\n") == []


def test_ai_owner_forms() -> None:
    items = run(
        "AI(lukewagner): Try it and see if it breaks.\n"
        "AI(Ben Smith): Change back to i32.\n"
        "*AI:* JF to talk to Brian about using that tool.\n"
        "*AI:* Ben to update the repo, and JF to update the tracking issue.\n"
        "Action item (Ana): book the room\n"
        "*AI:* group, always discuss secure context.\n"
    )
    assert [(i.title, i.assignees) for i in items] == [
        ("Try it and see if it breaks", ["lukewagner"]),
        ("Change back to i32", ["Ben Smith"]),
        ("talk to Brian about using that tool", ["JF"]),
        ("update the repo, and JF to update the tracking issue", ["Ben", "JF"]),
        ("book the room", ["Ana"]),
        ("group, always discuss secure context", []),
    ]


# ---- owners, dates, priority, clean titles ----------------------------------------------------


def test_owner_forms() -> None:
    items = run(
        "- [ ] @maya draft the rota\n"
        "- [ ] draft the budget @li @sam\n"
        "- [ ] write the template (Owner: Priya)\n"
        "- [ ] check the printer Owner: Ravi, Jo\n"
        "- [ ] Work with @kim to test it\n"
        "- [ ] Get Stickers to the folks going to the fair\n"
    )
    assert [(i.title, i.assignees) for i in items] == [
        ("draft the rota", ["maya"]),
        ("draft the budget", ["li", "sam"]),
        ("write the template", ["Priya"]),
        ("check the printer", ["Ravi", "Jo"]),
        ("Work with @kim to test it", []),  # a mention mid-sentence is not an owner
        ("Get Stickers to the folks going to the fair", []),  # "Name to …" only in labelled lines
    ]


@pytest.mark.parametrize(
    ("line", "title", "due"),
    [
        ("- [ ] ship it 2026-12-03", "ship it", day(2026, 12, 3)),
        ("- [ ] ship it by Dec 3", "ship it", day(2026, 12, 3)),
        ("- [ ] ship it on 3 December 2026", "ship it", day(2026, 12, 3)),
        ("- [ ] ship it by Friday", "ship it", day(2026, 11, 27)),
        ("- [ ] ship it tomorrow", "ship it", day(2026, 11, 26)),
        ("- [ ] ship it next week", "ship it", day(2026, 12, 2)),
        ("- [ ] ship it due March 15", "ship it", day(2027, 3, 15)),  # no year: the next one
        ("- [ ] ship it", "ship it", None),
        ("- [ ] ship it, you may 2x the budget", "ship it, you may 2x the budget", None),
    ],
)
def test_due_dates_relative_to_document_date(line: str, title: str, due: int | None) -> None:
    (item,) = run(line)
    assert (item.title, item.due_date) == (title, due)


def test_due_date_with_time() -> None:
    (item,) = run("TODO: call the bank on Dec 3 at 3pm")
    assert item.due_date == clock.to_ms(dt.datetime(2026, 12, 3, 15, 0))
    assert item.title == "call the bank"


def test_relative_dates_fall_back_to_now_ms() -> None:
    (item,) = run("- [ ] renew passport tomorrow", date=None, now_ms=day(2030, 1, 1))
    assert item.due_date == day(2030, 1, 2)


@pytest.mark.parametrize(
    ("line", "priority", "title"),
    [
        ("- [ ] fix login !high", "high", "fix login"),
        ("- [ ] fix login !low", "low", "fix login"),
        ("- [ ] fix login (P1)", "high", "fix login"),
        ("- [ ] fix login [P2]", "medium", "fix login"),
        ("- [ ] fix login (P3)", "low", "fix login"),
        ("- [ ] fix login priority: medium", "medium", "fix login"),
        ("- [ ] URGENT: fix login", "high", "fix login"),
        ("- [ ] fix login, urgent", "high", "fix login"),
        ("- [ ] fix the urgent login bug", "high", "fix the urgent login bug"),
        ("- [ ] fix login P1 of 3", None, "fix login P1 of 3"),
        ("- [ ] fix login", None, "fix login"),
    ],
)
def test_priority_from_explicit_markers_only(line: str, priority: str | None, title: str) -> None:
    (item,) = run(line)
    assert (item.priority, item.title) == (priority, title)


def test_title_markup_is_cleaned() -> None:
    (item,) = run(
        "- [ ] [Create the illustration](https://x.example/1) for the **webrtc** `repo` ![i](a.png)"
    )
    assert item.title == "Create the illustration for the webrtc repo"


def test_long_titles_are_cut() -> None:
    (item,) = run("- [ ] " + "word " * 200)
    assert len(item.title) <= 500 and item.title.endswith("…")


def test_span_points_at_the_line() -> None:
    text = "# Notes\n\nsome text\n- [ ] book flights\n"
    (item,) = run(text)
    assert text[item.span.start : item.span.end] == "- [ ] book flights"
    assert (item.span.line_start, item.span.line_end) == (4, 4)


def test_fingerprint_survives_edits_above() -> None:
    (before,) = run("- [ ] book flights\n")
    (after,) = run("# New heading\n\nA paragraph added later.\n\n- [ ] Book flights!\n")
    assert before.span != after.span
    assert before.fingerprint() == after.fingerprint()


def test_duplicates_are_reported_once() -> None:
    assert titles("- [ ] call Bo\n- [ ] Call Bo.\nTODO: call bo\n") == ["call Bo"]


# ---- sections, markers, TODO files, tables ----------------------------------------------------


def test_markdown_section_under_heading() -> None:
    text = (
        "# Retro\n\n## Action items\n\n- Ines - order topsoil\n- Tom to fix the gate latch\n"
        "- Ask the council about a tap\n  - detail line that is not a task\n\n## Ideas\n\n- A bee hotel\n"
    )
    items = run(text)
    assert [(i.title, i.assignees, i.signal) for i in items] == [
        ("order topsoil", ["Ines"], "action-section"),
        ("fix the gate latch", ["Tom"], "action-section"),
        ("Ask the council about a tap", [], "action-section"),
    ]


@pytest.mark.parametrize(
    "header",
    ["## Agreed actions", "### New action items", "Action plan:", "Tasks for next week:", "## Decisions and actions",
     "4. Actions arising", "Task allocation"],
)
def test_action_lists_under_other_common_names(header: str) -> None:
    text = f"Notes\n\n{header}\n- Ana to book the venue\n- Send the invitations\n\n## Other\n\n- A bee hotel\n"
    assert [(i.title, i.assignees) for i in run(text)] == [
        ("book the venue", ["Ana"]), ("Send the invitations", []),
    ]


def test_a_heading_that_only_mentions_tasks_opens_no_section() -> None:
    text = "## Tasks we finished last week were many\n- Ana booked the venue\n"
    assert titles(text) == []


def test_plain_text_section_with_label_line() -> None:
    text = (
        "Accomplished:\n- Agreed on the idea\n\nAction Points:\n- Research the bot docs\n"
        "- Complete the research (Kevin)\n----------\nAction Points:\nN/A (Phase 1 Completed)\n"
    )
    assert titles(text, kind="text", name="minutes.txt") == [
        "Research the bot docs",
        "Complete the research (Kevin)",
    ]


def test_section_after_prose_label() -> None:
    text = "DG: Sounds like there are no objections - concrete action items:\nChange the spec\nHTML change\n\nLater prose.\n"
    assert titles(text) == ["Change the spec", "HTML change"]


def test_group_labels_in_section_are_skipped() -> None:
    text = "### TODO\n- Design\n  - [ ] list the requirements\n    - e.g. a detail\n- Implementation\n  - [ ] prototype\n"
    assert titles(text) == ["list the requirements", "prototype"]


def test_trailing_todo_and_done_markers() -> None:
    items = run("0. Use SPAG\n    0. agree on conventions - DONE!\n    1. run SPAG - TODO\n2. plain item\n")
    assert [(i.title, i.status, i.signal) for i in items] == [
        ("agree on conventions", "done", "todo-marker"),
        ("run SPAG", "todo", "todo-marker"),
    ]


def test_an_instruction_verb_is_no_owner() -> None:
    """"Use SPAG to beautify code" is one instruction: "Use SPAG" owns nothing (an earlier bug made
    it the owner of "beautify code"); "Ana to book the room" still names Ana."""
    items = run("# TODO\n\n0. Use SPAG to beautify code\n1. Ana to book the room\n")
    assert [(i.title, i.assignees) for i in items] == [
        ("Use SPAG to beautify code", []), ("book the room", ["Ana"]),
    ]


def test_todo_file_items() -> None:
    """Every item of a to-do file, sub-items too (under an action item and under a group label
    such as "PAM"); a group label is no task, nor is a remark under an item ("It looks like …",
    "See above …")."""
    text = (
        "Documentation:\n\n- Update the docs\n  - Update README\n  - It looks like we could merge them\n\n"
        "- Install FAQ?\n"
        "- Link order is incorrect for some systems using Kerberos 4 and AFS. Result\n"
        "  is multiple inclusion of DES symbols.\n\nPrivSep Issues:\n- PAM\n  + See above PAM notes\n"
        "  + Use a different PAM service name\n"
    )
    todo = rules.extract(Document(path=Path("openssh-TODO.txt"), kind="text", text=text))
    assert [(i.title, i.signal) for i in todo] == [
        ("Update the docs", "todo-file"),
        ("Update README", "todo-file"),
        ("Install FAQ?", "todo-file"),
        ("Link order is incorrect for some systems using Kerberos 4 and AFS", "todo-file"),
        ("Use a different PAM service name", "todo-file"),
    ]
    assert todo[3].description == "Result is multiple inclusion of DES symbols."
    assert rules.extract(Document(path=Path("notes.txt"), kind="text", text=text)) == []


def test_markdown_action_table() -> None:
    text = (
        "| Action | Owner | Deadline | Status |\n|---|---|---|---|\n"
        "| Book venue | Ana, Bo | 2026-12-01 | Done |\n"
        "| Send invites | all | 18/12/2026 | Ongoing |\n"
        "| Order cake | CJ | 05/12/2026 | New |\n"
    )
    items = run(text)
    assert [(i.title, i.assignees, i.due_date, i.status) for i in items] == [
        ("Book venue", ["Ana", "Bo"], day(2026, 12, 1), "done"),
        ("Send invites", [], day(2026, 12, 18), "in_progress"),
        ("Order cake", ["CJ"], day(2026, 12, 5), "todo"),  # day-first, proven by 18/12
    ]


def test_table_without_action_column_is_ignored() -> None:
    assert titles("| Name | Owner | Due |\n|---|---|---|\n| x | y | 2026-01-01 |\n") == []


def test_pdf_text_action_table() -> None:
    text = (
        "Agenda Items\n1. Talk\nAction Items Owner(s) Deadline Status\n"
        "Develop and agree product design diagrams, including;\n(1) wireframes, (2) ERD JC, AN, CM 04/03/19 New\n"
        "Create file structure  CM 04/03/19 New\nA row with no date at the end\n"
        "Get end to end demo All 30/03/19 Ongoing\n \nOther text 05/05/19 New\n"
    )
    items = rules.extract(Document(path=Path("m.pdf"), kind="pdf", text=text, doc_date_ms=WED))
    assert [(i.title, i.assignees, i.due_date, i.status) for i in items] == [
        (
            "Develop and agree product design diagrams",  # the ", including …" clause goes to the description
            ["JC", "AN", "CM"],
            day(2019, 3, 4),
            "todo",
        ),
        ("Create file structure", ["CM"], day(2019, 3, 4), "todo"),
        ("A row with no date at the end Get end to end demo", [], day(2019, 3, 30), "in_progress"),
    ]
    assert items[0].description == "including; (1) wireframes, (2) ERD"


def test_ambiguous_numeric_dates_are_not_guessed() -> None:
    text = "Actions\nTask Owner Deadline\nSend report AB 04/03/19\n"
    (item,) = rules.extract(Document(path=Path("m.pdf"), kind="pdf", text=text))
    assert (item.title, item.due_date) == ("Send report", None)


# ---- timelines ----------------------------------------------------------------------------------


def test_next_meeting_line() -> None:
    (item,) = run("Next meeting: 5th April, 2pm (unless times clear up)", date=day(2016, 3, 15))
    assert item.type == "timeline" and item.signal == "next-meeting"
    assert item.date == clock.to_ms(dt.datetime(2016, 4, 5, 14, 0))


def test_next_meeting_with_date_field() -> None:
    (item,) = run("Next Meeting\nDate: 09 SEP\nTime: 1200\nLocation: Room 1\n", date=day(2014, 9, 1))
    assert item.date == day(2014, 9, 9)
    assert item.span.line_end == 2


def test_next_meeting_without_date_is_nothing() -> None:
    assert run("Next meeting: to be decided\n") == []


def _component(**kw: object) -> CalendarComponent:
    return CalendarComponent(span=Span(start=0, end=1), **kw)  # type: ignore[arg-type]


def test_calendar_components() -> None:
    cal = Document(
        path=Path("c.ics"),
        kind="calendar",
        text="x",
        calendar_components=[
            _component(
                kind="VEVENT", summary="Standup", start_ms=1000, rrule="FREQ=DAILY", location="Room 2"
            ),
            _component(kind="VEVENT", summary="Cancelled party", start_ms=1000, status="CANCELLED"),
            _component(kind="VEVENT", summary="No start"),
            _component(kind="VTODO", summary="File taxes", due_ms=5000, priority=1, status="NEEDS-ACTION"),
            _component(kind="VTODO", summary="Buy stamps", status="COMPLETED", priority=9),
            _component(kind="VTODO", summary="Draft", status="IN-PROCESS", priority=5),
            _component(kind="VTODO", summary=None),
            _component(kind="VJOURNAL", summary=None, description="Happy new year!\nmore"),
        ],
    )
    items = rules.extract(cal)
    assert [(i.type, i.title, i.status, i.priority, i.signal) for i in items] == [
        ("timeline", "Standup", "todo", None, "vevent"),
        ("task", "File taxes", "todo", "high", "vtodo"),
        ("task", "Buy stamps", "done", "low", "vtodo"),
        ("task", "Draft", "in_progress", "medium", "vtodo"),
        ("note", "Happy new year!", "todo", None, "vjournal"),
    ]
    assert items[0].date == 1000 and "first occurrence" in (items[0].description or "")
    assert "Location: Room 2" in (items[0].description or "")
    assert items[1].due_date == 5000
    assert [i.title for i in rules.extract(cal, skip_done=True, want={"tasks"})] == ["File taxes", "Draft"]


# ---- email --------------------------------------------------------------------------------------


def _email(body: str, subject: str = "[club] Re: Plans") -> Document:
    from sidecar.ingest.items import EmailMessageInfo

    head = f"From: a@example.org\nSubject: {subject}\n\n"
    text = head + body
    info = EmailMessageInfo(
        span=Span(start=0, end=len(text)),
        body_start=len(head),
        subject=subject,
        date_ms=WED,
        sender="a@example.org",
    )
    return Document(path=Path("m.eml"), kind="email", text=text, messages=[info], doc_date_ms=WED)


def test_email_without_actions_is_a_note() -> None:
    (note,) = rules.extract(_email("Just a hello.\nSee you.\n"))
    assert (note.type, note.title, note.signal) == ("note", "Plans", "email-note")
    assert note.description == "Just a hello.\nSee you."
    assert rules.extract(_email("Just a hello.\n"), want={"tasks"}) == []


def test_email_with_actions_gives_tasks_not_a_note() -> None:
    items = rules.extract(_email("Hi,\nTODO: pay the deposit by Friday\n"))
    assert [(i.type, i.title, i.due_date) for i in items] == [("task", "pay the deposit", day(2026, 11, 27))]
    assert rules.extract(_email("Hi,\nTODO: pay the deposit\n"), want={"notes"}) == []


def test_email_quotes_and_signatures_are_not_scanned() -> None:
    body = "Thanks!\n> TODO: quoted task\n-- \nTODO: in the signature\n"
    assert [i.type for i in rules.extract(_email(body))] == ["note"]
    body = "Sure.\n\nOn Tue, 1 Dec 2026, Bo wrote:\nTODO: earlier mail\n"
    assert [i.type for i in rules.extract(_email(body))] == ["note"]


def test_email_note_title_fallbacks() -> None:
    (note,) = rules.extract(_email("First line of body\nsecond\n", subject=""))
    assert note.title == "First line of body"


def test_same_title_on_other_days_are_separate_timeline_entries() -> None:
    """An override instance or a weekly "Busy" keeps its own day (fingerprint includes the day)."""
    cal = Document(
        path=Path("c.ics"),
        kind="calendar",
        text="x",
        calendar_components=[
            _component(kind="VEVENT", summary="Busy", start_ms=day(2021, 3, 24)),
            _component(kind="VEVENT", summary="Busy", start_ms=day(2021, 3, 25)),
            _component(kind="VEVENT", summary="Busy", start_ms=day(2021, 3, 25) + 3_600_000),
        ],
    )
    assert [i.date for i in rules.extract(cal)] == [day(2021, 3, 24), day(2021, 3, 25)]


def test_itip_reply_events_are_not_calendar_entries() -> None:
    """A METHOD:REPLY calendar is an attendee's answer ("Declined: …"), RFC 5546 §1.4."""
    components = [_component(kind="VEVENT", summary="Declined: Review", start_ms=1000)]
    reply = Document(path=Path("r.ics"), kind="calendar", text="x", metadata={"method": "REPLY"},
                     calendar_components=components)
    request = reply.model_copy(update={"metadata": {"method": "REQUEST"}})
    assert rules.extract(reply) == []
    assert [i.title for i in rules.extract(request)] == ["Declined: Review"]


def test_todo_file_nested_groups() -> None:
    text = (
        "- parser bits and pieces:\n\t* allow comments in config\n\t* accept tabs as separators\n\n"
        "- theme stuff\n\t* dark mode toggle\n\n# Todo\n\n* edit and delete design, inc:\n"
        "  - RESTful handler\n  - for delete\n    - add 'deleted' status\n"
    )
    todo = rules.extract(Document(path=Path("TODO.md"), kind="markdown", text=text))
    assert [i.title for i in todo] == [
        "allow comments in config", "accept tabs as separators", "dark mode toggle", "RESTful handler",
        "add 'deleted' status",
    ]


def test_standup_will_do_lines() -> None:
    text = "Feb 09/2016\n\nLee I:\n    Done: Use cases\n    Will Do: Test cases for all use cases\n    Blockers: Midterm\n"
    items = run(text, kind="text", name="minutes.txt")
    assert [(i.title, i.assignees, i.signal) for i in items] == [
        ("Test cases for all use cases", ["Lee I"], "will-do-line"),
    ]


def test_markdown_structure_from_the_parser() -> None:
    """Setext headings open sections (a line regex would take the underline for a rule); HTML
    blocks and fences inside list items hold no tasks."""
    text = (
        "Action items\n------------\n\n- Book the venue\n- Order the cake\n\n"
        "<!--\nTODO: hidden in a comment\n-->\n\n"
        "## Notes\n\n- step one\n\n  ```\n  TODO: inside a fenced block in a list\n  ```\n"
    )
    assert titles(text) == ["Book the venue", "Order the cake"]


# ---- Markdown structure: the fast path agrees with the parser ------------------------------------

_MD_LINES = [
    "# Title", "## Action items", "### x ###", "#no", "#", "- [ ] task", "- item", "  - nested", "    # deep",
    "1. one", "", "text line", "> quote", "> # q", "- # li", "   # three", "####### seven", "# C#", "## a ## b",
    "\t# tab", "* star", "TODO: x", "a | b", "|---|", "#\tTabbed", "# trailing #  ", "10) ten", "   - x",
    "Setext", "===", "---", "```", "~~~", "<div>", "<!-- c -->",
]


@given(st.lists(st.sampled_from(_MD_LINES), max_size=12))
@settings(max_examples=400, deadline=None)
def test_markdown_structure_fast_path_matches_the_parser(lines: list[str]) -> None:
    """Headings read from ATX lines alone (no fence, HTML, setext or nested heading present) are
    what markdown-it finds; other texts go to the parser."""
    text = "\n".join(lines)
    assert structure(text) == parsed_structure(text)


def test_todo_section_parents_with_sub_items_are_tasks() -> None:
    """Under "# TODO" an action with numbered sub-steps is a task, and so is each step; a group
    label ("for delete", "Design:") is not."""
    text = (
        "# TODO\n\n0. Beautify the code\n    0. run SPAG\n    1. double check output for sanity\n"
        "1. for delete\n    - add deleted status\n"
    )
    assert titles(text) == [
        "Beautify the code", "run SPAG", "double check output for sanity", "add deleted status",
    ]


@pytest.mark.parametrize(
    "header",
    ["To-Do List", "Goals for next week:", "Plan for the next meeting", "Upcoming tasks", "Things to do:",
     "Work to be done", "Actions required:", "Decisions and Action Items", "Action items & next steps"],
)
def test_more_names_of_action_sections(header: str) -> None:
    text = f"Meeting notes\n\n{header}\n- Book the venue\n- Send the agenda to everyone\n"
    assert titles(text, kind="text", name="notes.txt") == ["Book the venue", "Send the agenda to everyone"]


def test_a_wrapped_line_that_ends_in_section_words_opens_no_section() -> None:
    text = "Meeting notes\n\n- Review the checklist to see what has been done and\nwhat needs to be done\n\nBen\n"
    assert titles(text, kind="pdf", name="minutes.pdf") == []


def test_word_and_pdf_bullet_glyphs_are_list_markers() -> None:
    """Symbol/Wingdings bullets of Word documents come out of PDFs as private-use glyphs
    (U+F0B7, U+F0A7); arrows and diamonds are bullets too. None stays in a title."""
    text = "Action Items\n\uf0b7 Book the room for Monday\n\uf0a7 Send the agenda\n➢ Print the handouts\n"
    assert titles(text, kind="pdf", name="minutes.pdf") == ["Book the room for Monday", "Send the agenda", "Print the handouts"]


def test_who_what_when_tables() -> None:
    """Beside an owner and a deadline column, "What"/"Item" is the action column; "When" is the
    deadline in a who/what/when table. Without an owner column "Item" names no action."""
    text = (
        "| What | Who | When |\n|---|---|---|\n| Book the venue | Ana | 2024-05-07 |\n\n"
        "| Item | Owner | Due date |\n|---|---|---|\n| Send the invoice | Bo | 2024-05-09 |\n\n"
        "| Item | Price |\n|---|---|\n| Coffee beans | 12 |\n"
    )
    items = run(text)
    assert [(i.title, i.assignees, i.signal) for i in items] == [
        ("Book the venue", ["Ana"], "action-table"),
        ("Send the invoice", ["Bo"], "action-table"),
    ]
    assert items[0].due_date == day(2024, 5, 7)


def test_a_todo_file_without_list_markers_is_read_line_by_line() -> None:
    text = (
        "TODO\n====\n\nBugs:\nfix the crash when the window is resized\nmake the status line\n"
        "   respect the terminal width\n\nFEATURES\nAdd a man page\nSupport UTF-8 in titles.\n"
        "x 2024-03-01 port to OpenBSD\n\nTerminal\n\tallow a second status line\n\tadd a bell option\n"
    )
    todo = rules.extract(Document(path=Path("TODO"), kind="text", text=text))
    assert [(i.title, i.status) for i in todo] == [
        ("fix the crash when the window is resized", "todo"),
        ("make the status line respect the terminal width", "todo"),
        ("Add a man page", "todo"),
        ("Support UTF-8 in titles", "todo"),
        ("port to OpenBSD", "done"),
        ("allow a second status line", "todo"),
        ("add a bell option", "todo"),
    ]
    assert {i.signal for i in todo} == {"todo-file"}


def test_plain_lines_of_other_files_are_no_tasks() -> None:
    assert titles("fix the crash when the window is resized\nAdd a man page\n", kind="text", name="notes.txt") == []


def test_name_colon_action_in_an_action_section_names_the_owner() -> None:
    items = run("## Action items\n- Ana: book the room for Monday\n- Note: the room has no projector\n")
    assert [(i.title, i.assignees) for i in items] == [
        ("book the room for Monday", ["Ana"]),
        ("Note: the room has no projector", []),
    ]


def test_actions_grouped_under_a_name_in_an_action_section() -> None:
    text = "## Action items\n- Ana\n  - book the room\n  - send the agenda\n- Bo Chen:\n  - print the handouts\n- Review the budget\n  - it is on the drive\n"
    assert [(i.title, i.assignees) for i in run(text)] == [
        ("book the room", ["Ana"]),
        ("send the agenda", ["Ana"]),
        ("print the handouts", ["Bo Chen"]),
        ("Review the budget", []),
    ]


def test_actions_and_action_points_labels() -> None:
    """"Actions:", "Action points:" and "Next actions:" are labels like "Action:" and "Next steps:"."""
    text = ("Minutes\nAttendees: Ana, Bo\nActions: Ana to book the room\nAction points:\n- Order the banners\n"
            "- Bo to call the printer\nNext actions: send the invoice\n")
    assert [(i.title, i.assignees, i.signal) for i in run(text)] == [
        ("book the room", ["Ana"], "action-line"), ("Order the banners", [], "action-section"),
        ("call the printer", ["Bo"], "action-section"), ("send the invoice", [], "next-step-line"),
    ]


def test_table_with_a_notes_column_and_an_actions_responsible_column_in_html_cells() -> None:
    """GitBook-style minutes: "Notes/Action Items" holds notes, "Actions: Responsible" holds the
    "NAME to VERB" items, cells in HTML lists; an empty ``<p><br></p>`` cell gives nothing."""
    text = (
        "| Discussion Points | Notes/Action Items | Actions: Responsible/None |\n| --- | --- | --- |\n"
        "| Quorum | Quorum achieved | <p><br></p> |\n"
        "| Plan | <ul><li>Discussion on the plan</li></ul> | <ul><li>Ben Hart to propose an update to the plan</li>"
        "<li>Hwang to submit the draft &#x26; notes</li></ul> |\n"
    )
    assert [(i.title, i.assignees, i.signal) for i in run(text)] == [
        ("propose an update to the plan", ["Ben Hart"], "action-table"),
        ("submit the draft & notes", ["Hwang"], "action-table"),
    ]


def test_for_name_owns_an_item_and_a_short_category_label_is_dropped() -> None:
    """"For Silona: Provide …" is Silona's; "Group decision: Meeting cadence …" is the item after
    its two-word category; a label of three words or more stays the title."""
    text = (
        "## Action Items\n\n* [ ] For Silona: Provide guideline on setting up Xwiki for backlog item testing.\n"
        "* [ ] Group decision: Meeting cadence > weekly 1 hour virtual meeting at 5pm-6pm BST\n"
        "* [ ] Solidify Division Strategy and Vision: Develop a long-term strategy for the whole division\n"
    )
    assert [(i.title, i.assignees) for i in run(text)] == [
        ("Provide guideline on setting up Xwiki for backlog item testing", ["Silona"]),
        ("Meeting cadence > weekly 1 hour virtual meeting at 5pm-6pm BST", []),
        ("Solidify Division Strategy and Vision", []),
    ]
