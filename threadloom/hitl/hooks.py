"""Where the graph hands answers and state edits to the approval layer.

``CompiledStateGraph`` calls these at two doors:

* ``before_resume`` when ``invoke``/``stream`` get ``Command(resume=...)``: it reads the
  pending interrupts, checks every answer to an approval request against its request
  (allowed type, digest, deadline, reviewer role and quorum, edit schema) *as a whole*,
  and only if all pass stamps them (reviewer from the config, time, digest) and records
  them in the audit log. If any answer is refused, the error reaches the caller before
  anything is written: the thread is exactly as it was (the refusal itself is logged).
  Answers to ordinary ``interrupt()`` calls are recorded and passed through unchanged.
* ``before_update``/``after_update`` around ``update_state``: record who changed what,
  including tool calls whose arguments were rewritten.

A resume may also answer several pending approval interrupts at once with one list
(in the order ``get_state().interrupts`` lists them) or one dict keyed by request id;
it is split into the ``{interrupt_id: answer}`` map the engine understands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from threadloom.constants import CONFIG_KEY_TASK
from threadloom.hitl.audit import (
    decision_record,
    refused_record,
    resume_record,
    supports_audit,
    update_record,
)
from threadloom.hitl.clock import now_from_config, to_iso
from threadloom.hitl.decision import advance
from threadloom.hitl.errors import ApprovalError
from threadloom.hitl.quorum import Reviewer
from threadloom.hitl.request import ApprovalRequest, requests_in
from threadloom.hitl.response import match_responses
from threadloom.hitl.validation import ArgsValidator, schema_validator, validate_response

if TYPE_CHECKING:
    from threadloom.graph.compiled import CompiledStateGraph

__all__ = [
    "abefore_resume",
    "abefore_update",
    "aafter_update",
    "after_update",
    "before_resume",
    "before_update",
]


def _saver_for_resume(graph: CompiledStateGraph, input: Any, config: Any) -> Any:
    from threadloom.types import Command

    if not isinstance(input, Command) or input.resume is None or not config:
        return None
    conf = config.get("configurable") or {}
    if conf.get(CONFIG_KEY_TASK) is not None or conf.get("thread_id") is None:
        return None  # a subgraph run inside a node: its parent checked the answers
    saver, _ = graph._saver_for(config)
    return saver


def _thread_id(config: Mapping[str, Any]) -> str:
    return str((config.get("configurable") or {})["thread_id"])


class _Plan:
    """What a resume turns into: the (stamped) input and the records to append."""

    def __init__(self, input: Any, records: list[dict[str, Any]]) -> None:
        self.input = input
        self.records = records


def _plan_resume(
    graph: CompiledStateGraph, snapshot: Any, input: Any, config: Mapping[str, Any]
) -> _Plan:
    from threadloom.engine.task import is_resume_map

    pending = list(snapshot.interrupts)
    reviewer = Reviewer.from_config(config)
    now = now_from_config(config)
    at = to_iso(now)
    checkpoint_id = (snapshot.config.get("configurable") or {}).get("checkpoint_id")
    resume = input.resume
    if not pending:
        # Nothing is waiting: the first interrupt() reached takes the value (an approval
        # request refuses it there, since it was checked against no request).
        record = resume_record(
            checkpoint_id=checkpoint_id, interrupt_id=None, value=resume, who=reviewer, at=at
        )
        return _Plan(input, [record])
    if is_resume_map(resume):
        answers = dict(resume)
    elif len(pending) == 1:
        answers = {pending[0].id: resume}
    else:
        split = _distribute(pending, resume)
        if split is None:
            return _Plan(input, [])  # ambiguous: the engine refuses it with its own error
        answers = split
    by_id = {i.id: i for i in pending}
    records: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    touched_approvals = False
    for iid, value in answers.items():
        intr = by_id.get(iid)
        requests = requests_in(intr.value) if intr is not None else None
        if intr is None or requests is None:
            out[iid] = value
            if intr is not None:
                records.append(
                    resume_record(
                        checkpoint_id=checkpoint_id, interrupt_id=iid, value=value,
                        who=reviewer, at=at,
                    )
                )
            continue
        touched_approvals = True
        node = _node_for(graph, snapshot, iid)
        stamped, recs = _check_batch(
            requests, value, reviewer=reviewer, now=now, at=at, node=node,
            checkpoint_id=checkpoint_id, interrupt_id=iid,
        )
        out[iid] = stamped
        records += recs
    if not touched_approvals:
        return _Plan(input, records)
    return _Plan(dataclasses.replace(input, resume=out), records)


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
) -> tuple[list[dict[str, Any] | None], list[dict[str, Any]]]:
    stamped: list[dict[str, Any] | None] = []
    records: list[dict[str, Any]] = []
    for request, given in zip(requests, match_responses(requests, value), strict=True):
        if given is None:
            stamped.append(None)
            continue
        answer = given.stamped(reviewer=reviewer, at=at, digest=request.digest)
        answer = validate_response(
            request, answer, now=now, validate_args=_validator(node, request)
        )
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
        if len(resume) != sum(len(requests or ()) for _, requests in groups):
            return None
        pos = 0
        for iid, requests in groups:
            chunk = list(resume[pos : pos + len(requests or ())])
            pos += len(chunk)
            if any(c is not None for c in chunk):
                out[iid] = chunk
        return out
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


def _refusal(exc: ApprovalError, snapshot: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        who = Reviewer.from_config(config)
    except (TypeError, ValueError):
        who = None
    return refused_record(
        exc,
        stage="arrival",
        checkpoint_id=(snapshot.config.get("configurable") or {}).get("checkpoint_id"),
        who=who,
        at=to_iso(now_from_config(config)),
    )


# -- the doors --------------------------------------------------------------------------------


def before_resume(graph: CompiledStateGraph, input: Any, config: Any) -> Any:
    """Validate, stamp and record the answers in ``Command(resume=...)``; return the
    input to run with. Raises an ``ApprovalError`` (nothing written) on a bad answer."""
    saver = _saver_for_resume(graph, input, config)
    if saver is None:
        return input
    snapshot = graph.get_state(config, subgraphs=True)
    audit = supports_audit(saver)
    try:
        plan = _plan_resume(graph, snapshot, input, config)
    except ApprovalError as exc:
        if audit:
            saver.put_audit(_thread_id(config), [_refusal(exc, snapshot, config)])
        raise
    if audit and plan.records:
        saver.put_audit(_thread_id(config), plan.records)
    return plan.input


async def abefore_resume(graph: CompiledStateGraph, input: Any, config: Any) -> Any:
    """Async ``before_resume``."""
    saver = _saver_for_resume(graph, input, config)
    if saver is None:
        return input
    snapshot = await graph.aget_state(config, subgraphs=True)
    audit = supports_audit(saver)
    try:
        plan = _plan_resume(graph, snapshot, input, config)
    except ApprovalError as exc:
        if audit:
            await saver.aput_audit(_thread_id(config), [_refusal(exc, snapshot, config)])
        raise
    if audit and plan.records:
        await saver.aput_audit(_thread_id(config), plan.records)
    return plan.input


def before_update(graph: CompiledStateGraph, saver: Any, config: Any) -> Any:
    """The state ``update_state`` is about to change (None when nothing is recorded)."""
    if not supports_audit(saver):
        return None
    Reviewer.from_config(config)  # a malformed identity fails before anything is written
    return graph.get_state(config)


async def abefore_update(graph: CompiledStateGraph, saver: Any, config: Any) -> Any:
    if not supports_audit(saver):
        return None
    Reviewer.from_config(config)
    return await graph.aget_state(config)


def _updates(config: Any, updates: Any, before: Any, new: Any) -> list[dict[str, Any]]:
    who = Reviewer.from_config(config)
    at = to_iso(now_from_config(config))
    return [
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
    ]


def after_update(saver: Any, config: Any, updates: Any, before: Any, new_config: Any) -> None:
    """Record the ``(values, as_node)`` updates of one ``update_state`` superstep that
    ``before_update`` prepared."""
    if before is None:
        return
    saver.put_audit(_thread_id(config), _updates(config, updates, before, new_config))


async def aafter_update(
    saver: Any, config: Any, updates: Any, before: Any, new_config: Any
) -> None:
    if before is None:
        return
    await saver.aput_audit(_thread_id(config), _updates(config, updates, before, new_config))
