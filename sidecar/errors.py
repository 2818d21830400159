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
