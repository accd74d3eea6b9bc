"""What a person answers, in every shape UIs send, and how answers meet their requests.

Accepted shapes for one answer:

* Agent Inbox ``HumanResponse``: ``{"type": "accept"|"edit"|"response"|"ignore",
  "args": ...}`` - ``edit`` carries the edited ``{"action", "args"}`` (or just the new
  arguments), ``response`` the text; plus our ``{"type": "reject", "args": "reason"}``;
* LangChain's HITL decisions: ``{"type": "approve"}``, ``{"type": "reject", "message":
  ...}``, ``{"type": "edit", "edited_action": {"name", "args"}}``;
* shorthands ``True`` (accept), ``False`` (reject), ``"accept"``, ``"reject"``.

For a batch of requests the answer is a list in request order (``None`` leaves one
unanswered for now; a shorter list answers the first requests and leaves the rest
pending, as Agent Inbox's "list holding one response" does), LangChain v1's
``{"decisions": [...]}``, or a dict keyed by request id (the tool call id).

An approving answer (accept, edit) must echo the request's ``digest`` unless the
request's rule allows digest-less answers. ``reviewer``, ``at`` and ``deadline`` keys in
an answer are never trusted: when an answer arrives the graph's approval hooks stamp it
with who gave it (the configured reviewer source), when (the deployment's clock), and
the digest of the request it answers; only the sweep gives deadline decisions.
``ApprovalResponse.to_dict`` is that stamped form, which is what the paused node reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from threadloom.hitl.errors import InvalidResponseError
from threadloom.hitl.quorum import Reviewer
from threadloom.hitl.request import RESPONSE_TYPES, ApprovalRequest

__all__ = ["ApprovalResponse", "echo_digests", "match_responses", "unwrap_decisions"]

_ALIASES = {
    "approve": "accept",
    "approved": "accept",
    "accept": "accept",
    "edit": "edit",
    "reject": "reject",
    "deny": "reject",
    "response": "response",
    "respond": "response",
    "ignore": "ignore",
    "escalate": "escalate",
}


@dataclass(frozen=True, slots=True)
class ApprovalResponse:
    """One answer to one request.

    ``args`` holds an edit's new arguments, ``message`` a rejection's reason or a
    response's text. ``reviewer``, ``at`` and ``digest`` are stamped on arrival;
    ``via_deadline`` marks the decision a deadline applied (``threadloom sweep``).
    """

    type: str
    args: dict[str, Any] | None = None
    action: str | None = None
    message: str | None = None
    digest: str | None = None
    reviewer: Reviewer | None = None
    at: str | None = None
    via_deadline: bool = False

    @classmethod
    def parse(cls, value: Any, *, request_id: str | None = None) -> ApprovalResponse:
        """Read any accepted answer shape (see the module docstring)."""
        if isinstance(value, ApprovalResponse):
            return value
        if value is True:
            return cls(type="accept")
        if value is False:
            return cls(type="reject")
        if isinstance(value, str):
            return cls(type=_type_of(value, request_id))
        if not isinstance(value, Mapping):
            raise InvalidResponseError(
                f"Cannot read the answer {value!r}"
                + (f" to request {request_id!r}" if request_id else "")
                + ": give a dict like {'type': 'accept'}, {'type': 'edit', 'args': {...}}, "
                "{'type': 'reject', 'args': 'reason'}, {'type': 'response', 'args': 'text'} "
                "or {'type': 'ignore'}.",
                request_id=request_id,
            )
        kind = _type_of(value.get("type"), request_id)
        raw_args = value.get("args")
        args: dict[str, Any] | None = None
        action: str | None = None
        message = value.get("message") if isinstance(value.get("message"), str) else None
        if kind == "edit":
            edited = value.get("edited_action")
            given: Any = raw_args
            if isinstance(edited, Mapping):
                action = edited.get("name") or edited.get("action")
                given = edited.get("args")
            elif isinstance(raw_args, Mapping) and set(raw_args) == {"action", "args"} and (
                isinstance(raw_args["args"], Mapping)
            ):
                action = raw_args["action"]
                given = raw_args["args"]
            if not isinstance(given, Mapping):
                raise InvalidResponseError(
                    "An 'edit' answer needs the new arguments: {'type': 'edit', 'args': "
                    "{'action': name, 'args': {...}}} or {'type': 'edit', 'args': {...}}"
                    + (f" (request {request_id!r})" if request_id else "")
                    + f"; got {raw_args!r}.",
                    request_id=request_id,
                )
            args = dict(given)
        elif kind in ("reject", "response", "escalate"):
            if message is None:
                message = value.get("reason") if isinstance(value.get("reason"), str) else None
            if message is None and isinstance(raw_args, str):
                message = raw_args
        reviewer = value.get("reviewer")
        return cls(
            type=kind,
            args=args,
            action=action,
            message=message,
            digest=value.get("digest") if isinstance(value.get("digest"), str) else None,
            reviewer=Reviewer.of(reviewer) if isinstance(reviewer, (Mapping, Reviewer)) else None,
            at=value.get("at") if isinstance(value.get("at"), str) else None,
            via_deadline=bool(value.get("deadline", False)),
        )

    def stamped(self, *, reviewer: Reviewer | None, at: str, digest: str) -> ApprovalResponse:
        """The answer as stored: identity from the run's config (never from the payload),
        the arrival time, and the digest of the request it answers (kept if given)."""
        return dataclasses.replace(self, reviewer=reviewer, at=at, digest=self.digest or digest)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "edit":
            out["args"] = {"action": self.action, "args": self.args}
        elif self.message is not None:
            out["args"] = self.message
        else:
            out["args"] = None
        out["digest"] = self.digest
        out["reviewer"] = self.reviewer.to_dict() if self.reviewer else None
        out["at"] = self.at
        out["deadline"] = self.via_deadline
        return out


def _type_of(value: Any, request_id: str | None) -> str:
    kind = _ALIASES.get(value) if isinstance(value, str) else None
    if kind is None:
        raise InvalidResponseError(
            f"Unknown answer type {value!r}"
            + (f" for request {request_id!r}" if request_id else "")
            + f": use one of {list(RESPONSE_TYPES)}.",
            request_id=request_id,
        )
    return kind


def echo_digests(interrupts: Sequence[Any], answer: Any) -> Any:
    """``answer`` with each approving answer (accept / edit) carrying the digest of the
    request it answers, taken from ``interrupts`` - the pending interrupts *as shown to
    the reviewer* (``get_state(config).interrupts`` read when the request was displayed,
    or the ``__interrupt__`` of the run that paused). What a UI does when it sends an
    answer; answers that already carry a digest are kept as they are.
    """
    from threadloom.hitl.request import requests_in

    requests = [r for i in interrupts for r in requests_in(getattr(i, "value", i)) or ()]
    by_id = {r.id: r for r in requests}

    def sign(given: Any, request: ApprovalRequest) -> Any:
        if given is True or given in ("accept", "approve"):
            given = {"type": "accept"}
        if (
            isinstance(given, Mapping)
            and isinstance(kind := given.get("type"), str)
            and _ALIASES.get(kind) in ("accept", "edit")
            and given.get("digest") is None
        ):
            return {**given, "digest": request.digest}
        return given

    answer = unwrap_decisions(answer)
    if isinstance(answer, (list, tuple)):
        signed = [None if a is None else sign(a, r) for a, r in zip(answer, requests, strict=False)]
        return signed + list(answer[len(requests):])
    if (
        isinstance(answer, Mapping)
        and "type" not in answer
        and answer
        and all(k in by_id for k in answer)
    ):
        return {k: None if v is None else sign(v, by_id[k]) for k, v in answer.items()}
    return sign(answer, requests[0]) if requests else answer


def unwrap_decisions(value: Any) -> Any:
    """LangChain v1's ``{"decisions": [...]}`` answer shape, as the plain list."""
    if isinstance(value, Mapping) and set(value) == {"decisions"}:
        decisions = value["decisions"]
        if not isinstance(decisions, (list, tuple)):
            raise InvalidResponseError(
                f"{{'decisions': ...}} must hold a list of decisions, got "
                f"{type(decisions).__name__}."
            )
        return list(decisions)
    return value


