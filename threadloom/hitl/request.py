"""The one shape of everything a person is asked to approve.

It is the Agent Inbox ``HumanInterrupt`` shape, so inbox UIs built for it work as they
are::

    {"action_request": {"action": "delete_file", "args": {"path": "/etc/hosts"}},
     "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True,
                "allow_ignore": False, "allow_reject": True},
     "description": "..."}

plus threadloom's keys, which such UIs ignore: ``id`` (the tool call id, or a name you
give), ``digest`` (what exactly is approved, see ``digest.py``), ``checkpoint_id`` and
``asked_at``, ``deadline``, ``reviewers`` and the approvals recorded so far (quorum),
``args_schema`` (JSON schema of the arguments, for edit forms), ``require_digest``
(whether an approving answer must echo ``digest``) and ``graph`` (the identity of the
graph that asked: ``sweep`` only decides requests of its own graph).

Requests travel as plain dicts in interrupt values (so they are checkpointed with the
thread and survive restarts); ``ApprovalRequest`` is the typed view of one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from threadloom.hitl.digest import action_digest, to_jsonable
from threadloom.hitl.quorum import Reviewers

__all__ = [
    "KIND",
    "RESPONSE_TYPES",
    "Allowed",
    "ApprovalRequest",
    "ResponseType",
    "is_request",
    "requests_in",
]

KIND = "threadloom.approval_request/v1"
"""Marks an interrupt value as an approval request (key ``kind``)."""

ResponseType = Literal["accept", "edit", "reject", "response", "ignore"]
RESPONSE_TYPES: tuple[str, ...] = ("accept", "edit", "reject", "response", "ignore")

_FLAG = {
    "accept": "allow_accept",
    "edit": "allow_edit",
    "reject": "allow_reject",
    "response": "allow_respond",
    "ignore": "allow_ignore",
}


@dataclass(frozen=True, slots=True)
class Allowed:
    """Which answers a request accepts. ``ignore`` is off by default: an ignored tool
    call is not run, which reviewers rarely mean."""

    accept: bool = True
    edit: bool = True
    reject: bool = True
    response: bool = True
    ignore: bool = False

    @classmethod
    def of(cls, value: Allowed | Iterable[str] | None) -> Allowed:
        """``Allowed``, or the names of the allowed answers (``["accept", "reject"]``)."""
        if value is None:
            return cls()
        if isinstance(value, Allowed):
            return value
        if isinstance(value, str):
            value = [value]
        names = {_normalize_type(v) for v in value}
        unknown = names - set(RESPONSE_TYPES)
        if unknown:
            raise ValueError(
                f"Unknown response types {sorted(unknown)}: use some of {list(RESPONSE_TYPES)}."
            )
        return cls(**{t: t in names for t in RESPONSE_TYPES})

    def permits(self, response_type: str) -> bool:
        return bool(getattr(self, response_type, False))

    @property
    def names(self) -> list[str]:
        return [t for t in RESPONSE_TYPES if self.permits(t)]

    def to_config(self) -> dict[str, bool]:
        return {_FLAG[t]: self.permits(t) for t in RESPONSE_TYPES}

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Allowed:
        config = config or {}
        defaults = cls()
        return cls(**{t: bool(config.get(_FLAG[t], defaults.permits(t))) for t in RESPONSE_TYPES})


def _normalize_type(value: str) -> str:
    return {"approve": "accept", "respond": "response"}.get(value, value)


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One proposed action awaiting a decision.

    ``digest`` is computed from (action, args, id, checkpoint_id) - create requests with
    ``ApprovalRequest.create`` so it is always right. ``approvals`` / ``rejections`` are
    the distinct reviewers counted so far (``[{"id", "at"}]``) while a quorum is being
    gathered; ``original_args`` is set once an edit changed the arguments.
    """

    id: str
    action: str
    args: dict[str, Any]
    digest: str
    description: str = ""
    allowed: Allowed = field(default_factory=Allowed)
    checkpoint_id: str | None = None
    asked_at: str | None = None
    deadline: dict[str, Any] | None = None
    reviewers: Reviewers = field(default_factory=Reviewers)
    approvals: tuple[dict[str, Any], ...] = ()
    rejections: tuple[dict[str, Any], ...] = ()
    escalation: int = 0
    original_args: dict[str, Any] | None = None
    args_schema: dict[str, Any] | None = None
    require_digest: bool = True
    graph: str | None = None

    @classmethod
    def create(
        cls,
        *,
        id: str,
        action: str,
        args: Mapping[str, Any],
        checkpoint_id: str | None,
        description: str = "",
        allowed: Allowed | Iterable[str] | None = None,
        asked_at: str | None = None,
        deadline: dict[str, Any] | None = None,
        reviewers: Reviewers | None = None,
        args_schema: dict[str, Any] | None = None,
        require_digest: bool = True,
        graph: str | None = None,
    ) -> ApprovalRequest:
        args = dict(args)
        return cls(
            id=id,
            action=action,
            args=args,
            digest=action_digest(action, args, request_id=id, checkpoint_id=checkpoint_id),
            description=description,
            allowed=Allowed.of(allowed),
            checkpoint_id=checkpoint_id,
            asked_at=asked_at,
            deadline=deadline,
            reviewers=reviewers or Reviewers(),
            args_schema=args_schema,
            require_digest=require_digest,
            graph=graph,
        )

    def with_args(self, args: Mapping[str, Any]) -> ApprovalRequest:
        """The request as an edit left it: new arguments, new digest, counts restarted."""
        args = dict(args)
        return dataclasses.replace(
            self,
            args=args,
            digest=action_digest(
                self.action, args, request_id=self.id, checkpoint_id=self.checkpoint_id
            ),
            original_args=self.original_args if self.original_args is not None else self.args,
            approvals=(),
            rejections=(),
        )

    @property
    def proposed_args(self) -> dict[str, Any]:
        """The arguments as first proposed (before any edit)."""
        return self.original_args if self.original_args is not None else self.args

    def to_dict(self) -> dict[str, Any]:
        """The interrupt value: Agent Inbox ``HumanInterrupt`` keys plus threadloom's."""
        return {
            "action_request": {"action": self.action, "args": to_jsonable(self.args)},
            "config": self.allowed.to_config(),
            "description": self.description,
            "kind": KIND,
            "id": self.id,
            "digest": self.digest,
            "checkpoint_id": self.checkpoint_id,
            "asked_at": self.asked_at,
            "deadline": self.deadline,
            "reviewers": self.reviewers.to_dict(),
            "approvals": [dict(a) for a in self.approvals],
            "rejections": [dict(r) for r in self.rejections],
            "escalation": self.escalation,
            "original_args": to_jsonable(self.original_args),
            "args_schema": self.args_schema,
            "require_digest": self.require_digest,
            "graph": self.graph,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ApprovalRequest:
        if not is_request(value):
            raise ValueError(f"Not an approval request: {value!r}")
        action = value["action_request"]
        return cls(
            id=value["id"],
            action=action["action"],
            args=dict(action.get("args") or {}),
            digest=value["digest"],
            description=value.get("description") or "",
            allowed=Allowed.from_config(value.get("config")),
            checkpoint_id=value.get("checkpoint_id"),
            asked_at=value.get("asked_at"),
            deadline=value.get("deadline"),
            reviewers=Reviewers.from_dict(value.get("reviewers")),
            approvals=tuple(value.get("approvals") or ()),
            rejections=tuple(value.get("rejections") or ()),
            escalation=int(value.get("escalation") or 0),
            original_args=value.get("original_args"),
            args_schema=value.get("args_schema"),
            require_digest=value.get("require_digest") is not False,
            graph=value.get("graph"),
        )


def is_request(value: Any) -> bool:
    """True for a dict made by ``ApprovalRequest.to_dict``."""
    return isinstance(value, Mapping) and value.get("kind") == KIND and "action_request" in value


def requests_in(value: Any) -> list[ApprovalRequest] | None:
    """The approval requests an interrupt value carries, or None if it is not ours.

    Tool approval interrupts carry a list of requests (one per tool call); a single
    request dict is accepted too.
    """
    if is_request(value):
        return [ApprovalRequest.from_dict(value)]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and value:
        if all(is_request(v) for v in value):
            return [ApprovalRequest.from_dict(v) for v in value]
    return None
