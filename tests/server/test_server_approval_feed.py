"""On PostgreSQL the approval feed of a process that applies no deadlines (the API
process) is woken by LISTEN/NOTIFY when a thread record changes - in any process - and
does not look every second: approval events reach its listeners at once although it
would otherwise look only every ten minutes."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from tests.server.conftest import API_KEYS, GRAPHS, HERE


def _listen(url: str, key: str, found: list[tuple[str, dict]], ready: threading.Event,
            stop: threading.Event) -> None:
    import httpx

    headers = {"x-api-key": key}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http, http.stream(
        "GET", "/approvals/stream"
    ) as response:
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                if kind == "ready":
                    ready.set()
                else:
                    found.append((kind or "", json.loads(line.split(":", 1)[1])))
            if stop.is_set():
                return


def _wait_for(found: list[tuple[str, dict]], kind: str, thread_id: str,
              timeout: float = 15.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for k, data in found:
            if k == kind and data["row"]["thread_id"] == thread_id:
                return data
        time.sleep(0.02)
    raise AssertionError(f"no {kind!r} event for {thread_id} among {[k for k, _ in found]}")


def test_the_api_process_feed_is_woken_by_notifications(fresh_postgres_database: str) -> None:
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=fresh_postgres_database)
    # the API process queues runs; a worker process (here: another server) executes them
    with background_server(config) as api, background_server(config, run_worker=True):
        feed = api.server.approval_feed
        assert feed.notified and not feed.sweep
        feed.interval = feed.idle_interval = 600.0  # it never looks on its own now
        time.sleep(1.5)  # its current wait (begun with the old interval) ends
        found: list[tuple[str, dict]] = []
        ready, stop = threading.Event(), threading.Event()
        listener = threading.Thread(target=_listen, args=(str(api), "key-bob", found,
                                                          ready, stop), daemon=True)
        listener.start()
        assert ready.wait(20)
        client = get_sync_client(url=str(api), api_key="key-alice", timeout=60)
        tid = client.threads.create()["thread_id"]
        started = time.monotonic()
        client.runs.wait(tid, "payment", input={"amount": 40})
        asked = _wait_for(found, "requested", tid)
        assert asked["row"]["args"] == {"amount": 40}
        client.runs.wait(tid, "payment", command={"resume": {"type": "accept"}})
        done = _wait_for(found, "answered", tid)
        assert done["decision"]["who"]["id"] == "alice" and done["pending"] is False
        assert time.monotonic() - started < 60  # far below the feed's own 600 s
        stop.set()


def _counting(obj: Any, name: str) -> list[Any]:
    """Record each call of ``obj.name`` (the real method still runs)."""
    calls: list[Any] = []
    real = getattr(obj, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await real(*args, **kwargs)

    setattr(obj, name, counted)
    return calls


def test_a_feed_nobody_listens_to_does_not_look(fresh_postgres_database: str) -> None:
    """The API process's feed (no deadlines to apply) with no subscriber reads nothing
    however often threads change; a subscriber arriving makes it learn what is pending
    then, and tells it what changes after."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=fresh_postgres_database)
    with background_server(config) as api, background_server(config, run_worker=True):
        feed = api.server.approval_feed
        assert not feed.sweep
        looks = _counting(api.server.ctx.storage, "pending_thread_versions")
        client = get_sync_client(url=str(api), api_key="key-alice", timeout=60)
        before = client.threads.create()["thread_id"]
        client.runs.wait(before, "payment", input={"amount": 5})  # pending from now on
        for _ in range(3):
            feed.poke()
            time.sleep(0.2)
        assert looks == [] and feed._seen is None

        found: list[tuple[str, dict]] = []
        ready, stop = threading.Event(), threading.Event()
        threading.Thread(target=_listen, args=(str(api), "key-bob", found, ready, stop),
                         daemon=True).start()
        assert ready.wait(20)
        assert looks  # it looked before "ready": what was pending then is known
        client.runs.wait(before, "payment", command={"resume": {"type": "accept"}})
        done = _wait_for(found, "answered", before)
        assert done["decision"]["who"]["id"] == "alice"
        assert not [k for k, d in found if k == "requested" and d["row"]["thread_id"] == before]
        stop.set()


def test_a_sweeping_feed_without_listeners_reads_no_audit_log(tmp_path: Any) -> None:
    """A feed applying deadlines, with no subscriber and no webhook, still looks at what
    is pending but never reads an audit log for the reason a request left (nobody would
    be told it); with a subscriber it does."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=str(tmp_path / "feed.db"))
    with background_server(config, run_worker=True) as url:
        feed = url.server.approval_feed
        feed.interval = 0.05
        reasons = _counting(url.server.approvals, "reason_gone")
        client = get_sync_client(url=str(url), api_key="key-alice", timeout=60)

        def round_trip() -> str:
            tid = client.threads.create()["thread_id"]
            client.runs.wait(tid, "payment", input={"amount": 5})
            _until(lambda: tid in (feed._seen or {}))
            client.runs.wait(tid, "payment", command={"resume": {"type": "accept"}})
            _until(lambda: tid not in (feed._seen or {}))
            return tid

        round_trip()
        assert reasons == []
        queue = feed.subscribe()
        try:
            round_trip()
            assert reasons  # a subscriber is told why: the audit log was read
            assert any(queue.get_nowait().kind == "answered" for _ in range(queue.qsize()))
        finally:
            feed.unsubscribe(queue)


def _until(predicate: Any, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_look_reads_again_only_the_threads_that_changed(tmp_path: Any) -> None:
    """With threads waiting, a look that finds nothing changed reads no thread record
    (only the pending threads' versions); a thread that changes is the one read again -
    a server with thousands of approvals waiting does not decode them all every second.
    The events stay the same: the answered request is told, the others are not."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=str(tmp_path / "feed.db"))
    with background_server(config, run_worker=True) as url:
        feed = url.server.approval_feed
        feed.interval = 0.05
        client = get_sync_client(url=str(url), api_key="key-alice", timeout=60)
        waiting = [client.threads.create()["thread_id"] for _ in range(5)]
        for tid in waiting:
            client.runs.wait(tid, "payment", input={"amount": 5})
        _until(lambda: all(tid in (feed._seen or {}) for tid in waiting))
        reads = _counting(url.server.ctx.storage, "pending_threads")
        looks = _counting(url.server.ctx.storage, "pending_thread_versions")
        _until(lambda: len(looks) >= 5)
        assert reads == []  # nothing changed: no record read

        found: list[tuple[str, dict]] = []
        ready, stop = threading.Event(), threading.Event()
        threading.Thread(target=_listen, args=(str(url), "key-bob", found, ready, stop),
                         daemon=True).start()
        assert ready.wait(20)
        client.runs.wait(waiting[0], "payment", command={"resume": {"type": "accept"}})
        _wait_for(found, "answered", waiting[0])

        def read_ids() -> set[str]:  # the records the feed read again (by id; the
            # subscriber's first list is its own read of what it may see)
            return {tid for args in reads if len(args) > 1 for tid in (args[1] or ())}

        client.threads.update(waiting[1], metadata={"team": "ops"})  # a new version
        _until(lambda: waiting[1] in read_ids())
        stop.set()
        assert not read_ids() & set(waiting[2:]), read_ids()
        assert {d["row"]["thread_id"] for _, d in found} == {waiting[0]}, found
