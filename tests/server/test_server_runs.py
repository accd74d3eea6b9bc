"""Runs over HTTP: multitask strategies, cancel, join, resumable streams, stateless runs.

The ``slow`` graph's second node waits for a gate (a store item named after the run's
``tag``), so a test holds a run busy for exactly as long as it needs - no sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph_sdk.errors import ConflictError, NotFoundError

from threadloom.server.records import new_id


def _tag() -> str:
    return new_id()


def _cfg(tag: str) -> dict[str, Any]:
    return {"configurable": {"tag": tag}}


async def _open(client: Any, tag: str) -> None:
    await client.store.put_item(["gates"], tag, {"open": True})


async def _until(client: Any, tid: str, rid: str, status: str) -> None:
    while (await client.runs.get(tid, rid))["status"] != status:
        await asyncio.sleep(0.01)


async def _busy_run(client: Any, tid: str, tag: str, **kw: Any) -> dict:
    """A run of ``slow`` that has done ``first`` and waits at the gate in ``second``."""
    run = await client.runs.create(tid, "slow", input={"log": []}, config=_cfg(tag), **kw)
    await _until(client, tid, run["run_id"], "running")
    while (await client.threads.get_state(tid))["next"] != ["second"]:
        await asyncio.sleep(0.01)
    return run


async def test_a_worker_runs_many_waiting_runs_at_once(client) -> None:
    """Runs that wait (here at their gates) hold a worker's slots, not its CPU: its
    default slots (``RUN_SLOTS``) keep well over the 8 it used to hold running at once -
    none of these 20 waits in the queue for a slot."""
    from threadloom.server.config import RUN_SLOTS

    count = 20
    assert RUN_SLOTS >= count
    tags = [_tag() for _ in range(count)]
    tids = [(await client.threads.create())["thread_id"] for _ in tags]
    # (with fewer slots the runs past them stay queued and never reach their gates)
    runs = await asyncio.wait_for(asyncio.gather(
        *(_busy_run(client, tid, tag) for tid, tag in zip(tids, tags, strict=True))), 30)
    for tag in tags:
        await _open(client, tag)
    for tid, tag, run in zip(tids, tags, runs, strict=True):
        out = await client.runs.join(tid, run["run_id"])
        assert out["log"] == [f"first:{tag}", f"second:{tag}"]


async def test_reject_on_busy_thread_is_409(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    a, b = _tag(), _tag()
    run = await _busy_run(client, tid, a)
    assert (await client.threads.get(tid))["status"] == "busy"
    with pytest.raises(ConflictError):
        await client.runs.create(tid, "slow", input={"log": []}, config=_cfg(b),
                                 multitask_strategy="reject")
    with pytest.raises(ConflictError):  # update_state while a run is in flight
        await client.threads.update_state(tid, {"log": ["x"]})
    await _open(client, a)
    out = await client.runs.join(tid, run["run_id"])
    assert out["log"] == [f"first:{a}", f"second:{a}"]
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"


async def test_enqueue_runs_after_the_first(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    a, b = _tag(), _tag()
    first = await _busy_run(client, tid, a)
    second = await client.runs.create(tid, "slow", input={"log": []}, config=_cfg(b),
                                      multitask_strategy="enqueue")
    assert (await client.runs.get(tid, second["run_id"]))["status"] == "pending"
    await _open(client, a)
    await _open(client, b)
    out = await client.runs.join(tid, second["run_id"])
    assert out["log"] == [f"first:{a}", f"second:{a}", f"first:{b}", f"second:{b}"]
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "success"
    listed = await client.runs.list(tid)
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]


async def test_interrupt_strategy_stops_the_running_run(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    a, b = _tag(), _tag()
    first = await _busy_run(client, tid, a)
    second = await client.runs.create(tid, "slow", input={"log": []}, config=_cfg(b),
                                      multitask_strategy="interrupt")
    await _open(client, b)
    out = await client.runs.join(tid, second["run_id"])
    assert out["log"] == [f"first:{a}", f"first:{b}", f"second:{b}"]
    assert (await client.runs.get(tid, first["run_id"]))["status"] == "interrupted"


async def test_rollback_strategy_deletes_the_running_run(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    a, b = _tag(), _tag()
    first = await _busy_run(client, tid, a)
    second = await client.runs.create(tid, "slow", input={"log": []}, config=_cfg(b),
                                      multitask_strategy="rollback")
    await _open(client, b)
    out = await client.runs.join(tid, second["run_id"])
    assert out["log"] == [f"first:{b}", f"second:{b}"]
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, first["run_id"])


async def test_cancel_interrupt_then_resume(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    a = _tag()
    run = await _busy_run(client, tid, a)
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    assert (await client.threads.get_state(tid))["next"] == ["second"]
    with pytest.raises(NotFoundError):  # cancelling a finished run
        await client.runs.cancel(tid, run["run_id"])
    await _open(client, a)
    out = await client.runs.wait(tid, "slow", input=None, config=_cfg(a))
    assert out["log"] == [f"first:{a}", f"second:{a}"]


async def test_cancel_rollback_restores_the_thread(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    run = await _busy_run(client, tid, _tag())
    await client.runs.cancel(tid, run["run_id"], wait=True, action="rollback")
    with pytest.raises(NotFoundError):
        await client.runs.get(tid, run["run_id"])
    assert (await client.threads.get_state(tid))["values"] == {}
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_resumable_stream_replays_after_last_event_id(client) -> None:
    tid = (await client.threads.create())["thread_id"]
    a = _tag()
    parts = []
    async for part in client.runs.stream(
        tid, "slow", input={"log": []}, config=_cfg(a), stream_mode="updates",
        stream_resumable=True,
    ):
        parts.append(part)
        if part.event == "updates" and "first" in part.data:
            break  # the client goes away mid-run
    [meta, first_update] = parts
    assert int(first_update.id) > int(meta.id)
    run_id = meta.data["run_id"]
    await _open(client, a)
    await client.runs.join(tid, run_id)
    replayed = [p async for p in client.runs.join_stream(
        tid, run_id, last_event_id=meta.id, stream_mode="updates"
    )]
    assert [p.event for p in replayed] == ["updates", "updates"]
    assert replayed[0].data == first_update.data
    assert replayed[1].data == {"second": {"log": [f"second:{a}"]}}
    ids = [int(p.id) for p in replayed]
    assert ids == sorted(set(ids)) and ids[0] == int(first_update.id)


def _listening(storage: Any, run_id: str) -> bool:
    """Whether someone in the server's process follows the run's stream."""
    if hasattr(storage, "_streams"):  # SqliteStorage: in-process streams
        return bool(storage._streams._streams[run_id].listeners)
    return bool(storage._stream_waiters.get(run_id))  # PostgresStorage: woken by NOTIFY


async def test_join_stream_follows_a_running_run(served, client) -> None:
    tid = (await client.threads.create())["thread_id"]
    a = _tag()
    run = await _busy_run(client, tid, a, stream_mode=["values"])
    joined = client.runs.join_stream(tid, run["run_id"])
    first = asyncio.ensure_future(joined.__anext__())
    while not _listening(served.server.ctx.storage, run["run_id"]):  # the join listens
        await asyncio.sleep(0.01)
    await _open(client, a)
    rest = [await first] + [p async for p in joined]
    values = [p.data for p in rest if p.event == "values"]
    assert values and values[-1]["log"] == [f"first:{a}", f"second:{a}"]


def test_stateless_wait_and_stream(sync_client) -> None:
    out = sync_client.runs.wait(None, "plan", input={"messages": []})
    assert out["__interrupt__"][0]["value"].startswith("Please review")
    events = [p.event for p in sync_client.runs.stream(None, "email", input={"messages": []},
                                                       stream_mode="updates")]
    assert events[0] == "metadata" and "updates" in events


def test_graph_failure_is_reported(sync_client) -> None:
    """A plain resume with two interrupts pending fails the run; the interrupts stay and
    a correct resume then works."""
    tid = sync_client.threads.create()["thread_id"]
    first = sync_client.runs.wait(tid, "parallel", input={"answers": []})
    out = sync_client.runs.wait(tid, "parallel", command={"resume": "yes"}, raise_error=False)
    assert set(out["__error__"]) == {"error", "message"}
    thread = sync_client.threads.get(tid)
    assert thread["status"] == "error"
    assert len([i for g in thread["interrupts"].values() for i in g]) == 2
    assert [r["status"] for r in sync_client.runs.list(tid)] == ["error", "success"]
    answers = {i["id"]: "ok" for i in first["__interrupt__"]}
    final = sync_client.runs.wait(tid, "parallel", command={"resume": answers})
    assert sorted(final["answers"]) == ["finance:ok", "legal:ok"]


async def test_long_waits_keep_the_connection_alive(served, client, monkeypatch) -> None:
    """While a run is busy, wait sends newlines and streams send heartbeat comments."""
    import httpx

    from threadloom.server.routes import common

    monkeypatch.setattr(common, "HEARTBEAT_SECONDS", 0.02)
    tid = (await client.threads.create())["thread_id"]
    a, b = _tag(), _tag()
    headers = {"x-api-key": "key-alice"}
    async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=30) as http:
        body = {"assistant_id": "slow", "input": {"log": []}, "config": _cfg(a)}
        async with http.stream("POST", f"/threads/{tid}/runs/wait", json=body) as r:
            chunks = r.aiter_bytes()
            assert (await chunks.__anext__()).startswith(b"\n")
            await _open(client, a)
            rest = b"".join([c async for c in chunks])
        assert r.headers["location"].endswith("/join")
        assert __import__("json").loads(rest)["log"] == [f"first:{a}", f"second:{a}"]
        body = {"assistant_id": "slow", "input": {"log": []}, "config": _cfg(b)}
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as r:
            lines = r.aiter_lines()
            seen = []
            async for line in lines:
                seen.append(line)
                if line == ": heartbeat":
                    break
            await _open(client, b)
            seen += [line async for line in lines]
        events = [line for line in seen if line.startswith("event:")]
        assert events[0] == "event: metadata"  # heartbeats may come before it
        assert any(line.startswith("event: values") for line in seen)


async def test_a_wait_answered_before_the_first_newline_goes_out_whole(served, client
                                                                        ) -> None:
    """A run that ends before a keep-alive newline is due is answered in one piece with
    its length (not chunked); the answer is the run's output, as streamed ones are."""
    import json

    import httpx

    tid = (await client.threads.create())["thread_id"]
    async with httpx.AsyncClient(base_url=served.url, headers={"x-api-key": "key-alice"},
                                 timeout=30) as http:
        r = await http.post(f"/threads/{tid}/runs/wait",
                            json={"assistant_id": "payment", "input": {"amount": 5}})
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(r.content))
    assert "transfer-encoding" not in r.headers
    assert r.headers["location"].endswith("/join")
    answer = json.loads(r.content)
    assert answer["amount"] == 5 and answer["__interrupt__"]


