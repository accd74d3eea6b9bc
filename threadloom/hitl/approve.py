"""Asking inside a node: pause with requests, come back with settled decisions.

``request_approval(...)`` asks about one action; ``collect_decisions(requests)`` about a
batch. Both pause the node with ``interrupt([request, ...])`` and, when resumed, apply
the answers. A batch is settled as a whole before the node goes on: while any request
is still open (unanswered, or short of its quorum) the node pauses again with just the
open ones, so nothing runs until every request is decided. Because a resumed node runs
again from its first line and ``interrupt()`` calls are answered in turn, each round is
replayed from its stored answers: the outcome is the same every time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from threadloom.hitl.clock import from_iso, to_iso, utcnow
from threadloom.hitl.deadlines import Deadline
from threadloom.hitl.decision import Decision, advance
from threadloom.hitl.quorum import Reviewers
from threadloom.hitl.request import Allowed, ApprovalRequest
from threadloom.hitl.response import match_responses
from threadloom.hitl.validation import ArgsValidator, schema_validator, validate_response

__all__ = ["asking_context", "collect_decisions", "json_schema_of", "request_approval"]


def asking_context() -> tuple[str | None, Any]:
    """(checkpoint id the running node was planned on, the run's approval context).

    The checkpoint id is the same on every re-run of the node, and the context gives
    back when a request was first asked, so requests built from them - their digests
    and deadlines - are too. Raises ``ApprovalHooksMissingError`` in a graph compiled
    without the approval hooks.
    """
    from threadloom.config import get_config
    from threadloom.hitl.approval_hooks import run_context

    try:
        config = get_config()
    except RuntimeError:
        raise RuntimeError(
            "Approval requests pause the graph, so they must be made inside a running "
            "node of a graph compiled with a checkpointer."
        ) from None
    conf = config.get("configurable") or {}
    ns = conf.get("checkpoint_ns") or ""
    graph_ns = ns.rsplit("|", 1)[0] if "|" in ns else ""
    cmap: Mapping[str, str] = conf.get("checkpoint_map") or {}
    checkpoint_id = cmap.get(graph_ns)
    if checkpoint_id is None and cmap:
        checkpoint_id = list(cmap.values())[-1]
    return checkpoint_id, run_context(config)


def json_schema_of(schema: Any) -> dict[str, Any] | None:
    """A JSON schema for a pydantic model class (v2 or v1), or the dict given."""
    if schema is None:
        return None
    if isinstance(schema, Mapping):
        return dict(schema)
    dump = getattr(schema, "model_json_schema", None)
    if callable(dump):
        dumped: dict[str, Any] = dump()
        return dumped
    legacy = getattr(schema, "schema", None)
    return legacy() if callable(legacy) else None


def collect_decisions(
    requests: Sequence[ApprovalRequest], *, validate_args: ArgsValidator | None = None
) -> list[Decision]:
    """Pause until every request is decided; the decisions, in request order.

    Must run inside a graph node. Answers are validated again here (they already were on
    arrival): one that does not carry the digest of the request as it is *now* raises
    ``ApprovalMismatchError`` - the proposal changed after it was approved.
    """
    from threadloom.types import interrupt

    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError(f"Approval request ids must be unique within a batch, got {ids}.")
    pending = list(requests)
    settled: dict[str, Decision] = {}
    while pending:
        answer = interrupt([r.to_dict() for r in pending])
        still: list[ApprovalRequest] = []
        for request, given in zip(pending, match_responses(pending, answer), strict=True):
            if given is None:
                still.append(request)
                continue
            # Answers reach the node only through the graph's approval hooks, which
            # stamped them (reviewer, arrival time on the deployment's clock, digest).
            now = from_iso(given.at) if given.at else utcnow()
            checked = validate_response(
                request, given, now=now, validate_args=validate_args, require_digest=True
            )
            result = advance(request, checked)
            if isinstance(result, Decision):
                settled[request.id] = result
            else:
                still.append(result)
        pending = still
    return [settled[i] for i in ids]


def default_description(action: str, args: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return f"Approve `{action}({shown})`?"


def build_request(
    action: str,
    args: Mapping[str, Any],
    *,
    id: str,
    checkpoint_id: str | None,
    run: Any,
    description: str | None = None,
    allow: Allowed | Sequence[str] | None = None,
    reviewers: Reviewers | None = None,
    deadline: Deadline | None = None,
    args_schema: Any = None,
    require_digest: bool = True,
) -> ApprovalRequest:
    asked_at = run.asked_at(checkpoint_id, id)
    return ApprovalRequest.create(
        id=id,
        action=action,
        args=args,
        checkpoint_id=checkpoint_id,
        description=description or default_description(action, args),
        allowed=allow,
        asked_at=to_iso(asked_at),
        deadline=deadline.resolve(asked_at) if deadline is not None else None,
        reviewers=reviewers,
        args_schema=json_schema_of(args_schema),
        require_digest=require_digest,
        graph=run.graph_id,
    )


def request_approval(
    action: str,
    args: Mapping[str, Any],
    *,
    id: str | None = None,
    description: str | None = None,
    allow: Allowed | Sequence[str] | None = None,
    reviewers: Reviewers | None = None,
    deadline: Deadline | None = None,
    args_schema: Any = None,
    require_digest: bool = True,
) -> Decision:
    """Ask a person to approve ``action(**args)``; return the decision once settled.

    Call it inside a node. ``allow`` limits the answers (default: accept, edit, reject,
    response); ``reviewers`` names roles and a quorum; ``deadline`` what happens if
    nobody decides in time; ``args_schema`` (pydantic model or JSON schema) checks
    edits. ``id`` names the request (default: the action); give distinct ids when one
    node asks several times about the same action. ``require_digest=False`` lets an
    approval that does not echo the request's digest through (default: refused).

    The graph must carry the approval hooks: ``compile(..., hooks=[ApprovalHooks()])``.
    """
    checkpoint_id, run = asking_context()
    request = build_request(
        action,
        args,
        id=id or action,
        checkpoint_id=checkpoint_id,
        run=run,
        description=description,
        allow=allow,
        reviewers=reviewers,
        deadline=deadline,
        args_schema=args_schema,
        require_digest=require_digest,
    )
    validator = schema_validator(args_schema, request_id=request.id) if args_schema else None
    return collect_decisions([request], validate_args=validator)[0]
