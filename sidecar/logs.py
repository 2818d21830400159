"""Logging: JSON lines on stderr, a request id on every line, secrets never written.

stdout is reserved for the handshake (DESIGN §1), so every handler here writes to stderr.
Call :func:`redact` with each secret value (the API token, stored keys) once it is known: the
formatter replaces it with ``[redacted]`` wherever it appears in a line.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

#: The id of the HTTP request (or agent run) being handled; added to each log line.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_secrets: set[str] = set()


def redact(value: str | None) -> None:
    """Never write ``value`` to the log from now on (values shorter than 8 chars are ignored)."""
    if value and len(value) >= 8:
        _secrets.add(value)


def scrub(text: str) -> str:
    """``text`` with every value given to :func:`redact` replaced by ``[redacted]`` — for error
    texts that are stored or sent (a provider's 401 message may quote the API key)."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


class _Formatter(JsonFormatter):
    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("litellm_redacted", None)  # a marker LiteLLM's filter puts on every record
        rid = request_id.get()
        if rid:
            log_data["request_id"] = rid

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send all logging (ours and libraries') as JSON lines to ``stream`` (default stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        _Formatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is replaced by our own request line (with the request id).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)
