"""The audit log is stored durably by every saver: memory, SQLite and PostgreSQL (sync and
async), in its own versioned migration, append-only and hash-chained; decisions made on
one connection are read on another; ``threadloom audit`` exports and verifies it."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.cli import main as cli_main
from threadloom.hitl import ApprovalPolicy, echo_digests, verify_chain
from threadloom.prebuilt import ScriptedChatModel, create_react_agent
from threadloom.types import Command

PG_URL = os.environ.get(
    "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_pg: dict[str, str | None] = {}


def _pg_unavailable() -> str | None:
    if "reason" not in _pg:
        try:
            import psycopg

            with psycopg.connect(PG_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg["reason"] = None
        except Exception as exc:
            _pg["reason"] = f"Postgres at {PG_URL} unreachable: {exc}"
    return _pg["reason"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = _pg_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    import psycopg

    schema = f"tl_hitl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-c search_path={schema}')}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def sync_saver(kind: str, where: str) -> Iterator[Any]:
    if kind == "sqlite":
        from threadloom.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(where) as saver:
            yield saver
    else:
        from threadloom.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(where) as saver:
            saver.setup()
            yield saver


@pytest.fixture(params=["sqlite", "postgres"])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "audit.db")
    return "postgres", request.getfixturevalue("pg_url")


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    return f"Deleted {path}"


def make_agent(saver: Any) -> Any:
    def respond(messages: list[Any]) -> Any:
        if len(messages) > 1:
            return "Done."
        return {"content": "", "tool_calls": [
            {"name": "delete_file", "args": {"path": "/srv/a"}, "id": "call_a"},
            {"name": "delete_file", "args": {"path": "/srv/b"}, "id": "call_b"}]}

    return create_react_agent(ScriptedChatModel(respond=respond), [delete_file],
                              checkpointer=saver, approval=ApprovalPolicy(default="always"))


def cfg(**conf: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": "t", **conf}}


def signed(agent: Any, answer: Any) -> Any:
    """The answer as a UI sends it: approvals echo the digest of the request shown."""
    return echo_digests(agent.get_state(cfg()).interrupts, answer)


BOB = {"id": "bob", "roles": ["ops"]}


def test_decisions_survive_a_new_connection(durable: tuple[str, str]) -> None:
    kind, where = durable
    with sync_saver(kind, where) as saver:
        agent = make_agent(saver)
        agent.invoke({"messages": [HumanMessage("tidy")]}, cfg())
        agent.invoke(Command(resume=signed(agent, [
            {"type": "edit", "args": {"path": "/srv/a.bak"}},
            {"type": "reject", "args": "keep b"},
        ])), cfg(reviewer=BOB))
    with sync_saver(kind, where) as saver:
        log = make_agent(saver).get_audit_log(cfg())
    assert [(r["request_id"], r["decision"], r["who"]["id"]) for r in log] == [
        ("call_a", "edit", "bob"), ("call_b", "reject", "bob")]
    assert log[0]["args_diff"]["changed"] == {"path": {"from": "/srv/a", "to": "/srv/a.bak"}}
    verify_chain(log)


def test_appends_are_numbered_chained_and_never_fork(durable: tuple[str, str]) -> None:
    kind, where = durable
    with sync_saver(kind, where) as saver:
        first = saver.put_audit("x", [{"event": "a"}, {"event": "b"}])
        second = saver.put_audit("x", [{"event": "c", "text": "naïve ✓"}])
        assert [r["seq"] for r in first + second] == [1, 2, 3]
        assert second[0]["prev_hash"] == first[1]["hash"]
        assert saver.list_audit("x") == first + second
        assert saver.list_audit("y") == []
        with pytest.raises(TypeError):
            saver.put_audit("x", [{"event": object()}])
        assert len(saver.list_audit("x")) == 3
    # The same place cannot be taken twice: the table's key refuses a forked log.
    if kind == "sqlite":
        conn = sqlite3.connect(where)
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO threadloom_audit_log VALUES ('x', 3, '{}', 0)")
        conn.close()


def test_audit_table_is_its_own_versioned_migration(tmp_path: Path) -> None:
    from threadloom.checkpoint.sqlite import MIGRATIONS, SqliteSaver

    db = str(tmp_path / "m.db")
    with SqliteSaver.from_conn_string(db) as saver:
        saver.setup()  # idempotent
        versions = [r[0] for r in saver.conn.execute("SELECT v FROM threadloom_migrations")]
    assert versions == list(range(len(MIGRATIONS)))
    assert any("threadloom_audit_log" in stmt for stmt in MIGRATIONS[2])


def test_async_savers_store_the_log(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

    async def run(saver: Any) -> list[dict[str, Any]]:
        agent = make_agent(saver)
        await agent.ainvoke({"messages": [HumanMessage("tidy")]}, cfg())
        shown = (await agent.aget_state(cfg())).interrupts
        await agent.ainvoke(Command(resume=echo_digests(shown, {"call_a": True,
                                                                "call_b": False})),
                            cfg(reviewer=BOB))
        return await agent.aget_audit_log(cfg())

    async def with_sqlite() -> list[dict[str, Any]]:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "a.db")) as saver:
            return await run(saver)

    logs = [asyncio.run(with_sqlite())]
    if _pg_unavailable() is None:
        from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

        url = request.getfixturevalue("pg_url")

        async def with_pg() -> list[dict[str, Any]]:
            async with AsyncPostgresSaver.from_conn_string(url) as saver:
                await saver.setup()
                return await run(saver)

        logs.append(asyncio.run(with_pg()))
    for log in logs:
        assert [r["decision"] for r in log] == ["accept", "reject"]
        verify_chain(log)


def test_cli_exports_and_verifies_a_threads_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    with sync_saver("sqlite", db) as saver:
        agent = make_agent(saver)
        agent.invoke({"messages": [HumanMessage("tidy")]}, cfg())
        agent.invoke(Command(resume=signed(agent, [True, True])), cfg(reviewer=BOB))
    out = tmp_path / "log.jsonl"
    assert cli_main(["audit", "--sqlite", db, "--thread", "t", "--out", str(out),
                     "--verify"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["request_id"] for r in records] == ["call_a", "call_b"]
    assert cli_main(["audit", "--sqlite", db, "--thread", "t"]) == 0
    assert capsys.readouterr().out.count('"event": "decision"') == 2
    conn = sqlite3.connect(db)
    conn.execute("UPDATE threadloom_audit_log SET record = replace(record, 'bob', 'eve')")
    conn.commit()
    conn.close()
    assert cli_main(["audit", "--sqlite", db, "--thread", "t", "--verify"]) == 1
    assert "altered" in capsys.readouterr().err


def test_memory_saver_is_durable_for_the_process_only() -> None:
    saver = InMemorySaver()
    agent = make_agent(saver)
    agent.invoke({"messages": [HumanMessage("tidy")]}, cfg())
    agent.invoke(Command(resume=signed(agent, [True, True])), cfg(reviewer=BOB))
    assert [r["decision"] for r in saver.list_audit("t")] == ["accept", "accept"]


def test_a_database_from_before_the_audit_log_is_told_to_migrate(pg_url: str) -> None:
    import psycopg

    from threadloom.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(pg_url) as saver:
        saver.setup()
        with psycopg.connect(pg_url, autocommit=True) as conn:  # as an older release left it
            conn.execute("DROP TABLE threadloom_audit_log")
            conn.execute("DELETE FROM threadloom_migrations WHERE v = 2")
        with pytest.raises(RuntimeError, match=r"run saver\.setup\(\)"):
            saver.put_audit("t", [{"event": "x"}])
        saver.setup()
        assert [r["seq"] for r in saver.put_audit("t", [{"event": "x"}])] == [1]


# -- the chain is anchored: a log cut short or re-hashed shows ------------------------------


def _execute(kind: str, where: str, sql: str, *params: Any) -> None:
    if kind == "sqlite":
        conn = sqlite3.connect(where)
        conn.execute(sql.replace("%s", "?"), params)
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(where, autocommit=True) as conn:
            conn.execute(sql, params)


def _decide(saver: Any) -> None:
    agent = make_agent(saver)
    agent.invoke({"messages": [HumanMessage("tidy")]}, cfg())
    agent.invoke(Command(resume=signed(agent, [True, False])), cfg(reviewer=BOB))


def _verify(saver: Any, key: bytes | None = None) -> None:
    from threadloom.hitl.approval_hooks import checkpoint_anchors

    verify_chain(saver.list_audit("t"), head=saver.audit_head("t"), key=key,
                 anchors=checkpoint_anchors(saver, "t"))


def test_a_truncated_log_is_detected(durable: tuple[str, str]) -> None:
    kind, where = durable
    with sync_saver(kind, where) as saver:
        _decide(saver)
        _verify(saver)
        assert saver.audit_head("t")["seq"] == 2
    _execute(kind, where, "DELETE FROM threadloom_audit_log WHERE thread_id = %s AND seq = 2",
             "t")
    with sync_saver(kind, where) as saver:
        records = saver.list_audit("t")
        verify_chain(records)  # what is left is a valid chain on its own...
        with pytest.raises(ValueError, match="cut short"):
            verify_chain(records, head=saver.audit_head("t"))  # ...but not up to its anchor


def test_moving_the_anchor_back_still_shows_in_the_checkpoints(
    durable: tuple[str, str],
) -> None:
    kind, where = durable
    with sync_saver(kind, where) as saver:
        _decide(saver)
        first = saver.list_audit("t")[0]
    _execute(kind, where, "DELETE FROM threadloom_audit_log WHERE thread_id = %s AND seq = 2",
             "t")
    _execute(kind, where,
             "UPDATE threadloom_audit_log SET record = %s WHERE thread_id = %s AND seq = 0",
             json.dumps({"seq": 1, "hash": first["hash"]}), "t")
    with sync_saver(kind, where) as saver:
        verify_chain(saver.list_audit("t"), head=saver.audit_head("t"))
        with pytest.raises(ValueError, match="checkpoints anchor"):
            _verify(saver)


def test_a_rehashed_suffix_is_detected_and_a_keyed_chain_needs_the_key(
    durable: tuple[str, str],
) -> None:
    from threadloom.checkpoint.base import audit_record_hash

    kind, where = durable
    with sync_saver(kind, where) as saver:
        _decide(saver)
        last = saver.list_audit("t")[-1]
    forged = {**last, "who": {"id": "eve", "roles": ["ops"]}}
    forged["hash"] = audit_record_hash(forged)
    _execute(kind, where,
             "UPDATE threadloom_audit_log SET record = %s WHERE thread_id = %s AND seq = 2",
             json.dumps(forged), "t")
    with sync_saver(kind, where) as saver:
        verify_chain(saver.list_audit("t"))  # re-hashed: the chain alone cannot tell
        with pytest.raises(ValueError, match="cut short or rewritten"):
            verify_chain(saver.list_audit("t"), head=saver.audit_head("t"))
    # With an HMAC key, re-hashing the suffix and moving the anchor along does not help.
    _execute(kind, where, "DELETE FROM threadloom_audit_log WHERE thread_id = %s", "t")
    key = b"k" * 32
    with sync_saver(kind, where) as saver:
        saver.delete_thread("t")
        saver.audit_key = key
        _decide(saver)
        _verify(saver, key)
        with pytest.raises(ValueError, match="give the audit key"):
            verify_chain(saver.list_audit("t"))
        last = saver.list_audit("t")[-1]
    forged = {**last, "who": {"id": "eve", "roles": ["ops"]}}
    forged["hash"] = audit_record_hash(forged)
    _execute(kind, where,
             "UPDATE threadloom_audit_log SET record = %s WHERE thread_id = %s AND seq = 2",
             json.dumps(forged), "t")
    _execute(kind, where,
             "UPDATE threadloom_audit_log SET record = %s WHERE thread_id = %s AND seq = 0",
             json.dumps({"seq": 2, "hash": forged["hash"]}), "t")
    with sync_saver(kind, where) as saver:
        with pytest.raises(ValueError, match="not signed with the audit key"):
            verify_chain(saver.list_audit("t"), head=saver.audit_head("t"), key=key)


def test_cli_verify_fails_on_a_cut_log_a_missing_thread_or_a_mistyped_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    with sync_saver("sqlite", db) as saver:
        _decide(saver)
    assert cli_main(["audit", "--sqlite", db, "--thread", "t", "--verify"]) == 0
    _execute("sqlite", db, "DELETE FROM threadloom_audit_log WHERE thread_id = ? AND seq = 2",
             "t")
    capsys.readouterr()
    assert cli_main(["audit", "--sqlite", db, "--thread", "t", "--verify"]) == 1
    assert "cut short" in capsys.readouterr().err
    assert cli_main(["audit", "--sqlite", db, "--thread", "nope", "--verify"]) == 1
    assert "no audit log for thread 'nope'" in capsys.readouterr().err
    typo = tmp_path / "cli.bd"
    assert cli_main(["audit", "--sqlite", str(typo), "--thread", "t", "--verify"]) == 2
    assert "no such database file" in capsys.readouterr().err
    assert not typo.exists()
