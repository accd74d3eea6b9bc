"""``ApprovalHooks``: what a graph that uses approvals carries, and where it checks answers.

Graphs get these hooks explicitly - ``ToolNode(approval=...)`` and
``create_react_agent(approval=...)`` carry them, ``compile(..., hooks=[ApprovalHooks()])``
attaches them to a hand-built graph - never by importing this module. They hold what
belongs to the deployment, not to a request:

* ``clock`` - the one clock for asking (``asked_at``, deadlines) and deciding (arrival
  time, "has the deadline passed"); default the system clock. A run's config cannot set
  it (``hitl_now`` is refused with ``ClockOverrideError``);
* ``reviewer`` - where the identity of the person resuming comes from: a function of the
  run's config (default ``config["configurable"]["reviewer"]``, which a server fills in
  from the signed-in user). Never from the answer itself;
* ``max_answer_bytes`` - the largest answer taken (a resume value with its edits, or a
  ``Command(update=...)``), in bytes of canonical JSON; a larger one is refused with
  ``AnswerTooLargeError`` and only its size and digest are logged;
* ``max_record_bytes`` - the largest audit record stored (``audit.bounded_record``).

The graph calls them at its doors:

* ``before_run`` before every run: it refuses a clock in the config, and when the input
  is ``Command(resume=...)`` it reads the pending interrupts and checks every answer to an
  approval request against its request (allowed type, digest, deadline, reviewer role and
  quorum, edit schema) *as a whole*; only if all pass are they stamped (reviewer, time,
  digest) and recorded in the audit log. A refused answer reaches the caller before
  anything is written (the refusal itself is logged). An answer with no pending request
  for it - nothing is waiting, or the interrupt it names was already answered - is refused
  (``NoPendingRequestError``, or ``DeadlinePassedError`` when the sweep decided it). Only
  the sweep gives deadline decisions. ``Command(update=...)`` is recorded like
  ``update_state``. It also hands the nodes the run's approval context (``run_context``).
* ``before_update``/``after_update`` around ``update_state``: record who changed what,
  including tool calls whose arguments were rewritten.

A resume may answer several pending approval interrupts at once with one list (in the
order ``get_state().interrupts`` lists them; a shorter list answers the first requests)
or one dict keyed by request id; it is split into the ``{interrupt_id: answer}`` map the
engine understands.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from threadloom.constants import CONFIG_KEY_TASK
from threadloom.hitl.audit import (
    MAX_RECORD_BYTES,
    bounded_record,
    command_update_record,
    decision_record,
    refused_record,
    resume_record,
    supports_audit,
    update_record,
)
from threadloom.hitl.clock import NOW_KEY, checkpoint_time, from_iso, read_clock, to_iso, utcnow
from threadloom.hitl.decision import advance
from threadloom.hitl.digest import json_digest
from threadloom.hitl.errors import (
    AnswerTooLargeError,
    ApprovalError,
    ApprovalHooksMissingError,
    ClockOverrideError,
    DeadlinePassedError,
    DigestRequiredError,
    InvalidResponseError,
    NoPendingRequestError,
)
from threadloom.hitl.quorum import Reviewer
from threadloom.hitl.request import ApprovalRequest, requests_in
from threadloom.hitl.response import match_responses, unwrap_decisions
from threadloom.hitl.validation import ArgsValidator, schema_validator, validate_response

__all__ = [
    "DEFAULT_HOOKS",
    "MAX_ANSWER_BYTES",
    "MAX_ANSWER_DEPTH",
    "ApprovalHooks",
    "ApprovalRun",
    "acheck_resume",
    "acheckpoint_anchors",
    "graph_identity",
    "hooks_of",
    "run_context",
    "uses_approvals",
]

RUN_KEY = "__threadloom_approvals"
"""Config key (under ``configurable``) holding the run's ``ApprovalRun``; an object, so
it cannot come from JSON a client sent."""

MAX_ANSWER_DEPTH = 64
"""How deeply an answer may nest (an edit's arguments included); deeper is refused."""

MAX_ANSWER_BYTES = 1024 * 1024
"""The default largest answer, in bytes of canonical JSON (``ApprovalHooks``)."""

_APPROVING = ("accept", "edit")


def _config_reviewer(config: Mapping[str, Any] | None) -> Reviewer | None:
    return Reviewer.from_config(config)


class ApprovalHooks:
    """The approval layer's hooks for one deployment: its clock, reviewer source and
    size limits.

    ``clock()`` returns the current time (a datetime); ``reviewer(config)`` returns the
    identity resuming (a ``Reviewer``, a ``{"id", "roles"}`` dict, or None).
    ``max_answer_bytes``: answers larger than this (canonical JSON) are refused with
    ``AnswerTooLargeError`` (default ``MAX_ANSWER_BYTES``, 1 MiB); ``max_record_bytes``:
    audit records larger than this keep summaries of their largest fields instead
    (default ``MAX_RECORD_BYTES``, 64 KiB; see ``threadloom.hitl.audit``).
    """

    name = "approvals"

    def __init__(
        self,
        *,
        clock: Callable[[], Any] | None = None,
        reviewer: Callable[[Mapping[str, Any]], Any] | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        if clock is not None and not callable(clock):
            raise TypeError(
                "ApprovalHooks(clock=...) takes a function returning a datetime, e.g. "
                f"lambda: datetime.now(UTC); got {type(clock).__name__}."
            )
        if reviewer is not None and not callable(reviewer):
            raise TypeError(
                "ApprovalHooks(reviewer=...) takes a function of the run's config returning "
                f"the reviewer identity; got {type(reviewer).__name__}."
            )
        for name, limit in (("max_answer_bytes", max_answer_bytes),
                            ("max_record_bytes", max_record_bytes)):
            if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
                raise ValueError(
                    f"ApprovalHooks({name}=...) takes a number of bytes > 0; got {limit!r}."
                )
        self.clock = clock
        self.reviewer = reviewer
        self.max_answer_bytes = max_answer_bytes
        self.max_record_bytes = max_record_bytes

    def __repr__(self) -> str:
        return (
            f"ApprovalHooks(clock={self.clock!r}, reviewer={self.reviewer!r}, "
            f"max_answer_bytes={self.max_answer_bytes}, "
            f"max_record_bytes={self.max_record_bytes})"
        )

    def bounded(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``records`` as the audit log keeps them: each within ``max_record_bytes``."""
        return [bounded_record(r, self.max_record_bytes) for r in records]

    def check_answer(self, value: Any, what: str = "answer") -> None:
        """Refuse an answer nested too deeply (``InvalidResponseError``) or larger than
        ``max_answer_bytes`` (``AnswerTooLargeError``, naming the limit)."""
        check_depth(value)
        size, digest = json_digest(value)
        if size > self.max_answer_bytes:
            raise AnswerTooLargeError(
                f"The {what} is {size} bytes of JSON, more than this deployment takes "
                f"(ApprovalHooks(max_answer_bytes={self.max_answer_bytes})). It was refused "
                f"before anything ran; the audit log keeps only its size and digest "
                f"({digest}). Send a smaller answer, or raise the limit where the graph's "
                "hooks are built.",
                size=size,
                limit=self.max_answer_bytes,
                digest=digest,
            )

    def now(self) -> datetime:
        """The deployment's current time."""
        return utcnow() if self.clock is None else read_clock(self.clock)

    def reviewer_of(self, config: Mapping[str, Any] | None) -> Reviewer | None:
        """The identity resuming, from the configured source (never from an answer)."""
        if self.reviewer is None:
            return _config_reviewer(config)
        return Reviewer.of(self.reviewer(config or {}))

    # -- the doors (see the module docstring) -----------------------------------------

    def before_run(self, graph: Any, input: Any, config: Any) -> tuple[Any, Any]:
        start = _start(self, graph, input, config)
        if start.done:
            return start.input, start.config
        snapshot = graph.get_state(start.config, subgraphs=True)
        try:
            plan = _plan(self, graph, snapshot, start)
        except _NotPending as missing:
            records = start.saver.list_audit(start.thread_id) if start.audit else []
            exc = missing.error(records)
            if start.audit:
                start.saver.put_audit(start.thread_id, [_refusal(self, exc, snapshot, start)])
            raise exc from None
        except ApprovalError as exc:
            if start.audit:
                start.saver.put_audit(start.thread_id, [_refusal(self, exc, snapshot, start)])
            raise
        if start.audit and plan.records:
            records, earlier = _once(start, plan.records, start.saver.list_audit)
            stored = start.saver.put_audit(start.thread_id, records) if records else []
            return plan.input, _anchored(start.config, stored or earlier)
        return plan.input, start.config

    async def abefore_run(self, graph: Any, input: Any, config: Any) -> tuple[Any, Any]:
        start = _start(self, graph, input, config)
        if start.done:
            return start.input, start.config
        snapshot = await graph.aget_state(start.config, subgraphs=True)
        try:
            plan = _plan(self, graph, snapshot, start)
        except _NotPending as missing:
            records = await start.saver.alist_audit(start.thread_id) if start.audit else []
            exc = missing.error(records)
            if start.audit:
                await start.saver.aput_audit(
                    start.thread_id, [_refusal(self, exc, snapshot, start)]
                )
            raise exc from None
        except ApprovalError as exc:
            if start.audit:
                await start.saver.aput_audit(
                    start.thread_id, [_refusal(self, exc, snapshot, start)]
                )
            raise
        if start.audit and plan.records:
            records, earlier = await _aonce(start, plan.records, start.saver.alist_audit)
            stored = await start.saver.aput_audit(start.thread_id, records) if records else []
            return plan.input, _anchored(start.config, stored or earlier)
        return plan.input, start.config

    def before_update(self, graph: Any, saver: Any, config: Any) -> Any:
        """The state ``update_state`` is about to change (None when nothing is recorded)."""
        if not supports_audit(saver):
            return None
        self.reviewer_of(config)  # a malformed identity fails before anything is written
        return graph.get_state(config)

    async def abefore_update(self, graph: Any, saver: Any, config: Any) -> Any:
        if not supports_audit(saver):
            return None
        self.reviewer_of(config)
        return await graph.aget_state(config)

    def after_update(
        self, saver: Any, config: Any, updates: Any, before: Any, new_config: Any
    ) -> None:
        """Record the ``(values, as_node)`` updates of one ``update_state`` superstep."""
        if before is None:
            return
        saver.put_audit(_thread_id(config), _updates(self, config, updates, before, new_config))

    async def aafter_update(
        self, saver: Any, config: Any, updates: Any, before: Any, new_config: Any
    ) -> None:
        if before is None:
            return
        await saver.aput_audit(
            _thread_id(config), _updates(self, config, updates, before, new_config)
        )


DEFAULT_HOOKS = ApprovalHooks()
"""The hooks ``ToolNode(approval=...)`` carries unless its policy names others."""


def uses_approvals(node: Any) -> Any:
    """Mark a node function that asks for approval (``request_approval``,
    ``policy.review``): compiling its graph without ``hooks=[ApprovalHooks(...)]`` then
    fails at once with ``GraphHooksError`` instead of when the node runs."""
    node.requires_graph_hooks = (ApprovalHooks.name,)
    return node


# -- what the nodes see ----------------------------------------------------------------------


@dataclass
class ApprovalRun:
    """The approval context of one run, handed to its nodes through the config."""

    hooks: ApprovalHooks
    graph_id: str
    asked: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def asked_at(self, checkpoint_id: str | None, request_id: str) -> datetime:
        """When the request was first asked: read back from the pending request on a
        re-run, else now by the deployment's clock."""
        stored = self.asked.get((checkpoint_id, request_id))
        if stored is not None:
            return from_iso(stored)
        if self.hooks.clock is None:
            return checkpoint_time(checkpoint_id) or utcnow()
        return self.hooks.now()


def run_context(config: Mapping[str, Any]) -> ApprovalRun:
    """The running graph's approval context, or ``ApprovalHooksMissingError``."""
    run = (config.get("configurable") or {}).get(RUN_KEY)
    if not isinstance(run, ApprovalRun):
        raise ApprovalHooksMissingError(
            "This node asks for approval, but its graph was compiled without the approval "
            "hooks that check answers before they reach it. Compile with "
            "builder.compile(checkpointer=..., hooks=[ApprovalHooks()]) (ToolNode(approval="
            "...) and create_react_agent(approval=...) attach them themselves)."
        )
    return run


def graph_identity(graph: Any) -> str:
    """A stable name for the graph (its name, nodes and their tools): requests carry it,
    and ``sweep`` only decides requests asked by the graph it runs."""
    cached: str | None = graph.__dict__.get("_approval_identity")
    if cached is not None:
        return cached
    parts = [str(graph.name)]
    for name in sorted(graph.builder.nodes):
        node = graph.builder.nodes[name].action
        tools = getattr(node, "tools_by_name", None)
        parts.append(name + (":" + ",".join(sorted(tools)) if isinstance(tools, Mapping) else ""))
    ident = "graph:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    graph.__dict__["_approval_identity"] = ident
    return ident


# -- the sweep's side channel ----------------------------------------------------------------


@dataclass(frozen=True)
class SweepContext:
    """Set by ``sweep`` around its resumes: deadline decisions come only from here."""

    now: datetime


_SWEEP: contextvars.ContextVar[SweepContext | None] = contextvars.ContextVar(
    "threadloom_hitl_sweep", default=None
)


def sweeping(now: datetime) -> contextvars.Token[SweepContext | None]:
    return _SWEEP.set(SweepContext(now))


def end_sweep(token: contextvars.Token[SweepContext | None]) -> None:
    _SWEEP.reset(token)


# -- planning a run ----------------------------------------------------------------------------


AUDIT_ANCHOR_KEY = "audit_anchor"
"""Config key whose ``"<seq>:<hash>"`` (the audit record a run follows) the run's
checkpoints keep in their metadata: the chain is anchored in the thread's checkpoints
as well, so a log cut short below it shows even if its own anchor row was moved back."""


def _run_of(config: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The run a config belongs to (a server run's id) and whether it may be a later
    attempt of that run (a worker took it over from one that died)."""
    run_id = (config.get("configurable") or {}).get("run_id")
    attempt = (config.get("metadata") or {}).get("run_attempt")
    return (None if run_id is None else str(run_id)), attempt != 1


def _record_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (record.get("event"), record.get("interrupt_id"), record.get("request_id"))


def _split_earlier(records: list[dict[str, Any]], log: list[Any], run_id: str
                   ) -> tuple[list[dict[str, Any]], list[Any]]:
    earlier = [r for r in log if r.get("run_id") == run_id]
    done = {_record_key(r) for r in earlier}
    return [r for r in records if _record_key(r) not in done], earlier


def _tagged(start: _Start, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                  str | None, bool]:
    run_id, retry = _run_of(start.config)
    if run_id is None:
        return records, None, False
    return [{**r, "run_id": run_id} for r in records], run_id, retry


def _once(start: _Start, records: list[dict[str, Any]], list_audit: Any
          ) -> tuple[list[dict[str, Any]], list[Any]]:
    """The records to append, once per (run, event, interrupt, request): a run a worker
    took over after the first attempt recorded its answers but died before its first
    checkpoint answers the same interrupts again - the log keeps the first record (and
    the run is anchored on it) instead of a duplicate. Also the earlier records."""
    records, run_id, retry = _tagged(start, records)
    if run_id is None or not retry:
        return records, []
    return _split_earlier(records, list_audit(start.thread_id), run_id)


async def _aonce(start: _Start, records: list[dict[str, Any]], alist_audit: Any
                 ) -> tuple[list[dict[str, Any]], list[Any]]:
    """``_once`` for async runs."""
    records, run_id, retry = _tagged(start, records)
    if run_id is None or not retry:
        return records, []
    return _split_earlier(records, await alist_audit(start.thread_id), run_id)


def _anchored(config: Any, stored: Any) -> Any:
    if not stored:
        return config
    last = stored[-1]
    conf = {**config["configurable"], AUDIT_ANCHOR_KEY: f"{last['seq']}:{last['hash']}"}
    return {**config, "configurable": conf}


def checkpoint_anchors(saver: Any, thread_id: str) -> list[dict[str, Any]]:
    """The ``{"seq", "hash"}`` audit anchors the thread's checkpoints hold."""
    out: dict[int, dict[str, Any]] = {}
    for tup in saver.list({"configurable": {"thread_id": str(thread_id)}}):
        anchor = _anchor_of(tup.metadata)
        if anchor is not None:
            out[anchor["seq"]] = anchor
    return [out[k] for k in sorted(out)]


async def acheckpoint_anchors(saver: Any, thread_id: str) -> list[dict[str, Any]]:
    """``checkpoint_anchors`` for async use (servers)."""
    out: dict[int, dict[str, Any]] = {}
    async for tup in saver.alist({"configurable": {"thread_id": str(thread_id)}}):
        anchor = _anchor_of(tup.metadata)
        if anchor is not None:
            out[anchor["seq"]] = anchor
    return [out[k] for k in sorted(out)]


def _anchor_of(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    value = (metadata or {}).get(AUDIT_ANCHOR_KEY)
    if isinstance(value, str) and ":" in value:
        seq, _, digest = value.partition(":")
        if seq.isdigit():
            return {"seq": int(seq), "hash": digest}
    return None


def hooks_of(graph: Any) -> ApprovalHooks | None:
    """The ``ApprovalHooks`` a compiled graph carries (None: it uses no approvals)."""
    for hook in getattr(graph, "hooks", None) or ():
        if isinstance(hook, ApprovalHooks):
            return hook
    return None


async def acheck_resume(graph: Any, resume: Any, config: Any) -> list[dict[str, Any]]:
    """Check ``Command(resume=resume)`` on ``config``'s thread exactly as the graph's
    approval hooks will when the run starts, without running or writing anything.

    Returns the audit records the answer would add (what each decision does: settled,
    or still pending with the approvals counted); raises the ``ApprovalError`` the run
    would raise (a refused answer: wrong role, deadline passed, not pending, ...). For
    a UI that must refuse an answer before queueing a run for it; the run checks again.
    """
    from threadloom.types import Command

    hooks = hooks_of(graph)
    if hooks is None:
        raise ApprovalHooksMissingError(
            "This graph carries no approval hooks, so its answers are not checked."
        )
    start = _start(hooks, graph, Command(resume=resume), config)
    if start.done:
        return []
    snapshot = await graph.aget_state(start.config, subgraphs=True)
    try:
        return _plan(hooks, graph, snapshot, start).records
    except _NotPending as missing:
        records = await start.saver.alist_audit(start.thread_id) if start.audit else []
        raise missing.error(records) from None


def _thread_id(config: Mapping[str, Any]) -> str:
    return str((config.get("configurable") or {})["thread_id"])


@dataclass
class _Start:
    input: Any
    config: Any
    done: bool
    run: ApprovalRun | None = None
    saver: Any = None
    thread_id: str = ""
    audit: bool = False


def _start(hooks: ApprovalHooks, graph: Any, input: Any, config: Any) -> _Start:
    """Refuse a clock in the config, add the run context; say whether state must be read."""
    from threadloom._context import current_task
    from threadloom.types import Command

    if config is None:
        if current_task.get() is not None:
            return _Start(input, config, done=True)  # a subgraph run inside a node
        config = {}
    conf = config.get("configurable") or {}
    if conf.get(CONFIG_KEY_TASK) is not None:
        return _Start(input, config, done=True)  # nested: the root run checked everything
    if NOW_KEY in conf:
        raise ClockOverrideError(
            f"config['configurable'][{NOW_KEY!r}] is refused: the approval clock belongs to "
            "the deployment, not to a request. Set it where the graph is built: "
            "ApprovalHooks(clock=...) (compile(hooks=[...]) or ApprovalPolicy(hooks=...))."
        )
    run = ApprovalRun(hooks, graph_identity(graph))
    config = {**config, "configurable": {**conf, RUN_KEY: run}}
    saver, _ = graph._saver_for(config)
    thread_id = conf.get("thread_id")
    resuming = input is None or isinstance(input, Command)
    if saver is None or thread_id is None or not resuming:
        return _Start(input, config, done=True)
    return _Start(input, config, done=False, run=run, saver=saver, thread_id=str(thread_id),
                  audit=supports_audit(saver))


class _Plan:
    """What a run's input turns into: the (stamped) input and the records to append."""

    def __init__(self, input: Any, records: list[dict[str, Any]]) -> None:
        self.input = input
        self.records = records


def _plan(hooks: ApprovalHooks, graph: Any, snapshot: Any, start: _Start) -> _Plan:
    from threadloom.engine.task import is_resume_map
    from threadloom.types import Command

    input, config, run = start.input, start.config, start.run
    assert run is not None
    pending = list(snapshot.interrupts)
    for intr in pending:  # a re-run asks with the times the requests were first asked
        for request in requests_in(intr.value) or ():
            if request.asked_at:
                run.asked[(request.checkpoint_id, request.id)] = request.asked_at
    checkpoint_id = (snapshot.config.get("configurable") or {}).get("checkpoint_id")
    records: list[dict[str, Any]] = []
    sweep = _SWEEP.get()
    if isinstance(input, Command) and input.update is not None:
        hooks.check_answer(input.update, "Command(update=...)")
        records.append(
            command_update_record(
                values=input.update,
                before=snapshot.values,
                checkpoint_id=checkpoint_id,
                who=hooks.reviewer_of(config),
                at=to_iso(hooks.now()),
            )
        )
    if not isinstance(input, Command) or input.resume is None:
        return _Plan(input, hooks.bounded(records))
    resume = input.resume
    hooks.check_answer(resume)
    now = sweep.now if sweep is not None else hooks.now()
    reviewer = _deadline_reviewer() if sweep is not None else hooks.reviewer_of(config)
    at = to_iso(now)
    if not pending:
        raise _NotPending(resume, [], None)
    resume = unwrap_decisions(resume)
    by_id = {i.id: i for i in pending}
    if is_resume_map(resume):
        unknown = [k for k in resume if k not in by_id]
        if unknown:
            raise _NotPending(resume, [i.id for i in pending], unknown)
        answers = dict(resume)
    elif len(pending) == 1:
        answers = {pending[0].id: resume}
    else:
        split = _distribute(pending, resume)
        if split is None:
            if any(requests_in(i.value) is not None for i in pending):
                raise InvalidResponseError(
                    f"{len(pending)} interrupts are pending {[i.id for i in pending]}: "
                    "answer with a dict keyed by interrupt id (or by request id), or a list "
                    "in the order get_state().interrupts lists the requests."
                )
            # plain interrupts: the engine says what's wrong
            return _Plan(input, hooks.bounded(records))
        answers = split
    out: dict[str, Any] = {}
    for iid, value in answers.items():
        intr = by_id[iid]
        requests = requests_in(intr.value)
        if requests is None:
            out[iid] = value
            records.append(
                resume_record(
                    checkpoint_id=checkpoint_id, interrupt_id=iid, value=value,
                    who=reviewer, at=at,
                )
            )
            continue
        node = _node_for(graph, snapshot, iid)
        stamped, recs = _check_batch(
            requests, value, reviewer=reviewer, now=now, at=at, node=node,
            checkpoint_id=checkpoint_id, interrupt_id=iid, sweep=sweep is not None,
        )
        out[iid] = stamped
        records += recs
    # Keyed by interrupt id, so no answer can reach an interrupt it was not checked for.
    return _Plan(dataclasses.replace(input, resume=out), hooks.bounded(records))


def _deadline_reviewer() -> Reviewer:
    from threadloom.hitl.deadlines import DEADLINE_REVIEWER

    return Reviewer.of(DEADLINE_REVIEWER)  # type: ignore[return-value]


def _check_batch(
    requests: list[ApprovalRequest],
    value: Any,
    *,
    reviewer: Reviewer | None,
    now: datetime,
    at: str,
    node: Any,
    checkpoint_id: str | None,
    interrupt_id: str,
    sweep: bool,
) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]]]:
    stamped: list[dict[str, Any] | None] = []
    records: list[dict[str, Any]] = []
    for request, given in zip(requests, match_responses(requests, value), strict=True):
        if given is None:
            stamped.append(None)
            continue
        if given.via_deadline != sweep:
            raise InvalidResponseError(
                f"Request {request.id!r} ({request.action}): "
                + (
                    "a deadline's decision is applied only by the sweep (threadloom sweep / "
                    "threadloom.hitl.sweep), never sent in an answer."
                    if given.via_deadline
                    else "the sweep only applies deadline decisions."
                ),
                request_id=request.id,
            )
        answer = given.stamped(reviewer=reviewer, at=at, digest=request.digest)
        answer = validate_response(
            request, answer, now=now, validate_args=_validator(node, request)
        )
        if (
            not sweep
            and request.require_digest
            and given.type in _APPROVING
            and given.digest is None
        ):
            raise DigestRequiredError(
                f"An {given.type!r} answer to request {request.id!r} ({request.action}) must "
                f"echo the request's digest, so it approves exactly what the reviewer saw: "
                f"{{'type': {given.type!r}, 'digest': {request.digest!r}, ...}} (the digest "
                "is in the pending request: get_state(config).interrupts). A policy may "
                "allow digest-less answers with require_digest=False.",
                request_id=request.id,
            )
        answer = dataclasses.replace(answer, digest=request.digest)
        records.append(
            decision_record(
                checkpoint_id=checkpoint_id,
                interrupt_id=interrupt_id,
                request=request,
                answer=answer,
                result=advance(request, answer),
            )
        )
        stamped.append(answer.to_dict())
    return stamped, records


def _distribute(pending: list[Any], resume: Any) -> dict[str, Any] | None:
    """Split one answer over several pending approval interrupts, or None if it can't be."""
    groups = [(i.id, requests_in(i.value)) for i in pending]
    if any(requests is None for _, requests in groups):
        return None
    out: dict[str, Any] = {}
    if isinstance(resume, Mapping) and resume and "type" not in resume:
        owner = {r.id: iid for iid, requests in groups for r in requests or ()}
        if any(k not in owner for k in resume):
            return None
        for key, answer in resume.items():
            out.setdefault(owner[key], {})[key] = answer
        return out
    if isinstance(resume, (list, tuple)):
        if len(resume) > sum(len(requests or ()) for _, requests in groups):
            return None
        pos = 0
        for iid, requests in groups:  # a shorter list answers the first requests
            chunk = list(resume[pos : pos + len(requests or ())])
            pos += len(chunk)
            if any(c is not None for c in chunk):
                out[iid] = chunk
        return out or None
    return None


def _node_for(graph: Any, snapshot: Any, iid: str) -> Any:
    """The node object that raised interrupt ``iid`` (descending into subgraphs)."""
    from threadloom.types import StateSnapshot

    for task in snapshot.tasks:
        if not any(i.id == iid for i in task.interrupts):
            continue
        spec = graph.builder.nodes.get(task.name)
        node = getattr(spec, "runnable", None)
        if isinstance(task.state, StateSnapshot) and getattr(node, "_threadloom_graph", False):
            deeper = _node_for(node, task.state, iid)
            if deeper is not None:
                return deeper
        return node
    return None


def _validator(node: Any, request: ApprovalRequest) -> ArgsValidator | None:
    """Check edits with the tool's own schema when the node is a ToolNode holding the
    action, else with the JSON schema the request carries."""
    from threadloom.hitl.tool_gate import tool_args_validator

    tools = getattr(node, "tools_by_name", None)
    if isinstance(tools, Mapping) and request.action in tools:
        return tool_args_validator(tools, request_id=request.id)
    if request.args_schema:
        return schema_validator(request.args_schema, request_id=request.id)
    return None


def check_depth(value: Any, limit: int = MAX_ANSWER_DEPTH) -> None:
    """Refuse an answer nested deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = item
        else:
            continue
        if depth > limit:
            raise InvalidResponseError(
                f"The answer is nested more than {limit} levels deep; an answer (and an "
                "edit's arguments) must be plain data of reasonable depth."
            )
        stack.extend((child, depth + 1) for child in children)


class _NotPending(Exception):
    """An answer for something that is not pending; becomes a typed error once the
    audit log has said whether a deadline decided it."""

    def __init__(self, answer: Any, pending: list[str], unknown: list[str] | None) -> None:
        super().__init__("not pending")
        self.answer = answer
        self.pending = pending
        self.unknown = unknown

    def _targets(self) -> tuple[set[str], set[str]]:
        """(request ids, digests) the answer names."""
        ids: set[str] = set()
        digests: set[str] = set()

        def look(value: Any, key_is_id: bool) -> None:
            if isinstance(value, Mapping):
                if isinstance(value.get("digest"), str):
                    digests.add(value["digest"])
                if "type" not in value:
                    for k, v in value.items():
                        if key_is_id and isinstance(k, str):
                            ids.add(k)
                        look(v, False)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    look(v, False)

        look(unwrap_decisions(self.answer) if isinstance(self.answer, Mapping) else self.answer,
             True)
        return ids, digests

    def error(self, records: list[dict[str, Any]]) -> ApprovalError:
        ids, digests = self._targets()
        decisions = [r for r in records if r.get("event") == "decision"]
        chosen = None
        for record in reversed(decisions):
            if not str(record.get("status", "")).startswith("decided:") and record.get(
                "decision"
            ) != "escalate":
                continue
            named = record.get("request_id") in ids or record.get("digest") in digests
            if named or (not ids and not digests and record is decisions[-1]):
                chosen = record
                break
        if chosen is not None and chosen.get("via_deadline"):
            who = (chosen.get("who") or {}).get("id")
            rid = chosen.get("request_id")
            return DeadlinePassedError(
                f"Request {rid!r} ({chosen.get('action')}) was already decided by its "
                f"deadline: {chosen.get('decision')!r}, applied by {who} at "
                f"{chosen.get('at')}. This late answer was not applied; read the thread "
                "with get_state for what is pending now.",
                request_id=rid,
                decision=chosen.get("decision"),
                decided_by=who,
                decided_at=chosen.get("at"),
            )
        if self.unknown:
            return NoPendingRequestError(
                f"The answer names interrupts {self.unknown} that are not pending (already "
                f"answered, or never asked); pending now: {self.pending}. Read the thread "
                "with get_state and answer what is pending.",
                pending=self.pending,
            )
        return NoPendingRequestError(
            "Nothing is waiting for an answer on this thread, so this resume was refused "
            "(an answer is only taken for a request pending when it arrives). Read the "
            "thread with get_state; to continue a run paused before a node, invoke(None, "
            "config).",
            pending=[],
        )


def _refusal(
    hooks: ApprovalHooks, exc: ApprovalError, snapshot: Any, start: _Start
) -> dict[str, Any]:
    sweep = _SWEEP.get()
    try:
        who = _deadline_reviewer() if sweep is not None else hooks.reviewer_of(start.config)
    except (TypeError, ValueError):
        who = None
    record = refused_record(
        exc,
        stage="arrival",
        checkpoint_id=(snapshot.config.get("configurable") or {}).get("checkpoint_id"),
        who=who,
        at=to_iso(sweep.now if sweep is not None else hooks.now()),
    )
    return bounded_record(record, hooks.max_record_bytes)


def _updates(
    hooks: ApprovalHooks, config: Any, updates: Any, before: Any, new: Any
) -> list[dict[str, Any]]:
    who = hooks.reviewer_of(config)
    at = to_iso(hooks.now())
    return hooks.bounded([
        update_record(
            as_node=as_node,
            values=values,
            before=before.values,
            checkpoint_id=(before.config.get("configurable") or {}).get("checkpoint_id"),
            new_checkpoint_id=((new or {}).get("configurable") or {}).get("checkpoint_id"),
            who=who,
            at=at,
        )
        for values, as_node in updates
    ])
