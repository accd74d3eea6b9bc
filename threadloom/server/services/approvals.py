"""Approvals across threads: what a reviewer may decide, deciding it, and the audit trail.

The approval inbox (``/inbox``) is built on this service, through the routes of
``threadloom.server.routes.approvals``; it reads only what any client could read
(thread records, their state, their audit log) and answers through an ordinary run.

* **Pending approvals** are the ``threadloom.hitl`` requests in the pending interrupts
  of the threads the caller may read (the auth handlers' filters apply), keeping only
  those the caller's roles allow (a request naming roles is shown to reviewers holding
  one of them). Each is a *row*: action, arguments, the thread and graph, who asked and
  when, the deadline, quorum progress.
* **Deciding** answers one or several requests paused together as one batch. The
  answers are checked as the graph will check them (``acheck_resume``: roles, quorum,
  digest, deadline, edit schema) before a run is queued, so a refused decision changes
  nothing; an overtaken one (answered by someone else, expired, the thread moved on) is
  refused with the reason, read from the audit log. The run then applies the batch
  atomically: the graph's approval hooks validate all answers before writing any.
* **Plain interrupts and static pauses** (``PendingInterrupt``): an ``interrupt(value)``
  that is not an approval request is listed as an "answer" item and answered with any
  JSON value (``Command(resume={interrupt_id: value})``); a thread stopped by a static
  ``interrupt_before``/``interrupt_after`` is a "resume" item (request id ``"resume"``),
  resumed by a run with no input. Either is refused when it is no longer what the
  reviewer saw; the answer is written to the audit log under the caller's identity.
* **The audit trail** of a thread, with its hash chain verified (the log's anchor and
  the anchors kept in the thread's checkpoints), and as JSON Lines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from threadloom.hitl.clock import from_iso, to_iso, utcnow
from threadloom.hitl.errors import (
    ApprovalError,
    DeadlinePassedError,
    DuplicateApproverError,
    InvalidResponseError,
    NoPendingRequestError,
    ReviewerNotAllowedError,
)
from threadloom.hitl.request import RESPONSE_TYPES, ApprovalRequest, requests_in
from threadloom.server.auth import AuthUser
from threadloom.server.context import ServerContext
from threadloom.server.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    Unprocessable,
)
from threadloom.server.records import matches
from threadloom.server.services.runs import RunService
from threadloom.server.services.threads import ThreadService, reviewer_config

__all__ = [
    "SORTS",
    "STATUSES",
    "ApprovalService",
    "Pending",
    "PendingInterrupt",
    "PendingRequest",
    "may_decide",
    "pending_items",
    "pending_requests",
    "refusal",
]

STATUSES = ("waiting", "partial", "overdue")
"""A pending request's status: nobody answered yet, some answered (short of quorum),
or its deadline passed and the server is about to apply the deadline's decision."""

SORTS = ("newest", "oldest", "urgent")
"""Orders of the list: asked most recently first, asked longest ago first, or nearest
deadline first (requests without a deadline last)."""

# A refused answer leaves a thread in error with its requests pending; a busy thread
# keeps the requests it had until its run ends (a request being answered stays listed
# until the answer is applied, rather than vanishing and coming back).
_THREAD_STATUSES = ("interrupted", "error", "busy")
_SUMMARY_CHARS = 120


