"""The language a document is written in, and what the rules do about it.

The keyword and sentence rules (``Action:``, "Action items" sections, "NAME will …", "Next
meeting", email requests, dated events) are English. A document detected as another language
keeps only the language-neutral items (checkboxes, to-do markers and to-do file items, tables,
calendar components, the email note); when none is left it becomes one note (signal
``language-note``: the document's title or first line, its text as the description) for the
``llm`` extractor or the user, instead of tasks made of misread words.

Detection: ``py3langid`` (langid.py's model, shipped in the wheel) on up to 4,000 characters
without URLs, e-mail addresses and code. It runs only when the text has letters outside ASCII
(accents, other scripts): pure-ASCII text is taken as English, which keeps the common case free
of the model (loading it takes about a second once per process). A result below
:data:`MIN_CONFIDENCE`, or from fewer than :data:`MIN_LETTERS` letters, counts as English too.
"""

from __future__ import annotations

import re
import threading
from typing import Any

#: Languages the keyword rules are written for (ISO 639-1).
SUPPORTED = frozenset({"en"})
#: Signals that rely on English words; dropped for documents in other languages.
ENGLISH_SIGNALS = frozenset(
    {
        "action-line", "ai-line", "next-step-line", "follow-up-line", "action-section",
        "minutes-action", "person-group", "email-request", "dated-event", "next-meeting",
    }
)
MIN_CONFIDENCE = 0.9
MIN_LETTERS = 40
_SAMPLE = 4000
_NOISE = re.compile(r"https?://\S+|\S+@\S+|```.*?```|`[^`]*`|<[^>]{0,200}>", re.S)

_lock = threading.Lock()
_identifier: Any = None


def _model() -> Any:
    global _identifier
    with _lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def detect(text: str) -> str:
    """ISO 639-1 code of the language of ``text`` (``"en"`` when unsure; see the module docstring)."""
    head = text[: _SAMPLE * 2]
    if head.isascii():
        return "en"
    sample = _NOISE.sub(" ", head)[:_SAMPLE]
    letters = [c for c in sample if c.isalpha()]
    if len(letters) < MIN_LETTERS or all(c.isascii() for c in letters):
        return "en"
    if sum(1 for c in letters if not c.isascii()) < max(2, len(letters) // 300):
        return "en"  # a name with an accent in English text
    lang, confidence = _model().classify(sample)
    return str(lang) if confidence >= MIN_CONFIDENCE else "en"
