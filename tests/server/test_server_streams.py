"""Joining a thread's stream, and stream modes combined with ``events``, through the SDK."""

from __future__ import annotations

import asyncio

import pytest
from langgraph_sdk.errors import NotFoundError

HELLO = {"messages": [{"role": "user", "content": "hi"}]}


def _followers(served) -> int:
    """The joined thread streams the server serves, from ``/metrics``."""
    import httpx

    text = httpx.get(f"{served.url}/metrics", headers={"x-api-key": "key-alice"}).text
    [line] = [x for x in text.splitlines()
              if x.startswith("threadloom_thread_stream_followers ")]
    return int(line.split()[-1])


async def test_join_stream_follows_every_run_of_the_thread(client, served) -> None:
    thread = await client.threads.create(graph_id="email")
    tid = thread["thread_id"]
    seen: list[tuple[str, object]] = []
    before = await asyncio.to_thread(_followers, served)

    async def follow() -> None:
        stream = await client.threads.join_stream(tid)
        async for part in stream:
            seen.append((part.event, part.data))

    follower = asyncio.create_task(follow())
    for _ in range(300):  # the SDK sends the request when iteration starts
        if await asyncio.to_thread(_followers, served) > before:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the joined stream never reached the server")
    await client.runs.wait(tid, "email", input=HELLO)  # pauses before "send"
    second = await client.runs.create(tid, "email", input=None, stream_mode="updates")
    await client.runs.join(tid, second["run_id"])
    for _ in range(200):  # the follower reads the second run's last update
        if any(e == "updates" and "send" in d for e, d in seen):  # type: ignore[operator]
            break
        await asyncio.sleep(0.05)
    await client.threads.delete(tid)  # the thread is gone: its stream ends
    await asyncio.wait_for(follower, 10)

    runs = [data["run_id"] for event, data in seen if event == "metadata"]
    assert len(runs) == 2 and runs[1] == second["run_id"]
    events = [event for event, _ in seen]
    first_run = events[:events.index("metadata", 1)]
    assert "values" in first_run  # each run's own modes: the first streamed values
    assert any(e == "updates" and "send" in d for e, d in seen)  # the second, updates


async def test_join_stream_of_a_missing_thread_is_404(client) -> None:
    with pytest.raises(NotFoundError):
        stream = await client.threads.join_stream("00000000-0000-4000-8000-000000000000")
        async for _ in stream:
            pass


async def test_events_together_with_other_modes(client) -> None:
    thread = await client.threads.create()
    parts = [
        part async for part in client.runs.stream(
            thread["thread_id"], "email", input=HELLO, stream_mode=["events", "values"],
        )
    ]
    names = [p.event for p in parts]
    assert names[0] == "metadata"
    assert "events" in names and "values" in names
    kinds = {p.data["event"] for p in parts if p.event == "events"}
    assert {"on_chain_start", "on_chain_end"} <= kinds
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["messages"][-1]["content"].startswith("Draft")


async def _gone(client, thread_id: str, within: float) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        try:
            await client.threads.get(thread_id)
        except NotFoundError:
            return True
        await asyncio.sleep(0.2)
    return False


async def test_thread_ttl_deletes_the_thread_when_it_passes(client) -> None:
    short = await client.threads.create(ttl=0.02, graph_id="email")  # 1.2 s
    await client.runs.wait(short["thread_id"], "email", input=HELLO)
    kept = await client.threads.create()
    later = await client.threads.create()
    await client.threads.update(later["thread_id"], metadata={"a": 1},
                                ttl={"ttl": 0.03, "strategy": "delete"})
    assert await _gone(client, short["thread_id"], within=15)
    assert await _gone(client, later["thread_id"], within=15)
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]
    with pytest.raises(NotFoundError):  # its checkpoints went too
        await client.threads.get_state(short["thread_id"])


async def test_a_bad_thread_ttl_is_422(client) -> None:
    from langgraph_sdk.errors import UnprocessableEntityError

    with pytest.raises(UnprocessableEntityError, match="ttl"):
        await client.threads.create(ttl=-1)
    with pytest.raises(UnprocessableEntityError, match="strategy"):
        await client.threads.create(ttl={"ttl": 5, "strategy": "archive"})


def test_metrics_count_threads_and_runs(served) -> None:
    import httpx

    headers = {"x-api-key": "key-alice"}
    with httpx.Client(base_url=served.url, headers=headers, timeout=30) as http:
        def idle() -> int:
            lines = http.get("/metrics").text.splitlines()
            [line] = [x for x in lines if x.startswith('threadloom_threads{status="idle"}')]
            return int(line.split()[-1])

        before = idle()
        http.post("/threads", json={}).raise_for_status()
        answer = http.get("/metrics")
        assert answer.headers["content-type"].startswith("text/plain")
        assert 'threadloom_runs{status="pending"}' in answer.text
        assert idle() == before + 1
        assert httpx.get(f"{served.url}/metrics").status_code == 401
