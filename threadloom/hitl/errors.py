"""Typed errors for approvals. Each says what was wrong and what to do about it.

Every refusal happens *before* the thread changes: when ``invoke(Command(resume=...))``
raises one of these, no checkpoint or pending write was stored, and ``get_state`` still
shows the same pending request. Fix the answer and resume again.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApprovalError",
    "ApprovalHooksMissingError",
    "ClockOverrideError",
    "DigestRequiredError",
    "NoPendingRequestError",
    "AnswerTooLargeError",
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


class NoPendingRequestError(InvalidResponseError, ApprovalMismatchError):
    """The answer names no request that is pending now: nothing is waiting, or the
    interrupt or request it names was already answered. ``pending`` lists the interrupt
    ids that are waiting (possibly none). Read the thread with ``get_state``.

    It is also an ``ApprovalMismatchError``: what the answer is for is not what is
    pending."""

    def __init__(
        self, message: str, *, request_id: str | None = None, pending: list[str] | None = None
    ) -> None:
        ApprovalError.__init__(self, message, request_id=request_id)
        self.expected = None
        self.got = None
        self.pending = list(pending or [])


class DeadlinePassedError(ApprovalError):
    """A person answered after the request's deadline; the deadline's own decision
    (applied by ``threadloom sweep``) is the only one accepted now.

    When the sweep already applied it, ``decision`` is what the deadline decided
    (``"reject"``, ``"accept"``, ``"escalate"``), ``decided_by`` who recorded it (the
    sweep's identity) and ``decided_at`` when."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        decision: str | None = None,
        decided_by: str | None = None,
        decided_at: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.decision = decision
        self.decided_by = decided_by
        self.decided_at = decided_at


class DigestRequiredError(InvalidResponseError):
    """An approving answer (accept / edit) that does not echo the request's ``digest``:
    it could approve whatever is pending when it arrives, not what the reviewer saw.
    Send ``{"type": "accept", "digest": request["digest"]}``."""


class AnswerTooLargeError(InvalidResponseError):
    """An answer (a resume value, an edit's arguments, a ``Command(update=...)``) larger
    than the deployment allows (``ApprovalHooks(max_answer_bytes=...)``), measured as
    its canonical JSON. It was refused before anything ran; the audit log keeps only
    its ``size``, ``digest`` (``"sha256:<hex>"`` of that JSON) and the reason, not the
    answer. ``limit`` is the limit it broke."""

    def __init__(
        self, message: str, *, size: int, limit: int, digest: str, request_id: str | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.size = size
        self.limit = limit
        self.digest = digest


class ClockOverrideError(ApprovalError, ValueError):
    """The run's config tried to set the approval clock (``hitl_now``): the clock belongs
    to the deployment, ``ApprovalHooks(clock=...)``, never to a request."""


class ApprovalHooksMissingError(ApprovalError, RuntimeError):
    """A node asked for approval in a graph compiled without the approval hooks, which
    check answers before they reach the node. Compile with
    ``compile(..., hooks=[ApprovalHooks()])`` (``ToolNode(approval=...)`` and
    ``create_react_agent(approval=...)`` attach them themselves)."""
