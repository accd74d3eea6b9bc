"""The workers apply the passed deadlines of pending approvals (threadloom.hitl)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from langgraph_sdk.errors import ConflictError


async def _tick(served: Any, now: datetime | None) -> list[str]:
    """One sweep, on the server's own event loop (where its storage lives)."""
    future = asyncio.run_coroutine_threadsafe(
        served.server.deadlines.tick(now), served.server.loop
    )
    return await asyncio.wrap_future(future)


async def test_a_passed_deadline_is_applied_by_a_worker_run(served, client) -> None:
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "deadline_payment", input={"amount": 90})
    [pending] = out["__interrupt__"]
    assert tid not in await _tick(served, None)  # an hour left: nothing to do
    assert (await client.threads.get(tid))["status"] == "interrupted"

    [run_id] = await _tick(served, datetime.now(UTC) + timedelta(hours=2))
    run = await client.runs.get(tid, run_id)
    assert run["metadata"]["deadlines"] is True
    await client.runs.join(tid, run_id)
    assert (await client.runs.get(tid, run_id))["status"] == "success"
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
    assert await _tick(served, datetime.now(UTC) + timedelta(hours=3)) == []  # done once


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