def test_webhook_gets_the_finished_run_signed(serve_config) -> None:
    """The run is POSTed to its webhook when it ends, HMAC-signed; a 500 is retried."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from tests.server.conftest import GRAPHS
    from threadloom.server.webhooks import sign

    got: list[tuple[dict, bytes]] = []
    done = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(500 if len(got) == 1 else 204)  # fail once: retried
            self.end_headers()
            if len(got) == 2:
                done.set()

        def log_message(self, *args: object) -> None:
            pass

    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        running = serve_config({"graphs": GRAPHS, "auth": {"api_keys": {"k": {
            "identity": "ops"}}}, "webhooks": {"secret": "s3cret"}})
        client = running.sync_client("k")
        tid = client.threads.create()["thread_id"]
        url = f"http://127.0.0.1:{receiver.server_port}/hook"
        client.runs.wait(tid, "plan", input={"messages": []}, webhook=url)
        assert done.wait(30)
    finally:
        receiver.shutdown()
    headers, body = got[-1]
    assert got[0][1] == body
    assert headers["X-Threadloom-Signature"] == sign(
        "s3cret", headers["X-Threadloom-Timestamp"], body)
    payload = json.loads(body)
    assert payload["thread_id"] == tid and payload["status"] == "success"
    assert payload["values"]["__interrupt__"][0]["value"].startswith("Please review")
