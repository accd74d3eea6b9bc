"""Deadlines: stored in the checkpoint with the request, applied by ``sweep`` (and the
``threadloom sweep`` command) with a clock the test controls - including a deadline that
expires while no process is running, on SQLite, swept by a second process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import cfg
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.hitl import (
    ApprovalHooks,
    ApprovalPolicy,
    ApprovalRule,
    Deadline,
    DeadlinePassedError,
    Escalate,
    InvalidResponseError,
    ReviewerNotAllowedError,
    Reviewers,
    asweep,
    echo_digests,
    sweep,
)
from threadloom.hitl.clock import checkpoint_time, from_iso
from threadloom.prebuilt import ScriptedChatModel, create_react_agent
from threadloom.types import Command

ROOT = Path(__file__).resolve().parent.parent
RAN: list[str] = []


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    RAN.append(path)
    return f"Deleted {path}"


@tool
def read_file(path: str) -> str:
    """Read a file from the filesystem."""
    return f"Contents of {path}"


def agent(policy: ApprovalPolicy, *paths: str) -> Any:
    RAN.clear()
    def respond(messages: list[Any]) -> Any:
        if isinstance(messages[-1], ToolMessage):
            return "Finished."
        return {"content": "", "tool_calls": [
            {"name": "delete_file", "args": {"path": p}, "id": f"call_{i}"}
            for i, p in enumerate(paths, 1)]}

    model = ScriptedChatModel(respond=respond)
    return create_react_agent(model, [delete_file, read_file], checkpointer=InMemorySaver(),
                              approval=policy)


def start(graph: Any, thread: str = "t") -> list[dict[str, Any]]:
    out = graph.invoke({"messages": [HumanMessage("clean")]}, cfg(thread))
    return out["__interrupt__"][0].value


def signed(graph: Any, answer: Any, thread: str = "t") -> Any:
    """The answer as a UI sends it: approvals echo the digest of the request shown."""
    return echo_digests(graph.get_state(cfg(thread)).interrupts, answer)


class Clock:
    """The deployment's clock, as a test sets it (None: the system clock)."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)


def deadline_policy(
    on_timeout: Any = "reject", clock: Clock | None = None, **rule: Any
) -> ApprovalPolicy:
    return ApprovalPolicy(
        {"delete_file": ApprovalRule(
            deadline=Deadline(after=timedelta(hours=1), on_timeout=on_timeout), **rule)},
        hooks=ApprovalHooks(clock=clock) if clock is not None else None,
    )


def test_request_carries_its_deadline_anchored_to_its_checkpoint() -> None:
    graph = agent(deadline_policy(), "/srv/a")
    (request,) = start(graph)
    asked = checkpoint_time(request["checkpoint_id"])
    assert asked is not None and abs(asked - datetime.now(UTC)) < timedelta(minutes=1)
    assert request["asked_at"] == asked.isoformat()
    assert request["deadline"] == {"at": (asked + timedelta(hours=1)).isoformat(),
                                   "reason": None, "on_timeout": "reject", "escalate": None}
    # Re-running the node (a refused answer, then a no-op resume) keeps the same deadline.
    assert graph.get_state(cfg()).interrupts[0].value[0]["deadline"] == request["deadline"]


def test_sweep_rejects_expired_requests_and_the_agent_reads_why() -> None:
    graph = agent(deadline_policy(), "/srv/a")
    (request,) = start(graph)
    asked = from_iso(request["asked_at"])
    assert sweep(graph, now=asked + timedelta(minutes=59)) == []  # not yet
    results = sweep(graph, now=asked + timedelta(hours=2))
    assert [(r.thread_id, r.request_id, r.decision, r.ok) for r in results] == [
        ("t", "call_1", "reject", True)]
    state = graph.get_state(cfg())
    assert state.next == () and RAN == []
    (answer,) = [m for m in state.values["messages"] if isinstance(m, ToolMessage)]
    assert answer.status == "error" and "rejected automatically" in answer.content
    record = [r for r in graph.get_audit_log(cfg()) if r["event"] == "decision"][-1]
    assert record["via_deadline"] and record["who"]["id"] == "threadloom:deadline"
    assert record["status"] == "decided:reject"
    assert sweep(graph, now=asked + timedelta(hours=3)) == []  # nothing left to do


def test_deadline_may_approve() -> None:
    graph = agent(deadline_policy("accept"), "/srv/a")
    (request,) = start(graph)
    sweep(graph, now=from_iso(request["deadline"]["at"]))
    assert RAN == ["/srv/a"]


