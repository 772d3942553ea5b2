"""Errors a person can act on.

Services raise these; the API turns them into JSON bodies with the same message and the CLI
prints them. Nothing else (no stack trace) leaves the server."""

from __future__ import annotations

from typing import Any


class SafeCityError(Exception):
    """Base class: `message` is shown to the user as is, `status` is the HTTP status."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidInput(SafeCityError):
    status = 422
    code = "invalid_input"


class NotFound(SafeCityError):
    status = 404
    code = "not_found"


class Conflict(SafeCityError):
    status = 409
    code = "conflict"


class PayloadTooLarge(SafeCityError):
    status = 413
    code = "payload_too_large"


class Unauthenticated(SafeCityError):
    status = 401
    code = "unauthenticated"


class Forbidden(SafeCityError):
    status = 403
    code = "forbidden"


class ConfigError(SafeCityError):
    """Raised at start-up when configuration is wrong; names the exact key."""

    status = 500
    code = "config_error"


def invalid_input_from(errors: list[Any]) -> InvalidInput:
    """A pydantic/FastAPI validation error list as one message naming each field."""
    problems = []
    for e in errors:
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        problems.append(f"{'.'.join(parts) or 'body'}: {msg}")
    return InvalidInput("; ".join(problems), details=problems)
