"""Assistants, threads, state, store, stream modes and bad requests, through the SDK."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

SYSTEM_NS = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


async def test_system_assistants_have_the_reference_ids(client) -> None:
    found = await client.assistants.search(graph_id="email")
    [email] = [a for a in found if a["metadata"] == {"created_by": "system"}]
    assert email["assistant_id"] == str(uuid.uuid5(SYSTEM_NS, "email"))
    assert email["name"] == "email" and email["version"] == 1
    got = await client.assistants.get(email["assistant_id"])
    assert got["graph_id"] == "email"
    graph = await client.assistants.get_graph(email["assistant_id"])
    assert {n["id"] for n in graph["nodes"]} >= {"__start__", "draft", "send", "__end__"}
    schemas = await client.assistants.get_schemas(email["assistant_id"])
    assert "messages" in schemas["input_schema"]["properties"]


async def test_assistant_versions(client) -> None:
    made = await client.assistants.create("plan", config={"configurable": {"x": 1}},
                                          metadata={"team": "a"}, name="mine")
    aid = made["assistant_id"]
    assert made["context"] == {"x": 1}
    with pytest.raises(ConflictError):
        await client.assistants.create("plan", assistant_id=aid)
    same = await client.assistants.create("plan", assistant_id=aid, if_exists="do_nothing")
    assert same["assistant_id"] == aid
    updated = await client.assistants.update(aid, metadata={"b": 2})
    assert updated["version"] == 2 and updated["metadata"] == {"team": "a", "b": 2}
    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [2, 1]
    back = await client.assistants.set_latest(aid, 1)
    assert back["version"] == 1 and back["metadata"] == {"team": "a"}
    assert await client.assistants.count(metadata={"team": "a"}) >= 1
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph")
    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)


def test_thread_records(sync_client) -> None:
    tid = str(uuid.uuid4())
    made = sync_client.threads.create(thread_id=tid, metadata={"k": "v"})
    assert made["thread_id"] == tid and made["status"] == "idle" and made["values"] is None
    with pytest.raises(ConflictError):
        sync_client.threads.create(thread_id=tid)
    assert sync_client.threads.create(thread_id=tid, if_exists="do_nothing")["thread_id"] == tid
    patched = sync_client.threads.update(tid, metadata={"k2": 2})
    assert patched["metadata"] == {"k": "v", "k2": 2}
    assert [t["thread_id"] for t in sync_client.threads.search(metadata={"k2": 2})] == [tid]
    assert sync_client.threads.count(metadata={"k2": 2}) == 1
    sync_client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        sync_client.threads.get(tid)


def test_a_copy_that_fails_leaves_no_thread_behind(served, sync_client,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy whose checkpoints cannot be copied (the database failing then) answers a
    500 naming the error - not a connection reset under the client - and leaves no new
    thread (not a record saying "interrupted" over a thread with no checkpoint); the
    source is untouched, and a copy afterwards works."""
    tid = sync_client.threads.create(metadata={"copy_test": "yes"})["thread_id"]
    sync_client.runs.wait(tid, "email", input={"messages": [{"role": "user", "content": "hi"}]})
    saver = served.server.ctx.storage.checkpointer

    async def failing(source: str, target: str) -> None:
        raise RuntimeError("the database went away mid-copy")

    monkeypatch.setattr(saver, "acopy_thread", failing)
    with pytest.raises(httpx.HTTPStatusError) as failed:
        sync_client.threads.copy(tid)
    assert failed.value.response.status_code == 500
    assert "RuntimeError" in failed.value.response.json()["detail"]
    assert sync_client.threads.count(metadata={"copy_test": "yes"}) == 1
    monkeypatch.undo()
    copy = sync_client.threads.copy(tid)
    assert sync_client.threads.get_state(copy["thread_id"])["next"] == ["send"]
    assert sync_client.threads.get_state(tid)["next"] == ["send"]
    assert sync_client.threads.count(metadata={"copy_test": "yes"}) == 2


def test_state_history_fork_and_copy(sync_client) -> None:
    tid = sync_client.threads.create()["thread_id"]
    sync_client.runs.wait(tid, "email", input={"messages": [{"role": "user", "content": "hi"}]})
    history = sync_client.threads.get_history(tid, limit=20)
    assert [h["metadata"]["source"] for h in history][-1] == "input"
    assert history[0]["next"] == ["send"]
    inputs = sync_client.threads.get_history(tid, metadata={"source": "input"})
    assert len(inputs) == 1
    at = sync_client.threads.get_state(tid, checkpoint_id=history[0]["checkpoint_id"])
    assert at["values"] == history[0]["values"]
    copy = sync_client.threads.copy(tid)
    assert sync_client.threads.get_state(copy["thread_id"])["next"] == ["send"]
    # the inbox's "mark as resolved": idle, nothing next, values unchanged, no new run
    sync_client.threads.update_state(tid, None, as_node="__end__")
    state = sync_client.threads.get_state(tid)
    assert state["next"] == [] and state["values"] == history[0]["values"]
    assert sync_client.threads.get(tid)["status"] == "idle"
    assert len(sync_client.runs.list(tid)) == 1
    with pytest.raises(httpx.HTTPStatusError) as bad:
        sync_client.threads.update_state(tid, {"messages": []}, as_node="nope")
    assert bad.value.response.status_code == 400


