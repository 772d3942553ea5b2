"""Errors of the vision library: messages a person can act on.

Kept free of the rest of SafeCity (vision is a standalone library); `safecity.video`
turns them into the product's `SafeCityError`s where they cross into a service."""

from __future__ import annotations


class VisionError(Exception):
    """A problem with a model, a stream or a rule; `message` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamError(VisionError):
    """A stream could not be opened or stopped delivering frames."""
