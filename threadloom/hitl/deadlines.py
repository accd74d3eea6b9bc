"""Deadlines on requests, and the sweep that applies the expired ones.

A request may say how long a person has and what happens when the time is up: reject,
approve, or escalate to another group of reviewers (with its own deadline and fallback).
The deadline is part of the request, hence of the interrupt value, hence of the
checkpoint: it survives restarts and needs no timer process of its own. Something only
has to look from time to time - ``sweep(graph)``, run by ``threadloom sweep`` or by the
server's workers - and resume the threads whose deadline passed with the deadline's
decision. That decision goes through the same validation and audit trail as a person's.

Once a deadline has passed, a person's late answer is refused (``DeadlinePassedError``):
the deadline's decision is the only one accepted, so sweeping and answering cannot race.
An answer arriving after the sweep applied it is refused the same way (and audited as
refused). Deadline decisions come only from the sweep (never from an answer's data), and
"now" is the graph's approval clock (``ApprovalHooks(clock=...)``) unless the operator
sweeps as of another time (``sweep(now=...)``, ``threadloom sweep --now``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Union

from threadloom.hitl.clock import aware, from_iso, to_iso
from threadloom.hitl.quorum import Reviewers
from threadloom.hitl.request import ApprovalRequest, requests_in

if TYPE_CHECKING:
    from threadloom.graph.compiled import CompiledStateGraph

__all__ = [
    "DEADLINE_REVIEWER",
    "Deadline",
    "Escalate",
    "SweepResult",
    "asweep",
    "due_requests",
    "sweep",
]

OnTimeout = Union[Literal["reject", "accept"], "Escalate"]

DEADLINE_REVIEWER = {"id": "threadloom:deadline", "roles": []}
"""The identity recorded in the audit trail for decisions a deadline made."""


@dataclass(frozen=True)
class Escalate:
    """On timeout, hand the request to another group: ``to`` (roles and quorum) gets
    ``after`` more time, then ``on_timeout`` applies (reject by default; may escalate
    again)."""

    to: Reviewers
    after: timedelta
    on_timeout: OnTimeout = "reject"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviewers": self.to.to_dict(),
            "after_seconds": self.after.total_seconds(),
            **_on_timeout_dict(self.on_timeout),
        }


@dataclass(frozen=True)
class Deadline:
    """How long a person has to decide: ``after`` (from when the request was asked) or an
    absolute ``at``; then ``on_timeout`` - ``"reject"`` (default), ``"accept"`` or
    ``Escalate(...)``. ``reason`` is what the agent reads on a timeout rejection."""

    after: timedelta | None = None
    at: datetime | None = None
    on_timeout: OnTimeout = "reject"
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.after is None) == (self.at is None):
            raise ValueError("Deadline needs exactly one of after=timedelta(...) or at=datetime.")
        if not isinstance(self.on_timeout, Escalate) and self.on_timeout not in (
            "reject",
            "accept",
        ):
            raise ValueError(
                f"Deadline(on_timeout={self.on_timeout!r}): use 'reject', 'accept' or "
                "Escalate(to=Reviewers(...), after=timedelta(...))."
            )

    def resolve(self, asked_at: datetime) -> dict[str, Any]:
        """The deadline as stored in a request: an absolute time and what happens then."""
        when = aware(self.at) if self.at is not None else aware(asked_at) + self.after  # type: ignore[operator]
        return {"at": to_iso(when), "reason": self.reason, **_on_timeout_dict(self.on_timeout)}


def _on_timeout_dict(value: OnTimeout) -> dict[str, Any]:
    if isinstance(value, Escalate):
        return {"on_timeout": "escalate", "escalate": value.to_dict()}
    return {"on_timeout": value, "escalate": None}


# -- what a deadline means for one request ---------------------------------------------


def deadline_at(request: ApprovalRequest) -> datetime | None:
    return from_iso(request.deadline["at"]) if request.deadline else None


def is_due(request: ApprovalRequest, now: datetime) -> bool:
    """True once the request's deadline has passed."""
    at = deadline_at(request)
    return at is not None and aware(now) >= at