async def test_store_routes(client) -> None:
    await client.store.put_item(["docs", "a"], "k1", {"color": "red", "n": 1})
    await client.store.put_item(["docs", "b"], "k2", {"color": "blue", "n": 2})
    item = await client.store.get_item(["docs", "a"], "k1")
    assert item["value"] == {"color": "red", "n": 1} and item["namespace"] == ["docs", "a"]
    assert await client.store.get_item(["docs", "a"], "missing") is None
    found = await client.store.search_items(["docs"], filter={"color": "blue"})
    assert [i["key"] for i in found["items"]] == ["k2"]
    spaces = await client.store.list_namespaces(prefix=["docs"])
    assert sorted(spaces["namespaces"]) == [["docs", "a"], ["docs", "b"]]
    await client.store.delete_item(["docs", "a"], "k1")
    assert await client.store.get_item(["docs", "a"], "k1") is None


async def test_stream_modes_tokens_custom_debug_and_subgraphs(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    parts = [p async for p in client.runs.stream(
        tid, "streaming", input={"messages": [{"role": "user", "content": "hi"}]},
        stream_mode=["messages-tuple", "custom", "debug", "values"], stream_subgraphs=True,
    )]
    names = [p.event for p in parts]
    assert names[0] == "metadata"
    tokens = [p.data for p in parts if p.event.startswith("messages|inner:")]
    text = "".join(chunk["content"] for chunk, meta in tokens if chunk["type"] == "AIMessageChunk")
    assert text == "Hello there, reviewer"
    assert tokens[0][1]["langgraph_node"] == "talk"
    custom = [p.data for p in parts if p.event.startswith("custom|inner:")]
    assert custom == [{"progress": "thinking"}]
    assert any(p.event == "debug" and p.data["type"] == "checkpoint" for p in parts)
    assert [p for p in parts if p.event == "values"][-1].data["messages"][-1]["content"] == (
        "Hello there, reviewer"
    )


async def test_bad_requests_are_422_with_detail(served) -> None:
    async with httpx.AsyncClient(base_url=served.url,
                                 headers={"x-api-key": "key-alice"}) as http:
        r = await http.post("/threads", json={"if_exists": "sometimes"})
        assert r.status_code == 422 and isinstance(r.json()["detail"], str)
        r = await http.get("/threads/not-a-uuid")
        assert r.status_code == 422 and "UUID" in r.json()["detail"]
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        r = await http.post(f"/threads/{tid}/runs", json={"input": {}})
        assert r.status_code == 422 and "assistant_id" in r.json()["detail"]
        r = await http.post(f"/threads/{tid}/runs",
                            json={"assistant_id": "email", "stream_mode": "nope"})
        assert r.status_code == 422
        r = await http.post(f"/threads/{tid}/runs", json={"assistant_id": "no-graph"})
        assert r.status_code == 422 and "email" in r.json()["detail"]
        r = await http.put("/store/items", json={"namespace": ["a"], "key": "k"})
        assert r.status_code == 422
        r = await http.post("/threads/search", content=b"{not json")
        assert r.status_code == 422
        r = await http.get("/ok")
        assert r.json() == {"ok": True}
        assert (await http.get("/openapi.json")).json()["paths"]["/threads"]
        assert (await http.get("/docs")).status_code == 200


async def test_missing_things_are_404(client) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.threads.get(missing)
    with pytest.raises(NotFoundError):
        await client.runs.create(missing, "email", input={})
    tid = (await client.threads.create())["thread_id"]
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, missing)
    with pytest.raises(UnprocessableEntityError):
        await client.runs.get(tid, "nope")


def test_crons(served, sync_client) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    tid = sync_client.threads.create()["thread_id"]
    cron = sync_client.crons.create_for_thread(tid, "plan", schedule="0 9 * * *",
                                               input={"messages": []})
    assert cron["thread_id"] == tid and cron["schedule"] == "0 9 * * *"
    assert cron["next_run_date"] > datetime.now(UTC).isoformat()
    stateless = sync_client.crons.create("email", schedule="*/5 * * * *", input={})
    found = sync_client.crons.search(thread_id=tid)
    assert [c["cron_id"] for c in found] == [cron["cron_id"]]
    assert sync_client.crons.count(assistant_id=cron["assistant_id"]) >= 1
    with pytest.raises(UnprocessableEntityError):
        sync_client.crons.create("email", schedule="not a schedule")
    # fire them as if a day had passed: one run on the thread, one on a new thread
    later = datetime.now(UTC) + timedelta(days=1)
    fired = asyncio.run_coroutine_threadsafe(served.server.crons.tick(later),
                                             served.server.loop).result(30)
    assert len(fired) == 2
    [run] = sync_client.runs.list(tid)
    assert sync_client.runs.join(tid, run["run_id"])["__interrupt__"]
    moved = sync_client.crons.search(thread_id=tid)[0]
    assert moved["next_run_date"] > later.isoformat()
    updated = sync_client.crons.update(cron["cron_id"], enabled=False)
    assert updated["enabled"] is False
    sync_client.crons.delete(cron["cron_id"])
    sync_client.crons.delete(stateless["cron_id"])
    assert sync_client.crons.search(thread_id=tid) == []


async def test_legacy_messages_mode_accumulates_tokens(client) -> None:
    parts = [p async for p in client.runs.stream(
        None, "streaming", input={"messages": [{"role": "user", "content": "hi"}]},
        stream_mode="messages", stream_subgraphs=True,  # the model runs in a subgraph
    )]
    names = [p.event.split("|")[0] for p in parts]
    assert "messages/metadata" in names
    partial = [p.data[0]["content"] for p in parts
               if p.event.startswith("messages/partial|inner:")]
    assert partial[-1] == "Hello there, reviewer"
    assert all(a in b for a, b in zip(partial, partial[1:], strict=False))  # growing
