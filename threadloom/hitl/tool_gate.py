"""Tool approval for ``ToolNode(approval=policy)`` and ``create_react_agent(approval=...)``.

Before any tool of a model turn runs, the policy picks the calls that need a person;
those become one request each, asked together in one interrupt. Nothing runs until all
of them are decided (no side effect is repeated when the node re-runs on resume). Then:

* accepted calls run as proposed, edited ones with the reviewer's arguments (and the
  model's ``AIMessage`` is updated to show what actually ran);
* every other call is answered with a ``ToolMessage`` the model reads - a rejection
  (``status="error"``, with the reason), the reviewer's response text, or "ignored" -
  so the conversation never holds a tool call without its answer;
* calls the policy lets through run as usual.

At execution each approved call is checked against its approval: if the thread's
tool call no longer matches what was approved, ``ApprovalMismatchError`` is raised,
nothing runs, and the refusal is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage

from threadloom.constants import CONFIG_KEY_CHECKPOINTER
from threadloom.hitl.approve import asking_context, build_request, collect_decisions
from threadloom.hitl.audit import refused_record, supports_audit
from threadloom.hitl.clock import to_iso
from threadloom.hitl.decision import Decision
from threadloom.hitl.errors import ApprovalError, ApprovalMismatchError
from threadloom.hitl.policy import ApprovalPolicy
from threadloom.hitl.validation import ArgsValidator, validate_args_against

__all__ = ["GateResult", "ToolApprovalGate", "tool_args_validator"]

REJECTED = "The reviewer rejected this call to {name}; it was not run. Reason: {reason}"
IGNORED = "The reviewer chose to ignore this call to {name}; it was not run."


def tool_args_validator(
    tools: Mapping[str, Any], *, request_id: str | None = None
) -> ArgsValidator:
    """Check edited arguments against the tool's schema (the arguments the model gives:
    ``tool_call_schema``, i.e. ``args_schema`` without injected arguments)."""

    def check(action: str, args: dict[str, Any]) -> dict[str, Any]:
        tool = tools.get(action)
        if tool is None:
            return args
        schema = getattr(tool, "tool_call_schema", None) or getattr(tool, "args_schema", None)
        return validate_args_against(schema, action, args, request_id=request_id)

    return check


@dataclass
class GateResult:
    """The calls to run (approved arguments) and, in call order, what answers the others."""

    plan: list[Any]  # per call: a ToolCall to run, or the ToolMessage answering it
    ai_update: AIMessage | None

    @property
    def to_run(self) -> list[dict[str, Any]]:
        return [p for p in self.plan if not isinstance(p, ToolMessage)]

    def merge(self, outputs: Sequence[Any]) -> list[Any]:
        """Outputs of ``to_run`` put back among the answered calls, in call order."""
        produced = iter(outputs)
        merged = [p if isinstance(p, ToolMessage) else next(produced) for p in self.plan]
        return ([self.ai_update] if self.ai_update is not None else []) + merged


class ToolApprovalGate:
    """Applies an ``ApprovalPolicy`` to the tool calls of one model turn."""

    def __init__(self, policy: ApprovalPolicy, tools_by_name: Mapping[str, Any]) -> None:
        if not isinstance(policy, ApprovalPolicy):
            raise TypeError(
                "approval= takes an ApprovalPolicy, e.g. ApprovalPolicy({'read_file': "
                f"'never'}}, default='always'); got {type(policy).__name__}."
            )
        self.policy = policy
        self.tools_by_name = tools_by_name

    def _needs(self, call: Mapping[str, Any]) -> bool:
        # A call to an unknown tool is answered with an error by ToolNode; nothing to ask.
        return call["name"] in self.tools_by_name and self.policy.needs_approval(
            call["name"], call.get("args") or {}
        )

    def _requests(self, calls: Sequence[Mapping[str, Any]]) -> list[Any]:
        checkpoint_id, run = asking_context()
        requests = []
        for index, call in enumerate(calls):
            name, args = call["name"], dict(call.get("args") or {})
            rule = self.policy.rule_for(name)
            tool = self.tools_by_name[name]
            requests.append(
                build_request(
                    name,
                    args,
                    id=call.get("id") or f"{name}:{index}",
                    checkpoint_id=checkpoint_id,
                    run=run,
                    description=rule.describe(name, args) or _describe(tool, name, args),
                    allow=rule.allow,
                    reviewers=rule.reviewers,
                    deadline=rule.deadline,
                    args_schema=getattr(tool, "tool_call_schema", None),
                    require_digest=rule.require_digest is not False,
                )
            )
        return requests

    def review(
        self, calls: Sequence[Mapping[str, Any]], messages: Any = None
    ) -> GateResult | None:
        """Pause for the calls that need approval; None when no call does.

        ``messages`` (the node's message list, when it has one) lets edited calls be
        shown in the model's ``AIMessage``.
        """
        needing = [(i, c) for i, c in enumerate(calls) if self._needs(c)]
        if not needing:
            return None
        requests = self._requests([c for _, c in needing])
        validator = tool_args_validator(self.tools_by_name)
        decisions = collect_decisions(requests, validate_args=validator)
        by_index = {i: d for (i, _), d in zip(needing, decisions, strict=True)}
        plan: list[Any] = []
        edited: dict[str | None, dict[str, Any]] = {}  # by call id (None: a call without)
        for index, call in enumerate(calls):
            decision = by_index.get(index)
            if decision is None:
                plan.append(call)
            elif decision.approved:
                decision.verify(call["name"], decision.args)
                plan.append({**call, "args": dict(decision.args)})
                if decision.outcome == "edit":
                    edited[call.get("id")] = dict(decision.args)
            else:
                plan.append(_answer(call, decision))
        return GateResult(plan=plan, ai_update=_edited_message(messages, edited))

    def checked_review(self, calls: Sequence[Mapping[str, Any]], messages: Any = None) -> Any:
        """``review``, writing a refusal at execution to the audit log before raising."""
        try:
            return self.review(calls, messages)
        except ApprovalMismatchError as exc:
            saver, thread_id, record = _refusal(exc)
            if saver is not None:
                saver.put_audit(thread_id, [record])
            raise

    async def acheck_review(self, calls: Sequence[Mapping[str, Any]], messages: Any = None) -> Any:
        try:
            return self.review(calls, messages)
        except ApprovalMismatchError as exc:
            saver, thread_id, record = _refusal(exc)
            if saver is not None:
                await saver.aput_audit(thread_id, [record])
            raise


def _describe(tool: Any, name: str, args: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
    about = (getattr(tool, "description", "") or "").strip().splitlines()
    return f"The agent wants to call `{name}({shown})`." + (f" {about[0]}" if about else "")


def _answer(call: Mapping[str, Any], decision: Decision) -> ToolMessage:
    name, call_id = call["name"], call.get("id")
    if decision.outcome == "reject":
        reason = decision.message or "none given"
        return ToolMessage(
            content=REJECTED.format(name=name, reason=reason),
            name=name, tool_call_id=call_id, status="error",
        )
    if decision.outcome == "response":
        return ToolMessage(content=decision.message or "", name=name, tool_call_id=call_id)
    return ToolMessage(
        content=IGNORED.format(name=name), name=name, tool_call_id=call_id, status="error"
    )


def _edited_message(
    messages: Any, edited: dict[str | None, dict[str, Any]]
) -> AIMessage | None:
    if not edited or not isinstance(messages, (list, tuple)):
        return None
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            if message.id is None:
                return None  # cannot replace a message without an id
            calls = [
                {**c, "args": edited[c.get("id")]} if c.get("id") in edited else c
                for c in message.tool_calls
            ]
            return message.model_copy(update={"tool_calls": calls})
    return None


def _refusal(exc: ApprovalError) -> tuple[Any, str | None, dict[str, Any]]:
    from threadloom.config import get_config

    config = get_config()
    conf = config.get("configurable") or {}
    saver = conf.get(CONFIG_KEY_CHECKPOINTER)
    checkpoint_id, run = asking_context()
    try:
        who = run.hooks.reviewer_of(config)
    except (TypeError, ValueError):
        who = None
    record = run.hooks.bounded([
        refused_record(
            exc, stage="execution", checkpoint_id=checkpoint_id, who=who,
            at=to_iso(run.hooks.now()),
        )
    ])[0]
    thread_id = conf.get("thread_id")
    if not supports_audit(saver) or thread_id is None:
        return None, None, record
    return saver, str(thread_id), record
