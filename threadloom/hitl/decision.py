"""How answers turn into a decision, and checking at execution that it still holds.

``advance(request, answer)`` applies one validated answer: an approval short of quorum
gives back the request with the approval counted (still pending); an edit gives back
the request with the new arguments (counting restarts, since earlier approvals were for
other arguments) unless one approval suffices; a rejection is final unless several are
required; a deadline's escalation hands the request to the next group. Once settled, a
``Decision`` says what happens: what runs (``args``) and the digest it runs under.

``Decision.verify(action, args)`` is the check at execution: what is about to run must
be exactly what was approved (or what the reviewer's edit made it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from threadloom.hitl.deadlines import escalated
from threadloom.hitl.digest import action_digest, to_jsonable
from threadloom.hitl.errors import ApprovalMismatchError
from threadloom.hitl.request import ApprovalRequest
from threadloom.hitl.response import ApprovalResponse

__all__ = ["Decision", "Outcome", "advance"]

Outcome = Literal["accept", "edit", "reject", "response", "ignore"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The settled answer to one request.

    ``outcome`` is ``accept`` (run as proposed), ``edit`` (run ``args``, which a reviewer
    changed), ``reject`` (do not run; ``message`` is the reason the agent reads),
    ``response`` (do not run; ``message`` is the reviewer's text back to the agent) or
    ``ignore`` (do not run). ``required`` is False when the policy did not ask anyone.
    """

    request_id: str
    action: str
    outcome: Outcome
    args: dict[str, Any]
    proposed_args: dict[str, Any]
    digest: str
    checkpoint_id: str | None = None
    message: str | None = None
    deciders: tuple[str | None, ...] = ()
    via_deadline: bool = False
    required: bool = True
    escalation: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def approved(self) -> bool:
        """True when the action may run (accepted, possibly edited)."""
        return self.outcome in ("accept", "edit")

    def verify(self, action: str, args: Mapping[str, Any]) -> None:
        """Refuse to run anything but what was approved.

        Raises ``ApprovalMismatchError`` when the decision does not approve running, or
        when ``action``/``args`` differ from the approved ones.
        """
        if not self.approved:
            raise ApprovalMismatchError(
                f"Request {self.request_id!r} ({self.action}) was decided {self.outcome!r}, "
                "so it must not run.",
                request_id=self.request_id,
            )
        got = action_digest(
            action, args, request_id=self.request_id, checkpoint_id=self.checkpoint_id
        )
        if got != self.digest:
            raise ApprovalMismatchError(
                f"Refusing to run {action} with {to_jsonable(dict(args))}: request "
                f"{self.request_id!r} approved {self.action} with "
                f"{to_jsonable(self.args)} (digest {self.digest}, this is {got}). Ask for "
                "approval of the action as it is now.",
                request_id=self.request_id,
                expected=self.digest,
                got=got,
            )

    @classmethod
    def automatic(
        cls, request_id: str, action: str, args: Mapping[str, Any], checkpoint_id: str | None
    ) -> Decision:
        """The decision for an action the policy lets run without asking anyone."""
        args = dict(args)
        return cls(
            request_id=request_id,
            action=action,
            outcome="accept",
            args=args,
            proposed_args=args,
            digest=action_digest(action, args, request_id=request_id, checkpoint_id=checkpoint_id),
            checkpoint_id=checkpoint_id,
            required=False,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data, to keep a decision in graph state (``Decision.from_dict`` reads it)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["deciders"] = list(self.deciders)
        plain: dict[str, Any] = to_jsonable(out)
        return plain

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Decision:
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in value.items() if k in names}
        data["deciders"] = tuple(data.get("deciders") or ())
        return cls(**data)


def _final(
    request: ApprovalRequest,
    answer: ApprovalResponse,
    outcome: Outcome,
    *,
    deciders: tuple[str | None, ...],
    message: str | None = None,
) -> Decision:
    return Decision(
        request_id=request.id,
        action=request.action,
        outcome=outcome,
        args=dict(request.args),
        proposed_args=dict(request.proposed_args),
        digest=request.digest,
        checkpoint_id=request.checkpoint_id,
        message=message,
        deciders=deciders,
        via_deadline=answer.via_deadline,
        escalation=request.escalation,
    )


def _mark(answer: ApprovalResponse, **extra: Any) -> dict[str, Any]:
    return {"id": answer.reviewer.id if answer.reviewer else None, "at": answer.at, **extra}


def advance(request: ApprovalRequest, answer: ApprovalResponse) -> Decision | ApprovalRequest:
    """Apply one validated answer: a settled ``Decision``, or the request still pending."""
    who = answer.reviewer.id if answer.reviewer else None
    kind = answer.type
    if answer.via_deadline:
        if kind == "escalate":
            return escalated(request, answer.at or "")
        approved = request.original_args is not None and kind == "accept"
        return _final(
            request,
            answer,
            "edit" if approved else kind,  # type: ignore[arg-type]
            deciders=(who,),
            message=answer.message,
        )
    rule = request.reviewers
    if kind == "edit":
        assert answer.args is not None
        if dict(answer.args) == dict(request.args):
            kind = "accept"  # an edit that changes nothing is an approval
        else:
            revised = request.with_args(answer.args)
            revised = dataclasses.replace(revised, approvals=(_mark(answer),))
            if rule.quorum <= 1:
                return _final(revised, answer, "edit", deciders=(who,))
            return revised
    if kind == "accept":
        approvals = (*request.approvals, _mark(answer))
        if len(approvals) >= rule.quorum:
            outcome: Outcome = "edit" if request.original_args is not None else "accept"
            return _final(
                request, answer, outcome, deciders=tuple(a.get("id") for a in approvals)
            )
        return dataclasses.replace(request, approvals=approvals)
    if kind == "reject":
        rejections = (*request.rejections, _mark(answer, reason=answer.message))
        if len(rejections) >= rule.rejections:
            reasons = [str(r["reason"]) for r in rejections if r.get("reason")]
            return _final(
                request,
                answer,
                "reject",
                deciders=tuple(r.get("id") for r in rejections),
                message="; ".join(reasons) if reasons else None,
            )
        return dataclasses.replace(request, rejections=rejections)
    return _final(request, answer, kind, deciders=(who,), message=answer.message)  # type: ignore[arg-type]
