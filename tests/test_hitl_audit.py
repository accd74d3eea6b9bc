"""The audit trail: every resume, decision, refusal and state update, in order, with who
and when; hash-chained; exported as JSON lines; kept by the saver."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from helpers import cfg
from langchain_core.messages import AIMessage, HumanMessage

from threadloom.checkpoint.base import BaseCheckpointSaver
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.hitl import ApprovalHooks, export_jsonl, verify_chain
from threadloom.types import Command, StateUpdate, interrupt

NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)


class State(TypedDict, total=False):
    messages: Annotated[list, add_messages]
    note: str


def ask_then_act(state: State) -> dict[str, Any]:
    return {"note": interrupt("What should I write?")}


def agent(state: State) -> dict[str, Any]:
    return {"messages": [AIMessage("", id="ai-1", tool_calls=[
        {"name": "delete_file", "args": {"path": "/tmp/old_data.csv"}, "id": "call_1"}])]}


def build(saver: Any = None) -> Any:
    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("ask", ask_then_act)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "ask")
    builder.add_edge("ask", END)
    # The graph records its resumes and updates because it carries the approval hooks
    # (with the deployment's clock); a graph without them records nothing.
    return builder.compile(checkpointer=saver or InMemorySaver(),
                           hooks=[ApprovalHooks(clock=lambda: NOW)])


ALICE = {"id": "alice", "roles": ["ops"]}


def test_resume_and_update_state_are_recorded_in_order_with_who_and_when() -> None:
    graph = build()
    graph.invoke({"messages": [HumanMessage("hi")]}, cfg())
    # The seed's "Option B": downgrade the pending call before it runs.
    graph.update_state(
        cfg(reviewer=ALICE),
        {"messages": [AIMessage("", id="ai-1", tool_calls=[
            {"name": "read_file", "args": {"path": "/tmp/old_data.csv", "lines": 10},
             "id": "call_1"}])]},
        as_node="agent",
    )
    graph.invoke(None, cfg())  # runs on to the question again
    graph.invoke(Command(resume="Write a haiku."), cfg(reviewer=ALICE))
    log = graph.get_audit_log(cfg())
    assert [r["event"] for r in log] == ["update_state", "resume"]
    assert [r["seq"] for r in log] == [1, 2]
    update, resume = log
    assert update["who"] == ALICE and update["at"] == NOW.isoformat()
    assert update["as_node"] == "agent"
    assert update["tool_call_changes"] == [{
        "tool_call_id": "call_1",
        "action": {"from": "delete_file", "to": "read_file"},
        "args_diff": {"changed": {}, "added": {"lines": 10}, "removed": {}},
    }]
    assert update["new_checkpoint_id"] != update["checkpoint_id"]
    assert resume["value"] == "Write a haiku." and resume["who"]["id"] == "alice"
    assert resume["interrupt_id"]
    verify_chain(log)


def test_the_chain_shows_altered_or_missing_records() -> None:
    graph = build()
    graph.invoke({"messages": [HumanMessage("hi")]}, cfg())
    graph.update_state(cfg(), {"note": "a"}, as_node="agent")
    graph.update_state(cfg(), {"note": "b"}, as_node="agent")
    log = graph.get_audit_log(cfg())
    verify_chain(log)
    altered = [dict(r) for r in log]
    altered[0]["values"] = {"note": "z"}
    with pytest.raises(ValueError, match="altered"):
        verify_chain(altered)
    with pytest.raises(ValueError, match="gap"):
        verify_chain(log[1:])
    # Callers get copies: editing them does not rewrite history.
    log[0]["who"] = "mallory"
    assert graph.get_audit_log(cfg())[0]["who"] is None


def test_bulk_updates_are_recorded_one_by_one() -> None:
    graph = build()
    graph.invoke({"messages": [HumanMessage("hi")]}, cfg())
    graph.bulk_update_state(cfg(reviewer=ALICE), [[StateUpdate({"note": "1"}, "agent")],
                                                  [StateUpdate({"note": "2"}, "agent")]])
    log = graph.get_audit_log(cfg())
    assert [r["values"] for r in log] == [{"note": "1"}, {"note": "2"}]


def test_export_jsonl_to_a_path_and_to_an_open_file(tmp_path: Path) -> None:
    graph = build()
    graph.invoke({"messages": [HumanMessage("hi")]}, cfg())
    graph.invoke(Command(resume="x"), cfg(reviewer=ALICE))
    log = graph.get_audit_log(cfg())
    path = tmp_path / "audit.jsonl"
    assert export_jsonl(log, path) == 1
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == log
    buffer = io.StringIO()
    export_jsonl(log + log, buffer)
    assert len(buffer.getvalue().splitlines()) == 2


class PlainSaver(BaseCheckpointSaver):
    """A saver without an audit log (delegates storage to a memory saver)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = InMemorySaver()

    def get_tuple(self, config: Any) -> Any:
        return self.inner.get_tuple(config)

    def list(self, config: Any, **kw: Any) -> Any:
        return self.inner.list(config, **kw)

    def put(self, *args: Any) -> Any:
        return self.inner.put(*args)

    def put_writes(self, *args: Any) -> Any:
        return self.inner.put_writes(*args)


def test_savers_without_an_audit_log_still_run_and_say_so() -> None:
    graph = build(PlainSaver())
    graph.invoke({"messages": [HumanMessage("hi")]}, cfg())
    graph.update_state(cfg(), {"note": "n"}, as_node="agent")
    graph.invoke(None, cfg())  # on to the question (a resume answers only what is pending)
    graph.invoke(Command(resume="x"), cfg())
    assert graph.get_state(cfg()).values["note"] == "x"
    with pytest.raises(NotImplementedError, match="does not store an audit log"):
        graph.get_audit_log(cfg())


def test_async_updates_and_reads() -> None:
    graph = build()

    async def run() -> list[dict[str, Any]]:
        await graph.ainvoke({"messages": [HumanMessage("hi")]}, cfg())
        await graph.aupdate_state(cfg(reviewer=ALICE), {"note": "n"}, as_node="agent")
        await graph.ainvoke(None, cfg())  # on to the question again
        await graph.ainvoke(Command(resume="y"), cfg(reviewer=ALICE))
        return await graph.aget_audit_log(cfg())

    log = asyncio.run(run())
    assert [r["event"] for r in log] == ["update_state", "resume"]


def test_memory_saver_audit_api() -> None:
    saver = InMemorySaver()
    stored = saver.put_audit("x", [{"event": "note", "n": 1}, {"event": "note", "n": 2}])
    assert [r["seq"] for r in stored] == [1, 2]
    assert stored[1]["prev_hash"] == stored[0]["hash"]
    assert saver.list_audit("x") == stored and saver.list_audit("y") == []
    with pytest.raises(TypeError):
        saver.put_audit("x", [{"event": object()}])
    assert len(saver.list_audit("x")) == 2  # a failed append adds nothing