def test_late_answer_from_a_person_is_refused_before_anything_is_written() -> None:
    clock = Clock()
    graph = agent(deadline_policy(clock=clock), "/srv/a")
    (request,) = start(graph)
    late = from_iso(request["deadline"]["at"]) + timedelta(seconds=1)
    before = graph.get_state(cfg())
    clock.now = late
    with pytest.raises(DeadlinePassedError, match="threadloom sweep"):
        graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), cfg())
    assert graph.get_state(cfg()).config == before.config and RAN == []
    # ...and a deadline's own decision is never taken from an answer, before the deadline
    # or after it: only the sweep applies it.
    clock.now = late - timedelta(minutes=30)
    with pytest.raises(InvalidResponseError, match="only by the sweep"):
        graph.invoke(Command(resume=[{"type": "reject", "deadline": True}]), cfg())
    clock.now = late
    with pytest.raises(InvalidResponseError, match="only by the sweep"):
        graph.invoke(Command(resume=[{"type": "accept", "deadline": True}]), cfg())
    assert graph.get_state(cfg()).config == before.config and RAN == []


def test_escalation_hands_the_request_to_another_group_with_a_new_deadline() -> None:
    escalate = Escalate(to=Reviewers(roles=["managers"]), after=timedelta(hours=4))
    clock = Clock()
    graph = agent(deadline_policy(escalate, clock, reviewers=Reviewers(roles=["ops"])),
                  "/srv/a")
    (request,) = start(graph)
    first = from_iso(request["deadline"]["at"]) + timedelta(minutes=5)
    (result,) = sweep(graph, now=first)
    assert result.decision == "escalate" and result.ok
    (escalated,) = graph.get_state(cfg()).interrupts[0].value
    assert escalated["escalation"] == 1
    assert escalated["reviewers"]["roles"] == ["managers"]
    assert escalated["deadline"]["at"] == (first + timedelta(hours=4)).isoformat()
    assert escalated["deadline"]["on_timeout"] == "reject"
    clock.now = first
    with pytest.raises(ReviewerNotAllowedError):  # ops may no longer decide
        graph.invoke(Command(resume=signed(graph, [True])),
                     cfg(reviewer={"id": "olga", "roles": ["ops"]}))
    graph.invoke(Command(resume=signed(graph, [True])),
                 cfg(reviewer={"id": "max", "roles": ["managers"]}))
    assert RAN == ["/srv/a"]


def test_escalation_that_also_times_out_is_rejected() -> None:
    escalate = Escalate(to=Reviewers(roles=["managers"]), after=timedelta(hours=4))
    graph = agent(deadline_policy(escalate), "/srv/a")
    (request,) = start(graph)
    first = from_iso(request["deadline"]["at"])
    sweep(graph, now=first)
    assert sweep(graph, now=first + timedelta(hours=3)) == []
    (result,) = sweep(graph, now=first + timedelta(hours=4))
    assert result.decision == "reject" and RAN == []
    events = [(r["decision"], r["status"]) for r in graph.get_audit_log(cfg())
              if r["event"] == "decision"]
    assert events == [("escalate", "pending"), ("reject", "decided:reject")]


def test_only_the_due_requests_of_a_batch_are_decided() -> None:
    policy = ApprovalPolicy({
        "delete_file": ApprovalRule(
            deadline=Deadline(at=datetime(2000, 1, 1, tzinfo=UTC), on_timeout="reject")),
        "read_file": "always",  # no deadline: waits for a person
    })
    model = ScriptedChatModel([
        {"content": "", "tool_calls": [
            {"name": "delete_file", "args": {"path": "/srv/a"}, "id": "call_del"},
            {"name": "read_file", "args": {"path": "/srv/b"}, "id": "call_read"}]},
        "Finished.",
    ])
    RAN.clear()
    graph = create_react_agent(model, [delete_file, read_file], checkpointer=InMemorySaver(),
                               approval=policy)
    graph.invoke({"messages": [HumanMessage("clean")]}, cfg())
    # A person may no longer decide the expired deletion...
    with pytest.raises(DeadlinePassedError):
        graph.invoke(Command(resume={"call_del": True}), cfg())
    # ...the sweep does, and leaves the read (no deadline) waiting.
    (result,) = sweep(graph, now=datetime(2000, 1, 2, tzinfo=UTC))
    assert (result.request_id, result.decision) == ("call_del", "reject")
    (still,) = graph.get_state(cfg()).interrupts[0].value
    assert still["id"] == "call_read"
    out = graph.invoke(Command(resume=signed(graph, {"call_read": True})), cfg())
    answers = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert answers["call_del"].status == "error" and RAN == []
    assert answers["call_read"].content == "Contents of /srv/b"


