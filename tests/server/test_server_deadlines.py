"""The workers apply the passed deadlines of pending approvals (threadloom.hitl), on
SQLite and on PostgreSQL, where one worker process at a time does it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from langgraph_sdk.errors import ConflictError


def _approval_hooks(served: Any, graph_id: str) -> Any:
    from threadloom.hitl.approval_hooks import hooks_of

    return hooks_of(served.server.ctx.graphs.get(graph_id))


async def test_a_passed_deadline_is_applied_by_a_worker_run(served, client) -> None:
    """The worker's approval feed answers a request whose deadline passed (the graph's
    approval clock moved two hours on) with the deadline's decision, through a run."""
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "deadline_payment", input={"amount": 90})
    [pending] = out["__interrupt__"]
    hooks = _approval_hooks(served, "deadline_payment")
    later = datetime.now(UTC) + timedelta(hours=2)
    hooks.clock = lambda: later
    try:
        while len(runs := await client.runs.list(tid)) < 2:  # the feed looks every second
            await asyncio.sleep(0.05)
        await client.runs.join(tid, runs[0]["run_id"])
    finally:
        hooks.clock = None
    assert (await client.runs.get(tid, runs[0]["run_id"]))["status"] == "success"
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["values"]["outcome"] == "refused"
    log = served.server.ctx.storage.checkpointer.list_audit(tid)
    [decision] = [r for r in log if r.get("event") == "decision"]
    assert decision["who"]["id"] == "threadloom:deadline"
    assert decision["decision"] == "reject" and decision["via_deadline"]
    assert decision["interrupt_id"] == pending["id"]
    # a person answering too late is told what the deadline decided
    with pytest.raises(ConflictError) as late:
        await client.runs.create(tid, "deadline_payment", command={"resume": {"type": "accept"}})
    assert late.value.response.json()["decision"]["who"]["id"] == "threadloom:deadline"


def test_one_process_at_a_time_leads_a_duty(module_postgres_database: str) -> None:
    """PostgreSQL: crons and deadlines are one process's duty; when it goes, the next
    process asking takes it over."""
    from threadloom.server.storage.postgres import PostgresStorage

    async def go() -> None:
        first, second = (PostgresStorage(module_postgres_database) for _ in range(2))
        await first.setup()
        await second.setup()
        try:
            assert await first.lead("deadlines") and await first.lead("deadlines")
            assert not await second.lead("deadlines")
            assert await second.lead("crons")
            assert not await first.lead("crons")
        finally:
            await first.close()
        try:
            # the first is gone (its server session ends a moment after its disconnect)
            for _ in range(600):
                if await second.lead("deadlines"):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the duty was never taken over")
        finally:
            await second.close()

    asyncio.run(go())


def test_a_process_whose_duty_session_was_dropped_no_longer_leads(
    module_postgres_database: str,
) -> None:
    """The database drops the leading process's session (a restart, a terminated
    backend) and its duty lock with it; another process takes the duty. The first then
    no longer leads - two processes firing every cron twice - and leads again once the
    other is gone."""
    import psycopg

    from threadloom.server.storage.postgres import PostgresStorage

    async def go() -> None:
        first, second = (PostgresStorage(module_postgres_database) for _ in range(2))
        await first.setup()
        await second.setup()
        try:
            assert await first.lead("crons")
            with psycopg.connect(module_postgres_database, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                    "'advisory' AND classid = %s AND granted", (0x746C6475,))
            for _ in range(600):
                if await second.lead("crons"):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the dropped session's duty was never taken")
            assert not await first.lead("crons")
        finally:
            await second.close()
        for _ in range(600):
            if await first.lead("crons"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the duty never came back")
        await first.close()

    asyncio.run(go())