def timeout_answer(request: ApprovalRequest) -> dict[str, Any]:
    """The answer the deadline gives: its decision, marked ``deadline: True``."""
    assert request.deadline is not None
    kind = request.deadline["on_timeout"]
    message = None
    if kind == "reject":
        message = request.deadline.get("reason") or (
            f"No decision was made before the deadline ({request.deadline['at']}); the "
            "request was rejected automatically."
        )
    return {"type": kind, "args": message, "digest": request.digest, "deadline": True}


def escalated(request: ApprovalRequest, at: str) -> ApprovalRequest:
    """The request handed to the escalation group, with its new deadline from ``at``."""
    import dataclasses

    assert request.deadline is not None and request.deadline.get("escalate")
    esc = request.deadline["escalate"]
    new_deadline = {
        "at": to_iso(from_iso(at) + timedelta(seconds=float(esc["after_seconds"]))),
        "reason": request.deadline.get("reason"),
        "on_timeout": esc["on_timeout"],
        "escalate": esc.get("escalate"),
    }
    return dataclasses.replace(
        request,
        reviewers=Reviewers.from_dict(esc["reviewers"]),
        deadline=new_deadline,
        approvals=(),
        rejections=(),
        escalation=request.escalation + 1,
    )


def due_requests(
    interrupts: Iterable[Any], now: datetime, graph_id: str | None = None
) -> dict[str, list[Any]]:
    """For pending interrupts, the timeout answers of the requests that are due.

    Returns ``{interrupt_id: [answer or None per request]}`` - ready to be given as
    ``Command(resume=...)`` - holding only interrupts with at least one due request.
    With ``graph_id``, only requests asked by that graph count.
    """
    out: dict[str, list[Any]] = {}
    for intr in interrupts:
        requests = requests_in(getattr(intr, "value", None))
        if not requests:
            continue
        if graph_id is not None and any(r.graph != graph_id for r in requests):
            continue
        answers = [timeout_answer(r) if is_due(r, now) else None for r in requests]
        if any(a is not None for a in answers):
            out[intr.id] = answers
    return out


# -- the sweep ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """One request the sweep decided (or failed to): which thread, what, and how."""

    thread_id: str
    interrupt_id: str
    request_id: str
    action: str
    decision: str
    deadline: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _results(
    thread_id: str, interrupts: Iterable[Any], due: Mapping[str, list[Any]], error: str | None
) -> list[SweepResult]:
    out = []
    for intr in interrupts:
        answers = due.get(intr.id)
        if not answers:
            continue
        for request, answer in zip(requests_in(intr.value) or (), answers, strict=False):
            if answer is None:
                continue
            out.append(
                SweepResult(
                    thread_id=thread_id,
                    interrupt_id=intr.id,
                    request_id=request.id,
                    action=request.action,
                    decision=answer["type"],
                    deadline=request.deadline["at"] if request.deadline else "",
                    error=error,
                )
            )
    return out


def _thread_ids(saver: Any) -> list[str]:
    """Every thread the saver holds: ``list_threads()`` when the saver has it (SQL
    savers), the memory saver's keys, else a walk over all checkpoints."""
    lister = getattr(saver, "list_threads", None)
    if callable(lister):
        return list(lister())
    storage = getattr(saver, "storage", None)
    if isinstance(storage, Mapping):
        return [str(t) for t in list(storage)]
    seen: dict[str, None] = {}
    for tup in saver.list(None):
        seen.setdefault(str(tup.config["configurable"]["thread_id"]), None)
    return list(seen)


async def _athread_ids(saver: Any) -> list[str]:
    lister = getattr(saver, "alist_threads", None)
    if callable(lister):
        return list(await lister())
    storage = getattr(saver, "storage", None)
    if isinstance(storage, Mapping):
        return [str(t) for t in list(storage)]
    seen: dict[str, None] = {}
    async for tup in saver.alist(None):
        seen.setdefault(str(tup.config["configurable"]["thread_id"]), None)
    return list(seen)