def test_sweep_reports_a_failing_thread_and_goes_on() -> None:
    graph = agent(deadline_policy(), "/srv/a")
    start(graph, "bad")
    start(graph, "good")
    asked = from_iso(graph.get_state(cfg("good")).interrupts[0].value[0]["asked_at"])
    real_invoke = graph.invoke

    def flaky(input: Any, config: Any, **kw: Any) -> Any:
        if config["configurable"]["thread_id"] == "bad":
            raise RuntimeError("database went away")
        return real_invoke(input, config, **kw)

    graph.invoke = flaky  # type: ignore[method-assign]
    results = {r.thread_id: r for r in sweep(graph, now=asked + timedelta(days=1))}
    assert results["bad"].error == "RuntimeError: database went away"
    assert results["good"].ok


def test_async_sweep() -> None:
    graph = agent(deadline_policy(), "/srv/a")
    (request,) = start(graph)
    results = asyncio.run(asweep(graph, now=from_iso(request["deadline"]["at"])))
    assert [r.decision for r in results] == ["reject"]
    assert graph.get_state(cfg()).next == ()


# -- across a process restart, on SQLite ----------------------------------------------------

APP = '''
from datetime import timedelta

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from threadloom.hitl import ApprovalPolicy, ApprovalRule, Deadline
from threadloom.prebuilt import ScriptedChatModel, create_react_agent


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    raise AssertionError("the deadline rejects this call: it must never run")


def respond(messages):
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"Understood: {last.content}")
    return AIMessage(content="", tool_calls=[
        {"name": "delete_file", "args": {"path": "/srv/data"}, "id": "call_del"}])


POLICY = ApprovalPolicy({"delete_file": ApprovalRule(
    deadline=Deadline(after=timedelta(hours=1), on_timeout="reject",
                      reason="Nobody approved the deletion within an hour."))})


def make_graph(checkpointer):
    return create_react_agent(ScriptedChatModel(respond=respond), [delete_file],
                              checkpointer=checkpointer, approval=POLICY)
'''

PAUSE = '''
import sys
from langchain_core.messages import HumanMessage
from threadloom.checkpoint.sqlite import SqliteSaver
from sweep_app import make_graph

with SqliteSaver.from_conn_string(sys.argv[1]) as saver:
    graph = make_graph(saver)
    out = graph.invoke({"messages": [HumanMessage("delete /srv/data")]},
                       {"configurable": {"thread_id": "restart-1"}})
    print(out["__interrupt__"][0].value[0]["deadline"]["at"])
'''


def test_deadline_expires_across_a_process_restart_on_sqlite(tmp_path: Path) -> None:
    from threadloom.checkpoint.sqlite import SqliteSaver

    (tmp_path / "sweep_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "pause.py").write_text(textwrap.dedent(PAUSE))
    db = str(tmp_path / "threads.db")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    env.pop("OPENAI_API_KEY", None)
    paused = subprocess.run([sys.executable, "pause.py", db], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert paused.returncode == 0, paused.stderr
    deadline = from_iso(paused.stdout.strip())

    # The first process is gone. A second one sweeps before the deadline: nothing happens.
    def run_sweep(now: datetime) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "threadloom.cli", "sweep", "--sqlite", db,
             "--graph", "sweep_app:make_graph", "--now", now.isoformat()],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    early = run_sweep(deadline - timedelta(minutes=1))
    assert early.returncode == 0, early.stderr
    assert "0 expired request(s) handled." in early.stdout
    late = run_sweep(deadline + timedelta(minutes=1))
    assert late.returncode == 0, late.stderr
    assert "restart-1: delete_file (call_del) -> reject" in late.stdout

    # A third reader sees the thread finished, with the rejection the model read.
    with SqliteSaver.from_conn_string(db) as saver:
        sys.path.insert(0, str(tmp_path))
        try:
            from sweep_app import make_graph  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(tmp_path))
        graph = make_graph(saver)
        state = graph.get_state(cfg("restart-1"))
        assert state.next == ()
        messages = state.values["messages"]
        assert messages[-2].status == "error"
        assert "Nobody approved the deletion within an hour." in messages[-2].content
        assert messages[-1].content.startswith("Understood: The reviewer rejected")
        # The sweeping process recorded the deadline's decision durably.
        (decision,) = graph.get_audit_log(cfg("restart-1"))
        assert decision["event"] == "decision" and decision["via_deadline"]
        assert (decision["decision"], decision["who"]["id"]) == ("reject", "threadloom:deadline")