class PendingRequest:
    """One pending approval request, where it waits: its thread and interrupt."""

    __slots__ = ("batch", "interrupt_id", "request", "thread")

    def __init__(self, thread: dict[str, Any], interrupt_id: str, request: ApprovalRequest,
                 batch: list[ApprovalRequest]) -> None:
        self.thread = thread
        self.interrupt_id = interrupt_id
        self.request = request
        self.batch = batch

    @property
    def thread_id(self) -> str:
        return str(self.thread["thread_id"])

    @property
    def graph_id(self) -> str | None:
        return (self.thread.get("metadata") or {}).get("graph_id")

    @property
    def key(self) -> str:
        """Stable while the request waits (quorum rounds keep it; an edit keeps it)."""
        return f"{self.thread_id}/{self.request.checkpoint_id}/{self.request.id}"

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever someone answers (approvals, an edit, an escalation)."""
        r = self.request
        return (r.digest, len(r.approvals), len(r.rejections), r.escalation,
                json.dumps(r.deadline, sort_keys=True), r.reviewers.to_dict()["roles"])


    kind = "approval"

    @property
    def request_id(self) -> str:
        return self.request.id

    @property
    def digest(self) -> str:
        return self.request.digest


class PendingInterrupt:
    """A pause that is not a ``threadloom.hitl`` request: a plain ``interrupt(value)``
    waiting for an answer (``kind`` ``"answer"``), or a static ``interrupt_before`` /
    ``interrupt_after`` pause waiting to be resumed (``kind`` ``"resume"``, request id
    ``"resume"``). Any reviewer who may read the thread may answer it."""

    __slots__ = ("interrupt_id", "kind", "thread", "value")

    def __init__(self, thread: dict[str, Any], kind: str, interrupt_id: str | None = None,
                 value: Any = None) -> None:
        self.thread = thread
        self.kind = kind
        self.interrupt_id = interrupt_id
        self.value = value

    @property
    def thread_id(self) -> str:
        return str(self.thread["thread_id"])

    @property
    def graph_id(self) -> str | None:
        return (self.thread.get("metadata") or {}).get("graph_id")

    @property
    def request_id(self) -> str:
        return self.interrupt_id if self.kind == "answer" else RESUME  # type: ignore[return-value]

    @property
    def digest(self) -> str:
        """Changes when the pause is another one: the interrupt's value, or (a static
        pause) the moment the thread's state last changed."""
        what = (self.interrupt_id, self.value) if self.kind == "answer" else (
            self.thread.get("state_updated_at"))
        text = json.dumps(what, sort_keys=True, default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def key(self) -> str:
        return f"{self.thread_id}/{self.request_id}/{self.digest[7:23]}"

    def fingerprint(self) -> tuple[Any, ...]:
        return (self.digest,)


Pending = PendingRequest | PendingInterrupt
"""One item of the inbox: an approval request, a plain interrupt, or a static pause."""

RESUME = "resume"
"""The request id of a thread's static pause (``interrupt_before``/``interrupt_after``)."""


def pending_requests(thread: Mapping[str, Any]) -> list[PendingRequest]:
    """The approval requests pending on a thread record (its ``interrupts``)."""
    out = []
    for interrupts in (thread.get("interrupts") or {}).values():
        for intr in interrupts:
            batch = requests_in(intr.get("value"))
            for request in batch or ():
                out.append(PendingRequest(dict(thread), str(intr["id"]), request, batch or []))
    return out


#: how many threads' askers ``ApprovalService.asked_by`` remembers
_ASKED_BY_KEPT = 20_000


def pending_items(thread: Mapping[str, Any]) -> list[Pending]:
    """Everything waiting for a person on a thread record: its approval requests, its
    plain interrupts, or - interrupted with no interrupt pending - its static pause."""
    out: list[Pending] = list(pending_requests(thread))
    interrupts = [i for group in (thread.get("interrupts") or {}).values() for i in group]
    for intr in interrupts:
        if requests_in(intr.get("value")) is None:
            out.append(PendingInterrupt(dict(thread), "answer", str(intr["id"]),
                                        intr.get("value")))
    if not interrupts and thread.get("status") == "interrupted":
        out.append(PendingInterrupt(dict(thread), "resume"))
    return out


def may_decide(user: AuthUser, request: ApprovalRequest) -> bool:
    """Whether ``user``'s roles let them decide ``request`` (any role it names; a
    request naming none is anyone's, but one counting people needs an identity)."""
    rule = request.reviewers
    if rule.roles:
        return user.is_authenticated and bool(set(user.permissions) & set(rule.roles))
    return user.is_authenticated or not rule.needs_identity


def may_decide_item(user: AuthUser, item: Pending) -> bool:
    """``may_decide`` for any inbox item: a plain interrupt or a static pause names no
    role, so whoever may read its thread may answer it."""
    return isinstance(item, PendingInterrupt) or may_decide(user, item.request)


def _one_line(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                            default=str)
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


def _summary(args: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
                     for k, v in args.items())
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


def _status(request: ApprovalRequest, now: datetime) -> str:
    if request.deadline and now >= from_iso(request.deadline["at"]):
        return "overdue"
    return "partial" if request.approvals or request.rejections else "waiting"


def refusal(exc: ApprovalError) -> ServerError:
    """The HTTP error for an answer ``threadloom.hitl`` refused; ``reason`` in the body
    says why in one word (``expired``, ``not_allowed``, ``already_approved``,
    ``overtaken``, ``invalid``)."""
    if isinstance(exc, DuplicateApproverError):
        error: ServerError = Conflict(str(exc))
        reason = "already_approved"
    elif isinstance(exc, ReviewerNotAllowedError):
        error, reason = Forbidden(str(exc)), "not_allowed"
    elif isinstance(exc, DeadlinePassedError):
        error, reason = Conflict(str(exc)), "expired"
    elif isinstance(exc, NoPendingRequestError):
        error, reason = Conflict(str(exc)), "overtaken"
    elif isinstance(exc, InvalidResponseError):
        error, reason = Unprocessable(str(exc)), "invalid"
    else:
        error, reason = Conflict(str(exc)), "overtaken"
    error.extra = {"reason": reason, "request_id": exc.request_id}
    return error


def _overtaken(reason: str, detail: str, request_id: str, **extra: Any) -> Conflict:
    error = Conflict(detail)
    error.extra = {"reason": reason, "request_id": request_id, **extra}
    return error


def _who(record: Mapping[str, Any]) -> str:
    return str((record.get("who") or {}).get("id") or "someone")


def decision_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """An audit ``decision`` record as the inbox shows it."""
    return {k: record.get(k) for k in (
        "seq", "request_id", "action", "decision", "message", "who", "at", "status",
        "via_deadline", "args_diff", "digest", "approvals", "needed", "value",
    )}


class ApprovalService:
    """Pending approvals, decisions and audit trails (see the module docstring)."""

    def __init__(self, ctx: ServerContext, threads: ThreadService, runs: RunService) -> None:
        self.ctx = ctx
        self.threads = threads
        self.runs = runs
        # thread id -> (its updated_at, who asked), the most recent ``_ASKED_BY_KEPT``
        self._asked_by: dict[str, tuple[str, str | None]] = {}
        #: called after every decision this server applied (the event feed's wake-up)
        self.on_decided: list[Any] = []

    # -- reading -----------------------------------------------------------------------

    def now(self, graph_id: str | None) -> datetime:
        """The deployment's clock for a graph's approvals (its hooks' clock)."""
        from threadloom.hitl.approval_hooks import hooks_of

        if graph_id is not None and graph_id in self.ctx.graphs:
            hooks = hooks_of(self.ctx.graphs.get(graph_id))
            if hooks is not None:
                return hooks.now()
        return utcnow()

    async def all_pending(self, user: AuthUser | None = None) -> list[Pending]:
        """Everything pending on the threads ``user`` may read (None: all threads):
        approval requests, plain interrupts and static pauses (``pending_items``).

        One query (``Storage.pending_threads``) for the threads that may hold any - those
        interrupted, and those busy or failed with interrupts - on an index of those
        alone: the feed looks every second, and a look at every busy or failed thread
        grew with every thread that ever failed (10,000 of them: ~200 ms a look, on the
        event loop). One query, too, because threads move between busy and interrupted
        while it reads, and a look made of one query per status (or per page) could see
        such a thread in none of them - the feed then took its requests for answered
        and, a moment later, for asked again."""
        metadata: dict[str, Any] | None = None
        if user is not None:  # what the auth handlers allow of a search for them
            metadata = await self.threads.search_filter(
                user, {"status": _THREAD_STATUSES, "limit": -1, "offset": 0}
            )
            if metadata is None:
                return []
        out: list[Pending] = []
        for thread in await self.ctx.storage.pending_threads(metadata):
            out += pending_items(thread)
        return out

    async def thread_filter(self, user: AuthUser) -> dict[str, Any] | None:
        """The auth handlers' filter on the threads ``user`` may search."""
        return await self.ctx.authorize(user, "threads", "search", {})

    def visible(self, user: AuthUser, item: Pending,
                thread_filter: Mapping[str, Any] | None) -> bool:
        """Whether ``user`` may see ``item`` (its thread passes the filter, its roles
        are the user's)."""
        if thread_filter and not matches(item.thread.get("metadata") or {}, thread_filter):
            return False
        return may_decide_item(user, item)

    async def asked_by(self, thread: Mapping[str, Any]) -> str | None:
        """Who started the work that asked: the caller of the thread's latest run that
        was given input (not an answer)."""
        thread_id = str(thread["thread_id"])
        stamp = str(thread.get("updated_at"))
        cached = self._asked_by.get(thread_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        who = None
        for run in await self.ctx.storage.list_runs(thread_id, limit=50, offset=0, status=None):
            kwargs = run.get("kwargs") or {}
            if kwargs.get("command") or kwargs.get("_deadline_sweep"):
                continue
            who = ((kwargs.get("_user") or {}).get("identity"))
            break
        self._asked_by.pop(thread_id, None)
        self._asked_by[thread_id] = (stamp, who)  # (the newest last)
        while len(self._asked_by) > _ASKED_BY_KEPT:  # a server living for months
            del self._asked_by[next(iter(self._asked_by))]
        return who

    def _listed(self, item: Pending) -> dict[str, Any]:
        """What the inbox's list filters and sorts ``item`` by - the fields of its
        ``row`` of the same names - and the item."""
        if isinstance(item, PendingInterrupt):
            return {"item": item, "key": item.key, "graph_id": item.graph_id, "roles": [],
                    "status": "waiting", "asked_at": item.thread.get("state_updated_at"),
                    "deadline": None}
        r = item.request
        return {"item": item, "key": item.key, "graph_id": item.graph_id,
                "roles": list(r.reviewers.roles), "status": _status(r, self.now(item.graph_id)),
                "asked_at": r.asked_at, "deadline": r.deadline or None}

    async def row(self, user: AuthUser, item: Pending) -> dict[str, Any]:
        """One pending item as the inbox lists it."""
        if isinstance(item, PendingInterrupt):
            return await self._open_row(item)
        r = item.request
        now = self.now(item.graph_id)
        deadline = r.deadline or None
        return {
            "key": item.key,
            "kind": item.kind,
            "thread_id": item.thread_id,
            "graph_id": item.graph_id,
            "interrupt_id": item.interrupt_id,
            "request_id": r.id,
            "checkpoint_id": r.checkpoint_id,
            "digest": r.digest,
            "action": r.action,
            "args": r.args,
            "summary": _summary(r.args),
            "description": r.description,
            "asked_at": r.asked_at,
            "asked_by": await self.asked_by(item.thread),
            "deadline": None if deadline is None else {
                "at": deadline.get("at"), "on_timeout": deadline.get("on_timeout"),
            },
            "roles": list(r.reviewers.roles),
            "quorum": r.reviewers.quorum,
            "rejections_needed": r.reviewers.rejections,
            "approvals": [dict(a) for a in r.approvals],
            "rejections": [dict(x) for x in r.rejections],
            "escalation": r.escalation,
            "edited": r.original_args is not None,
            "allowed": r.allowed.names,
            "batch_size": len(item.batch),
            "status": _status(r, now),
            "you_approved": any(a.get("id") == user.identity for a in r.approvals),
            "now": to_iso(now),
        }

    async def _open_row(self, item: PendingInterrupt) -> dict[str, Any]:
        """A plain interrupt or a static pause as the inbox lists it: what it shows (the
        interrupt's value) and how it is answered (``allowed``: answer or resume)."""
        answer = item.kind == "answer"
        return {
            "key": item.key,
            "kind": item.kind,
            "thread_id": item.thread_id,
            "graph_id": item.graph_id,
            "interrupt_id": item.interrupt_id,
            "request_id": item.request_id,
            "checkpoint_id": None,
            "digest": item.digest,
            "action": "answer" if answer else "resume",
            "value": item.value,
            "args": {},
            "summary": _one_line(item.value) if answer else "paused at a breakpoint",
            "description": None,
            "asked_at": item.thread.get("state_updated_at"),
            "asked_by": await self.asked_by(item.thread),
            "deadline": None,
            "roles": [],
            "quorum": 1,
            "rejections_needed": 1,
            "approvals": [],
            "rejections": [],
            "escalation": None,
            "edited": False,
            "allowed": ["answer" if answer else "resume"],
            "batch_size": 1,
            "status": "waiting",
            "you_approved": False,
            "now": to_iso(self.now(item.graph_id)),
        }

    async def pending(
        self,
        user: AuthUser,
        *,
        graph: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        sort: str = "newest",
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """The pending requests ``user`` may decide: ``items`` (filtered, sorted,
        paged), ``total`` before paging, and the ``graphs``/``assignees`` to filter by.

        ``assignee`` is a role the request is assigned to, or ``"anyone"`` for requests
        naming no role.
        """
        if status is not None and status not in STATUSES:
            raise Unprocessable(f"Invalid status {status!r}: use one of {list(STATUSES)}.")
        if sort not in SORTS:
            raise Unprocessable(f"Invalid sort {sort!r}: use one of {list(SORTS)}.")
        mine = [i for i in await self.all_pending(user) if may_decide_item(user, i)]
        # filtered, sorted and paged on what those need (``_listed``), the rows built for
        # the page alone: thousands of requests waiting make one page, not thousands of
        # rows, each time the inbox asks
        rows = [self._listed(i) for i in mine]
        graphs = sorted({r["graph_id"] for r in rows if r["graph_id"]})
        assignees = sorted({role for r in rows for role in r["roles"]})
        if any(not r["roles"] for r in rows):
            assignees.append("anyone")
        if graph:
            rows = [r for r in rows if r["graph_id"] == graph]
        if status:
            rows = [r for r in rows if r["status"] == status]
        if assignee:
            rows = [r for r in rows if (assignee in r["roles"]) or (
                assignee == "anyone" and not r["roles"])]
        rows = _sorted(rows, sort)
        return {
            "items": [await self.row(user, r["item"]) for r in rows[offset: offset + limit]],
            "total": len(rows),
            "graphs": graphs,
            "assignees": assignees,
            "statuses": list(STATUSES),
            "sorts": list(SORTS),
        }

    async def _snapshot(self, user: AuthUser, thread_id: str) -> tuple[dict[str, Any], Any, Any]:
        thread = await self.threads.readable(user, thread_id)
        graph = self.threads.graph_for(thread)
        snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        return thread, graph, snapshot

    async def batch(self, user: AuthUser, thread_id: str, request_id: str) -> dict[str, Any]:
        """The decision page's data: the requests paused together with ``request_id``
        (those the user may decide, and how many others wait for other roles), the
        conversation or state that led there, and the decisions given so far."""
        thread, graph, snapshot = await self._snapshot(user, thread_id)
        item = _open_item(thread, snapshot, request_id)
        if item is not None:
            row = await self._open_row(item)
            row["next"] = list(snapshot.next)
            records = await self._audit(thread_id)
            return {
                "thread_id": thread_id,
                "graph_id": item.graph_id,
                "thread_status": thread.get("status"),
                "interrupt_id": item.interrupt_id,
                "requests": [row],
                "hidden": 0,
                "context": _context(snapshot.values),
                "history": [decision_summary(r) for r in records
                            if r.get("event") == "decision" and r.get("request_id") == request_id],
            }
        for intr in snapshot.interrupts:
            requests = requests_in(intr.value)
            if not requests or request_id not in [r.id for r in requests]:
                continue
            fresh = {**thread, "interrupts": {"_": [{"id": intr.id, "value": intr.value}]}}
            items = pending_requests(fresh)
            target = next(i for i in items if i.request.id == request_id)
            if not may_decide(user, target.request):
                break
            rows = []
            for pending in items:
                if not may_decide(user, pending.request):
                    continue
                row = await self.row(user, pending)
                row["args_schema"] = pending.request.args_schema
                row["original_args"] = pending.request.original_args
                rows.append(row)
            ids = {r["request_id"] for r in rows}
            records = await self._audit(thread_id)
            history = [decision_summary(r) for r in records
                       if r.get("event") == "decision" and r.get("request_id") in ids]
            return {
                "thread_id": thread_id,
                "graph_id": (thread.get("metadata") or {}).get("graph_id"),
                "thread_status": thread.get("status"),
                "interrupt_id": intr.id,
                "requests": rows,
                "hidden": len(items) - len(rows),
                "context": _context(snapshot.values),
                "history": history,
            }
        raise NotFound(
            f"No pending request {request_id!r} that you may decide on thread {thread_id}: "
            "it was answered, expired or withdrawn, or it needs a role you do not have."
        )

    # -- deciding ----------------------------------------------------------------------

    async def decide(self, user: AuthUser, thread_id: str, answers: list[dict[str, Any]]
                     ) -> dict[str, Any]:
        """Answer requests of one thread as one atomic batch (see the module docstring).

        Each answer names ``request_id`` and the ``digest`` the reviewer saw, the
        ``type`` (accept, edit, reject, response, ignore), an edit's ``args`` and a
        rejection's reason or a response's text in ``message``. Returns the run and,
        per request, the decision recorded.
        """
        if not answers:
            raise Unprocessable("Give at least one answer.")
        ids = [a["request_id"] for a in answers]
        if len(set(ids)) != len(ids):
            raise Unprocessable(f"Answer each request once; got {ids}.")
        open_types = [a["type"] in OPEN_ANSWERS for a in answers]
        if any(open_types):
            if not all(open_types) or len(answers) > 1:
                raise Unprocessable(
                    f"An interrupt's answer or a resume is given alone, one per decision; "
                    f"got {[a['type'] for a in answers]}."
                )
            return await self._decide_open(user, thread_id, answers[0])
        thread, graph, snapshot = await self._snapshot(user, thread_id)
        placed: dict[str, tuple[str, ApprovalRequest]] = {}
        for intr in snapshot.interrupts:
            for request in requests_in(intr.value) or ():
                placed[request.id] = (intr.id, request)
        for answer in answers:
            await self._still_pending(thread_id, answer, placed.get(answer["request_id"]))
            _, request = placed[answer["request_id"]]
            if not may_decide(user, request):
                error = Forbidden(
                    f"{user.identity} (roles {list(user.permissions)}) may not decide "
                    f"request {request.id!r} ({request.action}): it needs one of the roles "
                    f"{list(request.reviewers.roles)}."
                )
                error.extra = {"reason": "not_allowed", "request_id": request.id}
                raise error
        resume = _resume(snapshot.interrupts, {a["request_id"]: a for a in answers}, placed)
        config = {"configurable": {"thread_id": thread_id, **reviewer_config(user)}}
        from threadloom.hitl.approval_hooks import acheck_resume

        try:
            await acheck_resume(graph, resume, config)
        except ApprovalError as exc:
            raise refusal(exc) from None
        before = await self._audit(thread_id)
        metadata = thread.get("metadata") or {}
        body = {
            "assistant_id": metadata.get("assistant_id") or metadata.get("graph_id"),
            "command": {"resume": resume},
            "multitask_strategy": "reject",
        }
        run, events = await self._queue(user, thread_id, body, ids[0])
        assert events is not None
        await self._applied(run, events, thread_id, ids[0])
        after = await self._audit(thread_id)
        seen = {r.get("seq") for r in before}
        decided = [decision_summary(r) for r in after
                   if r.get("seq") not in seen and r.get("event") == "decision"]
        latest = await self.ctx.storage.get_thread(thread_id) or {}
        return {"run_id": run["run_id"], "decisions": decided,
                "thread_status": latest.get("status")}

    async def _applied(self, run: Mapping[str, Any], events: Any, thread_id: str,
                       request_id: str) -> None:
        """Wait for the run applying a decision; refuse (raise) when it failed."""
        await self.runs.collect_result(events)
        final = await self.ctx.storage.get_run(run["run_id"]) or run
        for callback in self.on_decided:
            callback()
        if final.get("status") == "error":
            latest = await self.ctx.storage.get_thread(thread_id) or {}
            raise _run_refusal((latest.get("error") or {}), request_id)

    async def _queue(self, user: AuthUser, thread_id: str, body: dict[str, Any],
                     request_id: str) -> tuple[dict[str, Any], Any]:
        """Queue the run applying a decision; refuse it when the thread is busy."""
        try:
            run, events = await self.runs.create(user, thread_id, body, listen=True)
        except Conflict:
            raise _overtaken(
                "busy",
                f"Thread {thread_id} is running right now (another decision, or the agent "
                "itself): nothing was applied. Reload to see what is pending now.",
                request_id,
            ) from None
        return run, events

    async def _decide_open(self, user: AuthUser, thread_id: str, answer: Mapping[str, Any]
                           ) -> dict[str, Any]:
        """Answer a plain interrupt (``type`` ``"answer"``, any JSON ``value``) or resume a
        static pause (``"resume"``), as the signed-in reviewer, recorded in the audit log.
        Refused (409) when it is no longer the pause the reviewer saw."""
        rid = answer["request_id"]
        thread, graph, snapshot = await self._snapshot(user, thread_id)
        item = _open_item(thread, snapshot, rid)
        expected = "answer" if rid != RESUME else "resume"
        if answer["type"] != expected:
            raise Unprocessable(
                f"Request {rid!r} is answered with type {expected!r}, not {answer['type']!r}."
            )
        if item is None or item.digest != answer.get("digest"):
            records = [r for r in await self._audit(thread_id) if r.get("event") == "decision"
                       and r.get("request_id") == rid and r.get("digest") == answer.get("digest")]
            if records:
                last = records[-1]
                raise _overtaken(
                    "overtaken",
                    f"{'Interrupt' if rid != RESUME else 'The pause'} {rid!r} was already "
                    f"answered: {last.get('decision')!r} by {_who(last)} at {last.get('at')}. "
                    "Your decision was not applied.",
                    rid, decision=decision_summary(last),
                )
            raise _overtaken(
                "overtaken",
                f"The thread moved on: {'interrupt ' + repr(rid) if rid != RESUME else 'the pause'}"
                f" is no longer pending on thread {thread_id}. Your decision was not applied.",
                rid,
            )
        metadata = thread.get("metadata") or {}
        body: dict[str, Any] = {
            "assistant_id": metadata.get("assistant_id") or metadata.get("graph_id"),
            "multitask_strategy": "reject",
        }
        if item.kind == "answer":
            body["command"] = {"resume": {item.interrupt_id: answer.get("value")}}
        else:
            body["input"] = None
        run, events = await self._queue(user, thread_id, body, rid)
        record = {
            "event": "decision",
            "thread_id": thread_id,
            "checkpoint_id": (snapshot.config.get("configurable") or {}).get("checkpoint_id"),
            "request_id": rid,
            "action": item.kind,
            "decision": item.kind,
            "value": answer.get("value") if item.kind == "answer" else None,
            "who": {"id": user.identity, "roles": list(user.permissions)},
            "at": to_iso(self.now(item.graph_id)),
            "digest": item.digest,
            "status": f"decided:{item.kind}",
            "run_id": run["run_id"],
        }
        saver = self.ctx.storage.checkpointer
        stored = await saver.aput_audit(thread_id, [record]) if hasattr(
            saver, "aput_audit") else [record]
        await self._applied(run, events, thread_id, rid)
        latest = await self.ctx.storage.get_thread(thread_id) or {}
        return {"run_id": run["run_id"], "decisions": [decision_summary(r) for r in stored],
                "thread_status": latest.get("status")}

    async def _still_pending(self, thread_id: str, answer: Mapping[str, Any],
                             placed: tuple[str, ApprovalRequest] | None) -> None:
        """Refuse an answer to something that is no longer what the reviewer saw."""
        rid = answer["request_id"]
        if placed is not None and placed[1].digest == answer.get("digest"):
            return
        records = [r for r in await self._audit(thread_id)
                   if r.get("event") == "decision" and r.get("request_id") == rid]
        seen = [r for r in records if r.get("digest") == answer.get("digest")]
        if seen:
            last = seen[-1]
            who, at, kind = _who(last), last.get("at"), last.get("decision")
            if last.get("via_deadline"):
                raise _overtaken(
                    "expired",
                    f"Request {rid!r} ({last.get('action')}) expired: its deadline decided "
                    f"{kind!r} at {at}. Your decision was not applied.",
                    rid, decision=decision_summary(last),
                )
            if kind == "edit" and placed is not None:
                raise _overtaken(
                    "overtaken",
                    f"{who} edited request {rid!r} ({last.get('action')}) at {at}: review the "
                    "new arguments. Your decision was not applied.",
                    rid, decision=decision_summary(last),
                )
            raise _overtaken(
                "overtaken",
                f"Request {rid!r} ({last.get('action')}) was already answered: {kind!r} by "
                f"{who} at {at}. Your decision was not applied.",
                rid, decision=decision_summary(last),
            )
        if placed is not None:
            raise _overtaken(
                "overtaken",
                f"The thread moved on: request {rid!r} ({placed[1].action}) now proposes "
                f"other arguments {placed[1].args}. Review it again; your decision was not "
                "applied.",
                rid,
            )
        raise _overtaken(
            "overtaken",
            f"The thread moved on: request {rid!r} is no longer pending on thread "
            f"{thread_id}. Your decision was not applied.",
            rid,
        )

    # -- the audit trail ---------------------------------------------------------------

    async def _audit(self, thread_id: str) -> list[dict[str, Any]]:
        saver = self.ctx.storage.checkpointer
        if not hasattr(saver, "alist_audit"):
            return []
        return list(await saver.alist_audit(thread_id))

    async def audit(self, user: AuthUser, thread_id: str) -> dict[str, Any]:
        """The thread's audit records and whether their hash chain verifies."""
        from threadloom.hitl.approval_hooks import acheckpoint_anchors
        from threadloom.hitl.audit import verify_chain

        thread = await self.threads.readable(user, thread_id)
        saver = self.ctx.storage.checkpointer
        records = await self._audit(thread_id)
        problem = None
        try:
            head = await saver.aaudit_head(thread_id)
            anchors = await acheckpoint_anchors(saver, thread_id)
            verify_chain(records, head=head, key=getattr(saver, "audit_key", None),
                         anchors=anchors)
        except ValueError as exc:
            problem = str(exc)
        return {
            "thread_id": thread_id,
            "graph_id": (thread.get("metadata") or {}).get("graph_id"),
            "records": records,
            "verified": problem is None,
            "problem": problem,
        }

    async def audit_jsonl(self, user: AuthUser, thread_id: str) -> str:
        """The thread's audit records as JSON Lines."""
        import io

        from threadloom.hitl.audit import export_jsonl

        await self.threads.readable(user, thread_id)
        out = io.StringIO()
        export_jsonl(await self._audit(thread_id), out)
        return out.getvalue()

    async def reason_gone(self, item: Pending) -> tuple[str, dict[str, Any] | None]:
        """Why a request the feed knew changed or left: ``("answered", record)``,
        ``("expired", record)`` or ``("withdrawn", None)`` (the thread moved on)."""
        records = await self._audit(item.thread_id)
        for record in reversed(records):
            if record.get("event") != "decision" or record.get("request_id") != item.request_id:
                continue
            if record.get("digest") != item.digest:
                continue
            kind = "expired" if record.get("via_deadline") else "answered"
            return kind, decision_summary(record)
        return "withdrawn", None


OPEN_ANSWERS = ("answer", "resume")
"""Answer types of the items that are not approval requests (``PendingInterrupt``)."""


def _open_item(thread: Mapping[str, Any], snapshot: Any, request_id: str
               ) -> PendingInterrupt | None:
    """The plain interrupt ``request_id`` (or, for ``"resume"``, the static pause)
    pending in ``snapshot``; None when there is no such thing pending now."""
    if request_id == RESUME:
        if snapshot.next and not snapshot.interrupts:
            return PendingInterrupt(dict(thread), "resume")
        return None
    for intr in snapshot.interrupts:
        if intr.id == request_id and requests_in(intr.value) is None:
            from threadloom.server.serde import jsonable

            return PendingInterrupt(dict(thread), "answer", intr.id, jsonable(intr.value))
    return None


def _sorted(rows: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    if sort == "urgent":
        far = "9999"
        return sorted(rows, key=lambda r: ((r["deadline"] or {}).get("at") or far,
                                           r["asked_at"] or ""))
    return sorted(rows, key=lambda r: (r["asked_at"] or "", r["key"]),
                  reverse=sort == "newest")


def _answer(answer: Mapping[str, Any], request: ApprovalRequest) -> dict[str, Any]:
    """One inbox answer in the Agent Inbox ``HumanResponse`` shape, echoing the digest."""
    kind = answer.get("type")
    if kind not in RESPONSE_TYPES:
        raise Unprocessable(
            f"Invalid answer type {kind!r} for request {request.id!r}: use one of "
            f"{list(RESPONSE_TYPES)}."
        )
    out: dict[str, Any] = {"type": kind, "digest": request.digest}
    if kind == "edit":
        args = answer.get("args")
        if not isinstance(args, Mapping):
            raise Unprocessable(f"An edit of request {request.id!r} needs 'args': an object.")
        out["args"] = {"action": request.action, "args": dict(args)}
    elif kind in ("reject", "response"):
        message = answer.get("message")
        if message is not None and not isinstance(message, str):
            raise Unprocessable(f"'message' of request {request.id!r} must be text.")
        out["args"] = message
    return out


def _resume(interrupts: Iterable[Any], answers: Mapping[str, Mapping[str, Any]],
            placed: Mapping[str, tuple[str, ApprovalRequest]]) -> dict[str, list[Any]]:
    """``{interrupt_id: [answer or None per request]}`` for the answered requests."""
    resume: dict[str, list[Any]] = {}
    for intr in interrupts:
        requests = requests_in(intr.value) or []
        chunk = [
            _answer(answers[r.id], placed[r.id][1]) if r.id in answers else None
            for r in requests
        ]
        if any(c is not None for c in chunk):
            resume[intr.id] = chunk
    if not resume:
        raise BadRequest("None of the answers names a pending request.")
    return resume


def _run_refusal(error: Mapping[str, Any], request_id: str) -> ServerError:
    """The run applying a decision failed: its error, as the decision's refusal."""
    import threadloom.hitl.errors as errors

    kind = error.get("error") or "Error"
    message = error.get("message") or "the decision could not be applied"
    cls = getattr(errors, str(kind), None)
    if isinstance(cls, type) and issubclass(cls, ApprovalError):
        return refusal(cls(str(message), request_id=request_id))
    failure = ServerError(f"The decision was recorded but the run failed: {kind}: {message}")
    failure.extra = {"reason": "failed", "request_id": request_id}
    return failure


def _context(values: Any) -> dict[str, Any]:
    """What led to the request: the conversation when the state has messages, else the
    state values."""
    from threadloom.server.serde import jsonable

    if isinstance(values, Mapping) and isinstance(values.get("messages"), list):
        messages = []
        for m in values["messages"]:
            data = jsonable(m)
            if not isinstance(data, Mapping):
                data = {"type": "unknown", "content": str(data)}
            messages.append({
                "role": data.get("type") or data.get("role") or "message",
                "content": data.get("content") if isinstance(data.get("content"), str)
                else json.dumps(data.get("content"), ensure_ascii=False),
                "name": data.get("name"),
                "tool_calls": [
                    {"name": c.get("name"), "args": c.get("args"), "id": c.get("id")}
                    for c in data.get("tool_calls") or ()
                ],
            })
        rest = {k: v for k, v in values.items() if k != "messages"}
        return {"messages": messages, "values": jsonable(rest)}
    return {"messages": [], "values": jsonable(values)}

