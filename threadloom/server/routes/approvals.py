"""``/approvals`` routes: the approval inbox's API (``ApprovalService``).

    GET  /approvals/me                                   who is signed in, with which roles
    GET  /approvals?graph=&status=&assignee=&sort=       pending requests the caller may decide
                                                         (approvals; plain interrupts: kind
                                                         "answer"; static pauses: "resume")
    GET  /approvals/stream                               server-sent events: requested,
                                                         answered, expired, withdrawn
    GET  /approvals/threads/{tid}/requests/{rid}         a request and those paused with it
    POST /approvals/threads/{tid}/decisions              answer them, as one atomic batch
    GET  /approvals/threads/{tid}/audit                  audit records + chain verification
    GET  /approvals/threads/{tid}/audit.jsonl            the audit records as JSON Lines

Every route authenticates like the rest of the API (``x-api-key`` or ``Authorization:
Bearer``, or the custom auth handler); the reviewer of a decision is the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from threadloom.server import serde
from threadloom.server.auth import AuthUser
from threadloom.server.routes.common import caller, json_response, server_of, sse_response
from threadloom.server.storage.base import StreamEvent

router = APIRouter(prefix="/approvals", tags=["approvals"])


class Answer(BaseModel):
    """One answer: the request, the digest the reviewer saw, and the decision."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    digest: str
    type: Literal["accept", "edit", "reject", "response", "ignore", "answer", "resume"]
    args: dict[str, Any] | None = Field(default=None, description="an edit's new arguments")
    message: str | None = Field(default=None,
                                description="a rejection's reason, a response's text")
    value: Any = Field(default=None, description="an interrupt's answer (any JSON): what "
                       "interrupt(...) returns in the node")


class Decisions(BaseModel):
    """Answers to requests of one thread, applied together or not at all."""

    model_config = ConfigDict(extra="forbid")

    answers: list[Answer] = Field(min_length=1)


@router.get("/me")
async def me(user: AuthUser = Depends(caller)) -> Response:
    """The signed-in identity and roles (what the inbox shows and decides as)."""
    return json_response({
        "identity": user.identity,
        "display_name": user.display_name or user.identity,
        "roles": list(user.permissions),
        "is_authenticated": user.is_authenticated,
    })


@router.get("")
async def list_pending(
    request: Request,
    graph: str | None = None,
    status: str | None = None,
    assignee: str | None = None,
    sort: str = "newest",
    limit: int = 100,
    offset: int = 0,
    user: AuthUser = Depends(caller),
) -> Response:
    """Pending requests the caller may decide, filtered and sorted."""
    return json_response(await server_of(request).approvals.pending(
        user, graph=graph, status=status, assignee=assignee, sort=sort,
        limit=max(1, min(limit, 1000)), offset=max(0, offset),
    ))


@router.get("/stream")
async def stream(request: Request, user: AuthUser = Depends(caller)) -> Response:
    """Approval events the caller may see, as server-sent events (``event:`` is the
    kind; ``data`` holds ``key``, ``pending``, ``row`` and ``decision``)."""
    server = server_of(request)
    approvals, feed = server.approvals, server.approval_feed
    thread_filter = await approvals.thread_filter(user)
    queue = feed.subscribe()

    async def events() -> AsyncIterator[StreamEvent]:
        try:
            await feed.catch_up()  # an idle feed learns what is pending before "ready"
            yield StreamEvent("", "ready", serde.dumps({"identity": user.identity}))
            while True:
                event = await queue.get()
                now_visible = event.pending and approvals.visible(user, event.item,
                                                                  thread_filter)
                was_visible = event.previous is not None and approvals.visible(
                    user, event.previous, thread_filter)
                if not (now_visible or was_visible):
                    continue
                shown = event.item if now_visible else (event.previous or event.item)
                row = await approvals.row(user, shown)
                data = {"kind": event.kind, "key": row["key"], "pending": now_visible,
                        "row": row, "decision": event.decision}
                yield StreamEvent("", event.kind, serde.dumps(data))
        finally:
            feed.unsubscribe(queue)

    return sse_response(events(), with_ids=False)


@router.get("/threads/{thread_id}/requests/{request_id}")
async def get_batch(thread_id: str, request_id: str, request: Request,
                    user: AuthUser = Depends(caller)) -> Response:
    """The request and the others paused with it that the caller may decide, the
    conversation that led there, and the decisions so far."""
    return json_response(
        await server_of(request).approvals.batch(user, thread_id, request_id)
    )


@router.post("/threads/{thread_id}/decisions")
async def decide(thread_id: str, body: Decisions, request: Request,
                 user: AuthUser = Depends(caller)) -> Response:
    """Answer requests paused together, atomically; 409 with ``reason`` when the
    decision was overtaken (answered, expired, the thread moved on)."""
    answers = [a.model_dump() for a in body.answers]
    return json_response(await server_of(request).approvals.decide(user, thread_id, answers))


@router.get("/threads/{thread_id}/audit")
async def audit(thread_id: str, request: Request, user: AuthUser = Depends(caller)) -> Response:
    """Every request, decision and state update on the thread; whether the hash chain
    verifies."""
    return json_response(await server_of(request).approvals.audit(user, thread_id))


@router.get("/threads/{thread_id}/audit.jsonl")
async def audit_jsonl(thread_id: str, request: Request,
                      user: AuthUser = Depends(caller)) -> Response:
    """The thread's audit records, one JSON object per line."""
    text = await server_of(request).approvals.audit_jsonl(user, thread_id)
    return Response(text, media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="audit-{thread_id}.jsonl"',
    })
