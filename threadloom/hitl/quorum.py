"""Who may decide a request, and how many must agree.

The reviewer's identity never comes from the answer itself (anyone can type a name into
a JSON payload): it comes from the run's config, ``config["configurable"]["reviewer"] =
{"id": ..., "roles": [...]}``, which a server fills in from the authenticated user. The
answer is stamped with that identity when it arrives, before it is stored.

A request may name the roles allowed to resolve it and a quorum: ``Reviewers(roles=
["finance"], quorum=2)`` needs two *distinct* finance reviewers to approve. An approval
short of quorum is recorded and the thread stays paused; one rejection is final unless
``rejections`` asks for more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from threadloom.hitl.errors import DuplicateApproverError, ReviewerNotAllowedError

__all__ = ["REVIEWER_KEY", "Reviewer", "Reviewers", "check_reviewer"]

REVIEWER_KEY = "reviewer"
"""Config key (under ``configurable``) holding the identity of the person resuming."""


@dataclass(frozen=True, slots=True)
class Reviewer:
    """An authenticated person (or system) answering a request."""

    id: str
    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: Reviewer | Mapping[str, Any] | None) -> Reviewer | None:
        """Parse ``{"id": ..., "roles": [...]}`` (or a ``Reviewer``, or None)."""
        if value is None or isinstance(value, Reviewer):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                "config['configurable']['reviewer'] must be a dict like "
                "{'id': 'alice', 'roles': ['finance']}; got " + type(value).__name__ + "."
            )
        rid = value.get("id")
        if not isinstance(rid, str) or not rid:
            raise ValueError(
                "config['configurable']['reviewer'] needs a non-empty string 'id', e.g. "
                "{'id': 'alice', 'roles': ['finance']}."
            )
        roles = value.get("roles") or ()
        if isinstance(roles, str) or not all(isinstance(r, str) for r in roles):
            raise ValueError(
                "config['configurable']['reviewer']['roles'] must be a list of strings, "
                f"got {roles!r}."
            )
        return cls(id=rid, roles=tuple(roles))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Reviewer | None:
        conf = (config or {}).get("configurable") or {}
        return cls.of(conf.get(REVIEWER_KEY))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "roles": list(self.roles)}


@dataclass(frozen=True, slots=True)
class Reviewers:
    """Who may resolve a request: any of ``roles`` (empty: anyone), ``quorum`` distinct
    approvals to approve, ``rejections`` distinct rejections to reject."""

    roles: tuple[str, ...] = ()
    quorum: int = 1
    rejections: int = 1

    def __init__(
        self, roles: Iterable[str] | str = (), quorum: int = 1, rejections: int = 1
    ) -> None:
        roles_t = (roles,) if isinstance(roles, str) else tuple(roles)
        if quorum < 1 or rejections < 1:
            raise ValueError(
                f"Reviewers(quorum={quorum}, rejections={rejections}): both must be at "
                "least 1."
            )
        object.__setattr__(self, "roles", roles_t)
        object.__setattr__(self, "quorum", int(quorum))
        object.__setattr__(self, "rejections", int(rejections))

    @property
    def needs_identity(self) -> bool:
        """Counting distinct people, or checking roles, needs to know who answered."""
        return bool(self.roles) or self.quorum > 1 or self.rejections > 1

    def to_dict(self) -> dict[str, Any]:
        return {"roles": list(self.roles), "quorum": self.quorum, "rejections": self.rejections}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> Reviewers:
        if not value:
            return cls()
        return cls(
            roles=value.get("roles") or (),
            quorum=int(value.get("quorum", 1)),
            rejections=int(value.get("rejections", 1)),
        )


def check_reviewer(
    *,
    request_id: str,
    action: str,
    reviewers: Reviewers,
    reviewer: Reviewer | None,
    response_type: str,
    approvals: Iterable[Mapping[str, Any]],
    rejections: Iterable[Mapping[str, Any]],
) -> None:
    """Refuse an answer from someone who may not give it; silently accept otherwise."""
    if not reviewers.needs_identity:
        return
    if reviewer is None:
        needs = f"one of the roles {list(reviewers.roles)}" if reviewers.roles else "an identity"
        raise ReviewerNotAllowedError(
            f"Request {request_id!r} ({action}) needs a reviewer with {needs}, but the "
            "resume carried no reviewer identity. Resume with "
            "config={'configurable': {'thread_id': ..., 'reviewer': {'id': 'alice', "
            "'roles': [...]}}} (a server fills this in from the signed-in user).",
            request_id=request_id,
        )
    if reviewers.roles and not set(reviewer.roles) & set(reviewers.roles):
        raise ReviewerNotAllowedError(
            f"Reviewer {reviewer.id!r} (roles {list(reviewer.roles)}) may not decide "
            f"request {request_id!r} ({action}): it needs one of the roles "
            f"{list(reviewers.roles)}. Ask someone with that role to answer; the thread "
            "is still paused.",
            request_id=request_id,
        )
    if response_type == "accept":
        given = [a.get("id") for a in approvals]
        if reviewer.id in given:
            raise DuplicateApproverError(
                f"Reviewer {reviewer.id!r} already approved request {request_id!r} "
                f"({action}); it needs {reviewers.quorum} approvals from distinct reviewers "
                f"and has {len(given)}. Ask another reviewer"
                + (f" with one of the roles {list(reviewers.roles)}" if reviewers.roles else "")
                + " to approve; the thread is still paused.",
                request_id=request_id,
            )
    if response_type == "reject":
        given = [r.get("id") for r in rejections]
        if reviewer.id in given:
            raise DuplicateApproverError(
                f"Reviewer {reviewer.id!r} already rejected request {request_id!r} "
                f"({action}); it needs {reviewers.rejections} rejections from distinct "
                "reviewers to be rejected.",
                request_id=request_id,
            )
