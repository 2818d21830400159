"""The one error type and the one error format.

Every failure a caller can act on is a :class:`SidecarError` with a stable ``code``. The HTTP
layer renders it as ``{"error": {"code", "message", "detail"}}`` with ``status``; agent tools
render the message back to the model; the CLI prints it. Nothing else builds error bodies.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class SidecarError(Exception):
    """A failure with a stable machine code, a human message, an HTTP status and optional detail."""

    status: int = 500
    code: str = "internal"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, detail: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.detail = detail

    def to_body(self) -> dict[str, Any]:
        """The JSON error body of DESIGN §2: ``{"error": {"code", "message", "detail"}}``."""
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


class BadRequest(SidecarError):
    status, code = 400, "bad_request"


class Unauthorized(SidecarError):
    status, code = 401, "unauthorized"


class Forbidden(SidecarError):
    status, code = 403, "forbidden"


class NotFound(SidecarError):
    status, code = 404, "not_found"


class Conflict(SidecarError):
    status, code = 409, "conflict"


class PayloadTooLarge(SidecarError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(SidecarError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(SidecarError):
    """422: the body or query is well-formed JSON but breaks the model's rules.

    ``detail`` is a list of ``{"field": "a.b", "message": str, "type": str}``.
    """

    status, code = 422, "validation_failed"

    @classmethod
    def from_pydantic(cls, exc: ValidationError, *, prefix: str = "") -> ValidationFailed:
        """Build from a pydantic error, naming offending fields by their API (camelCase) path."""
        fields = []
        for err in exc.errors(include_url=False, include_input=False):
            path = ".".join(str(p) for p in err["loc"])
            fields.append({"field": prefix + path, "message": err["msg"], "type": err["type"]})
        names = ", ".join(f["field"] or "(body)" for f in fields)
        return cls(f"invalid fields: {names}", detail=fields)

    @classmethod
    def field(cls, field: str, message: str, type_: str = "value_error") -> ValidationFailed:
        """A single-field validation failure."""
        return cls(f"invalid fields: {field}", detail=[{"field": field, "message": message, "type": type_}])


class DiskFull(SidecarError):
    """507: the disk holding the data dir is full; nothing was written (RFC 4918 §11.5)."""

    status, code = 507, "disk_full"


class StoreFailed(SidecarError):
    """503: the database can no longer be written safely (e.g. its file was replaced)."""

    status, code = 503, "store_error"


class Unavailable(SidecarError):
    """503: a component the request needs is not usable (see ``/v1/ready`` for why)."""

    status, code = 503, "unavailable"


class ModelError(SidecarError):
    """A model call failed (the model server, not the sidecar). ``code`` is stable: the API and the
    shell key off it. HTTP status 502 when rendered as a response (the model server is upstream).

    Attributes:
        message: a human-readable sentence naming the setting or secret to fix.
        setting: the setting to fix (``model.apiBase``, …) or ``None``.
        upstream_status: the HTTP status the model server answered, if any.
        attempts: how many attempts were made (1 = no retry).
        retry_after_s: the server's ``Retry-After`` in seconds, if it sent one.
        transient: whether another attempt could succeed (used by the retry policy).

    ``detail`` is derived from these: ``{"attempts", "setting"?, "status"?, "retryAfterS"?}``.
    """

    status, code = 502, "model_error"

    def __init__(
        self,
        message: str,
        *,
        setting: str | None = None,
        upstream_status: int | None = None,
        attempts: int = 1,
        retry_after_s: float | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.setting = setting
        self.upstream_status = upstream_status
        self.attempts = attempts
        self.retry_after_s = retry_after_s
        self.transient = transient

    @property
    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"attempts": self.attempts}
        if self.setting is not None:
            detail["setting"] = self.setting
        if self.upstream_status is not None:
            detail["status"] = self.upstream_status
        if self.retry_after_s is not None:
            detail["retryAfterS"] = self.retry_after_s
        return detail

    @detail.setter
    def detail(self, value: Any) -> None:
        """Ignored: the detail is always derived from the attributes (they change on retries)."""

    def with_message(self, message: str) -> None:
        """Replace the message (after retries, to say how many were made)."""
        self.message = message
        self.args = (message,)


class ModelUnavailableError(ModelError):
    """The model server cannot be reached: connection refused, unreachable, or dropped."""

    code = "model_unavailable"


class ModelAuthError(ModelError):
    """The model server rejected the credentials (HTTP 401/403)."""

    code = "model_auth"


class ModelRateLimitedError(ModelError):
    """The model server kept answering HTTP 429 after the retries."""

    code = "model_rate_limited"


class ModelTimeoutError(ModelError):
    """No first chunk within ``request_timeout_s``, or a stall longer than ``stall_timeout_s``."""

    code = "model_timeout"


class ModelRequestRejectedError(ModelError):
    """The server refused the request itself (HTTP 400/404/422). Code ``model_error``.

    Separate so AgentScope's structured-output fallback can try its next strategy on it.
    """
