"""Typed errors for approvals. Each says what was wrong and what to do about it.

Every refusal happens *before* the thread changes: when ``invoke(Command(resume=...))``
raises one of these, no checkpoint or pending write was stored, and ``get_state`` still
shows the same pending request. Fix the answer and resume again.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApprovalError",
    "ApprovalMismatchError",
    "DeadlinePassedError",
    "DuplicateApproverError",
    "InvalidEditError",
    "InvalidResponseError",
    "ReviewerNotAllowedError",
]


class ApprovalError(Exception):
    """Base of every approval error; ``request_id`` names the request concerned, if any."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class InvalidResponseError(ApprovalError, ValueError):
    """The answer does not fit the request: wrong shape, a response type the request does
    not allow, an unknown request id, or no request answered at all."""


class InvalidEditError(InvalidResponseError):
    """An ``edit`` whose arguments do not fit the action's schema.

    ``errors`` lists the validation problems (pydantic's ``errors()`` shape when the
    tool has a pydantic schema).
    """

    def __init__(
        self, message: str, *, request_id: str | None = None, errors: list[Any] | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.errors = list(errors or [])


class ReviewerNotAllowedError(ApprovalError, PermissionError):
    """The identity in ``config["configurable"]["reviewer"]`` may not decide this request
    (missing, or without any of the request's reviewer roles)."""


class DuplicateApproverError(ReviewerNotAllowedError):
    """The same reviewer answered a request that needs several distinct reviewers twice."""


class ApprovalMismatchError(ApprovalError):
    """What is about to run is not what was approved.

    Raised when an answer carries the digest of a different proposal than the one now
    pending (the arguments or the checkpoint changed since the reviewer looked), or when
    an action is executed with arguments other than the approved ones. Nothing was run:
    read the thread again with ``get_state`` and decide on the request as it is now.
    """

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        expected: str | None = None,
        got: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.expected = expected
        self.got = got


class DeadlinePassedError(ApprovalError):
    """A person answered after the request's deadline; the deadline's own decision
    (applied by ``threadloom sweep``) is the only one accepted now."""