def _require_saver(graph: CompiledStateGraph) -> Any:
    saver = getattr(graph, "checkpointer", None)
    if saver is None or saver is True or saver is False:
        raise ValueError(
            "sweep(graph) needs a graph compiled with its own checkpointer, e.g. "
            "builder.compile(checkpointer=SqliteSaver(...)), to find paused threads."
        )
    return saver


def _hooks(graph: CompiledStateGraph) -> Any:
    from threadloom.hitl.approval_hooks import hooks_of

    hook = hooks_of(graph)
    if hook is not None:
        return hook
    from threadloom.hitl.errors import ApprovalHooksMissingError

    raise ApprovalHooksMissingError(
        "sweep(graph) needs a graph that carries the approval hooks (compile(..., hooks="
        "[ApprovalHooks()]), ToolNode(approval=...) or create_react_agent(approval=...))."
    )


def _due(graph: CompiledStateGraph, snapshot: Any, now: datetime) -> dict[str, list[Any]]:
    from threadloom.hitl.approval_hooks import graph_identity

    return due_requests(snapshot.interrupts, now, graph_identity(graph))


def sweep(
    graph: CompiledStateGraph,
    *,
    now: datetime | None = None,
    thread_ids: Iterable[str] | None = None,
) -> list[SweepResult]:
    """Apply every passed deadline of ``graph``'s paused threads; return what was done.

    Each thread whose pending requests include a due one is resumed once, with the
    deadline's decision for each due request (other requests of the batch stay pending).
    The decision is recorded in the audit trail as made by ``threadloom:deadline``. A
    thread that fails to resume is reported with ``error`` set; the others still run.
    Only requests this graph asked are decided: threads of other graphs sharing the
    database are left alone. ``now`` defaults to the graph's approval clock.
    """
    from threadloom.hitl.approval_hooks import end_sweep, sweeping
    from threadloom.types import Command

    saver = _require_saver(graph)
    hooks = _hooks(graph)
    now = aware(now) if now is not None else hooks.now()
    results: list[SweepResult] = []
    for thread_id in list(thread_ids) if thread_ids is not None else _thread_ids(saver):
        config = {"configurable": {"thread_id": thread_id}}
        try:
            snapshot = graph.get_state(config)
        except Exception:  # a thread this graph cannot read is another graph's
            continue
        due = _due(graph, snapshot, now)
        if not due:
            continue
        error = None
        token = sweeping(now)
        try:
            graph.invoke(Command(resume=due), config)
        except Exception as exc:  # one broken thread must not stop the sweep
            error = f"{type(exc).__name__}: {exc}"
        finally:
            end_sweep(token)
        results += _results(thread_id, snapshot.interrupts, due, error)
    return results


async def asweep(
    graph: CompiledStateGraph,
    *,
    now: datetime | None = None,
    thread_ids: Iterable[str] | None = None,
) -> list[SweepResult]:
    """Async ``sweep``, for asyncio workers and async savers."""
    from threadloom.hitl.approval_hooks import end_sweep, sweeping
    from threadloom.types import Command

    saver = _require_saver(graph)
    hooks = _hooks(graph)
    now = aware(now) if now is not None else hooks.now()
    results: list[SweepResult] = []
    ids = list(thread_ids) if thread_ids is not None else await _athread_ids(saver)
    for thread_id in ids:
        config = {"configurable": {"thread_id": thread_id}}
        try:
            snapshot = await graph.aget_state(config)
        except Exception:  # a thread this graph cannot read is another graph's
            continue
        due = _due(graph, snapshot, now)
        if not due:
            continue
        error = None
        token = sweeping(now)
        try:
            await graph.ainvoke(Command(resume=due), config)
        except Exception as exc:  # one broken thread must not stop the sweep
            error = f"{type(exc).__name__}: {exc}"
        finally:
            end_sweep(token)
        results += _results(thread_id, snapshot.interrupts, due, error)
    return results