def match_responses(
    requests: Sequence[ApprovalRequest], value: Any
) -> list[ApprovalResponse | None]:
    """Pair an answer with a batch of requests: one entry per request, None = unanswered.

    Refuses answers that cannot be paired unambiguously, and an answer that answers
    nothing, naming the pending request ids.
    """
    ids = [r.id for r in requests]
    value = unwrap_decisions(value)
    if isinstance(value, (list, tuple)):
        if len(value) > len(requests):
            raise InvalidResponseError(
                f"Got {len(value)} answers for {len(requests)} pending requests {ids}: give "
                "at most one answer per request, in request order (None to leave one for "
                "later), or a dict keyed by request id."
            )
        # A shorter list answers the first requests; the others stay pending (Agent
        # Inbox shows one request and answers it with a list of one).
        value = [*value, *([None] * (len(requests) - len(value)))]
        out = [
            None if v is None else ApprovalResponse.parse(v, request_id=r.id)
            for r, v in zip(requests, value, strict=True)
        ]
    elif isinstance(value, Mapping) and ("type" in value or "edited_action" in value):
        if len(requests) != 1:
            raise InvalidResponseError(
                f"One answer was given but {len(requests)} requests are pending {ids}: give "
                "a list in request order or a dict keyed by request id."
            )
        out = [ApprovalResponse.parse(value, request_id=ids[0])]
    elif isinstance(value, Mapping):
        unknown = [k for k in value if k not in ids]
        if unknown:
            raise InvalidResponseError(
                f"Answers name unknown requests {unknown}; the pending requests are {ids}."
            )
        out = [
            None
            if value.get(r.id) is None
            else ApprovalResponse.parse(value[r.id], request_id=r.id)
            for r in requests
        ]
    else:
        if len(requests) != 1:
            raise InvalidResponseError(
                f"One answer was given but {len(requests)} requests are pending {ids}: give "
                "a list in request order or a dict keyed by request id."
            )
        out = [ApprovalResponse.parse(value, request_id=ids[0])]
    if all(r is None for r in out):
        raise InvalidResponseError(
            f"The answer decides none of the pending requests {ids}."
        )
    return out
