"""Audit records that go away (issue #15, item 14): answers and records have size limits,
and the log goes with its thread - ``delete_thread`` deletes it, ``prune`` keeps what the
saver's ``audit_keep_last`` says and leaves an anchor so the chain still verifies. On
every saver: memory, SQLite and PostgreSQL, sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict

import pytest
from test_hitl_savers import pg_url  # noqa: F401 (a fixture)

from threadloom.checkpoint.base import audit_prune_marker
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.cli import main as cli_main
from threadloom.graph import END, START, StateGraph
from threadloom.hitl import AnswerTooLargeError, ApprovalHooks, InvalidResponseError, verify_chain
from threadloom.hitl.approval_hooks import MAX_ANSWER_BYTES, checkpoint_anchors
from threadloom.hitl.audit import MAX_RECORD_BYTES, bounded_record
from threadloom.hitl.digest import json_digest
from threadloom.types import Command, interrupt

SAVERS = ["memory", "sqlite", "async-sqlite", "postgres", "async-postgres"]


class Notes(TypedDict, total=False):
    notes: list[Any]


def ask(state: Notes) -> dict[str, Any]:
    """Three questions in a row: each answer is one ``resume`` record."""
    return {"notes": [interrupt("first?"), interrupt("second?"), interrupt("third?")]}


def build(saver: Any, hooks: ApprovalHooks | None = None) -> Any:
    builder = StateGraph(Notes)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile(checkpointer=saver, hooks=[hooks or ApprovalHooks()])


def cfg(thread: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "reviewer": {"id": "ann", "roles": []}}}


@asynccontextmanager
async def open_saver(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    if kind == "memory":
        yield InMemorySaver()
    elif kind == "sqlite":
        from threadloom.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(str(tmp_path / "audit.db")) as saver:
            yield saver
    elif kind == "async-sqlite":
        from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "audit.db")) as saver:
            yield saver
    elif kind == "postgres":
        from threadloom.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(request.getfixturevalue("pg_url")) as saver:
            saver.setup()
            yield saver
    else:
        from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(request.getfixturevalue("pg_url")) as saver:
            await saver.setup()
            yield saver


@pytest.fixture(params=SAVERS)
async def saver(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Any]:
    async with open_saver(request.param, tmp_path, request) as opened:
        yield opened


async def answer_all(graph: Any, thread: str = "t") -> None:
    """Start the thread and answer its three questions: three records."""
    await graph.ainvoke({"notes": []}, cfg(thread))
    for text in ("one", "two", "three"):
        await graph.ainvoke(Command(resume=text), cfg(thread))


async def verify(saver: Any, thread: str = "t", key: bytes | None = None) -> None:
    """The whole check ``threadloom audit --verify`` makes: chain, head, checkpoints."""
    anchors = await asyncio.to_thread(checkpoint_anchors, saver, thread)
    verify_chain(await saver.alist_audit(thread), head=await saver.aaudit_head(thread),
                 key=key, anchors=anchors)


# -- size limits ------------------------------------------------------------------------------


def test_an_oversized_answer_is_refused_naming_the_limit_and_logged_as_a_summary() -> None:
    graph = build(InMemorySaver(), ApprovalHooks(max_answer_bytes=10_000))
    graph.invoke({"notes": []}, cfg())
    huge = {"text": "x" * 50_000}
    with pytest.raises(AnswerTooLargeError, match=r"max_answer_bytes=10000") as caught:
        graph.invoke(Command(resume=huge), cfg())
    size, digest = json_digest(huge)
    assert (caught.value.size, caught.value.limit, caught.value.digest) == (size, 10_000, digest)
    assert isinstance(caught.value, InvalidResponseError)
    assert graph.get_state(cfg()).interrupts[0].value == "first?"  # nothing ran
    [record] = graph.get_audit_log(cfg())
    assert record["event"] == "refused" and "AnswerTooLargeError" in record["error"]
    assert record["answer"] == {"bytes": size, "sha256": digest, "limit": 10_000}
    assert len(json.dumps(record)) < 2_000  # a summary, not the answer
    graph.invoke(Command(resume="small"), cfg())  # a fitting answer is taken
    assert graph.get_state(cfg()).interrupts[0].value == "second?"


def test_the_default_answer_limit_and_edits_and_command_updates() -> None:
    from langchain_core.tools import tool

    from threadloom.hitl import ApprovalPolicy, echo_digests
    from threadloom.prebuilt import ScriptedChatModel, create_react_agent

    @tool
    def write(text: str) -> str:
        """Write a text."""
        return "written"

    def respond(messages: list[Any]) -> Any:
        if len(messages) > 1:
            return "Done."
        return {"content": "", "tool_calls": [{"name": "write", "args": {"text": "hi"},
                                               "id": "call_1"}]}

    agent = create_react_agent(ScriptedChatModel(respond=respond), [write],
                               checkpointer=InMemorySaver(),
                               approval=ApprovalPolicy(default="always"))
    agent.invoke({"messages": [("user", "go")]}, cfg())
    shown = agent.get_state(cfg()).interrupts
    edit = echo_digests(shown, {"type": "edit", "args": {"text": "y" * (MAX_ANSWER_BYTES + 1)}})
    with pytest.raises(AnswerTooLargeError, match=f"max_answer_bytes={MAX_ANSWER_BYTES}"):
        agent.invoke(Command(resume=edit), cfg())
    with pytest.raises(AnswerTooLargeError, match=r"Command\(update=\.\.\.\)"):
        agent.invoke(Command(update={"messages": [("user", "z" * MAX_ANSWER_BYTES)]},
                             resume=echo_digests(shown, {"type": "accept"})), cfg())
    log = agent.get_audit_log(cfg())
    assert [r["event"] for r in log] == ["refused", "refused"]
    assert all(len(json.dumps(r)) < 2_000 for r in log)
    assert agent.get_state(cfg()).interrupts  # still pending: nothing ran
    with pytest.raises(ValueError, match="max_answer_bytes"):
        ApprovalHooks(max_answer_bytes=0)


def test_records_larger_than_the_record_limit_keep_summaries_of_their_largest_fields() -> None:
    graph = build(InMemorySaver(), ApprovalHooks(max_record_bytes=4_000))
    graph.invoke({"notes": []}, cfg())
    answer = "a" * 20_000  # within the answer limit, over the record limit
    graph.invoke(Command(resume=answer), cfg())
    [record] = graph.get_audit_log(cfg())
    assert record["event"] == "resume" and record["who"]["id"] == "ann"
    size, digest = json_digest(answer)
    assert record["value"] == {"omitted": "too large for the audit log", "bytes": size,
                               "sha256": digest, "head": "a" * 256}
    assert len(json.dumps(record)) <= 4_000
    graph.update_state(cfg(), {"notes": ["b" * 20_000]})
    update = graph.get_audit_log(cfg())[-1]
    assert update["event"] == "update_state" and update["values"]["bytes"] > 20_000
    verify_chain(graph.get_audit_log(cfg()))
    # a refusal's reason stays readable, however long the message it quotes
    refusal = {"event": "refused", "error": "InvalidResponseError: bad type " + "q" * 99_000}
    bounded = bounded_record(refusal)
    assert bounded["error"]["head"].startswith("InvalidResponseError: bad type")
    assert len(json.dumps(bounded)) <= MAX_RECORD_BYTES
    assert bounded_record({"event": "x", "value": 1}) == {"event": "x", "value": 1}


# -- retention ------------------------------------------------------------------------------


async def test_delete_thread_deletes_the_threads_audit_log(saver: Any) -> None:
    graph = build(saver)
    await answer_all(graph, "t")
    await answer_all(graph, "other")
    assert len(await saver.alist_audit("t")) == 3
    await saver.adelete_thread("t")
    assert await saver.alist_audit("t") == []
    assert await saver.aaudit_head("t") is None
    assert len(await saver.alist_audit("other")) == 3  # other threads keep theirs
    await verify(saver, "other")
    await answer_all(graph, "t")  # a thread started again starts a new log
    assert [r["seq"] for r in await saver.alist_audit("t")] == [1, 2, 3]
    await verify(saver, "t")


async def test_expire_paused_deletes_the_audit_log_of_the_threads_it_expires(saver: Any) -> None:
    graph = build(saver)
    await graph.ainvoke({"notes": []}, cfg())
    await graph.ainvoke(Command(resume="one"), cfg())
    assert await saver.aexpire_paused(timedelta(0)) == ["t"]
    assert await saver.alist_audit("t") == []


async def test_prune_keeps_the_whole_log_by_default(saver: Any) -> None:
    graph = build(saver)
    await answer_all(graph)
    before = await saver.alist_audit("t")
    assert await saver.aprune("t") > 0  # checkpoints went...
    assert await saver.alist_audit("t") == before  # ...the log stays
    await verify(saver)


async def test_prune_keeps_the_newest_records_and_an_anchor_the_chain_verifies_from(
    saver: Any,
) -> None:
    saver.audit_key = b"k" * 32
    saver.audit_keep_last = 1
    graph = build(saver)
    await answer_all(graph)
    log = await saver.alist_audit("t")
    await saver.aprune("t")
    pruned = await saver.alist_audit("t")
    assert [(r["event"], r["seq"]) for r in pruned] == [("pruned", 2), ("resume", 3)]
    assert pruned[0]["hash"] == log[1]["hash"] and pruned[1] == log[2]
    await verify(saver, key=saver.audit_key)
    await saver.aprune("t")  # again: nothing more to prune
    assert await saver.alist_audit("t") == pruned
    # the log goes on after the anchor, and is pruned again from there
    await answer_all(graph)
    assert [r["seq"] for r in await saver.alist_audit("t")] == [2, 3, 4, 5, 6]
    await verify(saver, key=saver.audit_key)
    saver.audit_keep_last = 0
    await saver.aprune("t", strategy="delete")
    assert [(r["event"], r["seq"]) for r in await saver.alist_audit("t")] == [("pruned", 6)]
    await verify(saver, key=saver.audit_key)


async def test_a_bad_retention_setting_is_refused_before_anything_is_deleted(
    saver: Any,
) -> None:
    graph = build(saver)
    await answer_all(graph)
    saver.audit_keep_last = -1
    with pytest.raises(ValueError, match="audit_keep_last must be None"):
        await saver.aprune("t")
    assert len(await saver.alist_audit("t")) == 3
    assert len([s async for s in graph.aget_state_history(cfg())]) > 1


def test_a_forged_or_misplaced_prune_anchor_is_detected() -> None:
    saver = InMemorySaver()
    saver.audit_keep_last = 1
    graph = build(saver)
    asyncio.run(answer_all(graph))
    saver.prune("t")
    marker, last = saver.list_audit("t")
    verify_chain([marker, last], head=saver.audit_head("t"))
    with pytest.raises(ValueError, match="seal mismatch"):
        verify_chain([{**marker, "seq": 1}, last])
    with pytest.raises(ValueError, match="in the middle"):
        verify_chain([marker, marker, last])
    keyed = audit_prune_marker({"thread_id": "t", "seq": 2, "hash": marker["hash"]}, b"key")
    with pytest.raises(ValueError, match="signed"):
        verify_chain([keyed, last])  # a keyed anchor needs the key...
    with pytest.raises(ValueError, match="not signed with the audit key"):
        verify_chain([marker, last], key=b"key")  # ...and a key needs keyed anchors


def test_the_cli_verifies_a_pruned_sqlite_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from threadloom.checkpoint.sqlite import SqliteSaver

    db = str(tmp_path / "cli.db")
    with SqliteSaver.from_conn_string(db) as saver:
        saver.audit_keep_last = 2
        asyncio.run(answer_all(build(saver)))
        saver.prune("t")
        assert [r["event"] for r in saver.list_audit("t")] == ["pruned", "resume", "resume"]
    assert cli_main(["audit", "--sqlite", db, "--thread", "t", "--verify"]) == 0
    assert "pruned" in capsys.readouterr().out

