"""Typed errors of the server's service layer; the HTTP layer turns each into its status.

Every error body the server sends is ``{"detail": "<text>"}`` (what the official client
reads), and the text says what was wrong.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "ServerError",
    "Unauthorized",
    "Unprocessable",
    "stored_value_errors",
    "unprocessable_on",
]


class ServerError(Exception):
    """Base of the errors a request can end with; ``status`` is the HTTP status."""

    status = 500
    #: more fields of the error body, beside ``detail`` (e.g. an approval's ``reason``)
    extra: dict[str, Any] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(ServerError):
    """The request is well formed but names something that cannot be done (400)."""

    status = 400


class Unauthorized(ServerError):
    """No valid credentials (401)."""

    status = 401


class Forbidden(ServerError):
    """Authenticated, but not allowed to do this (403)."""

    status = 403


class NotFound(ServerError):
    """The thread, run, assistant or cron does not exist, or is not visible (404)."""

    status = 404


class Conflict(ServerError):
    """The request clashes with the current state: a busy thread, a duplicate id, an
    approval already answered (409)."""

    status = 409


class Unprocessable(ServerError):
    """A value of the request is invalid (422)."""

    status = 422


@contextlib.contextmanager
def unprocessable_on(*errors: type[Exception], what: str) -> Iterator[None]:
    """Turn ``errors`` raised inside into a 422 saying ``what`` was refused and why: for
    values the request passes on to a lower layer (the store, the checkpointer) that
    checks them itself."""
    try:
        yield
    except errors as exc:
        raise Unprocessable(f"{what}: {exc}") from None


def stored_value_errors() -> tuple[type[Exception], ...]:
    """The databases' "this value cannot be stored or compared" errors (PostgreSQL: a
    NUL character in a text or JSON value): when the value came from the request, its
    fault - ``unprocessable_on`` makes them a 422."""
    errors: list[type[Exception]] = [sqlite3.DataError]
    with contextlib.suppress(ImportError):
        import psycopg

        errors.append(psycopg.DataError)
    return tuple(errors)
