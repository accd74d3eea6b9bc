"""Webhooks for approval events (``"webhooks": {"url", "secret", "events"}`` in the
config): an approval requested, answered and expiring is POSTed to a real local HTTP
receiver, HMAC-signed with the configured secret and retried after a failure - on SQLite
and on PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.server.conftest import API_KEYS, GRAPHS, HERE

SECRET = "hook-s3cret"


class Receiver:
    """A local HTTP server recording every POST; the first one is answered 500."""

    def __init__(self, port: int = 0, *, fail_first: bool = True) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((dict(self.headers), body))
                self.send_response(500 if fail_first and len(got) == 1 else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = HTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_port}/approvals"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.got]

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for event in self.events():
                if predicate(event):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no such webhook among {[e['event'] for e in self.events()]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.http.shutdown()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "hooks.db")
    return request.getfixturevalue("fresh_postgres_database")


def test_approval_events_are_posted_signed_and_retried(receiver: Receiver,
                                                        database: str) -> None:
    from langgraph_sdk import get_sync_client

    from threadloom.hitl.approval_hooks import hooks_of
    from threadloom.server import background_server, load_config

    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=database, webhook_url=receiver.url, webhook_secret=SECRET)
    with background_server(config, run_worker=True) as url:
        url.server.approval_feed.interval = 0.1
        time.sleep(0.3)  # the feed's first look learns what is pending
        client = get_sync_client(url=str(url), api_key="key-alice", timeout=30)
        answered = client.threads.create()["thread_id"]
        client.runs.wait(answered, "payment", input={"amount": 120})
        asked = receiver.wait_for(lambda e: e["event"] == "approval.requested"
                                  and e["thread_id"] == answered)
        assert asked["pending"] is True and asked["request"]["action"] == "pay"
        assert asked["request"]["args"] == {"amount": 120}
        assert asked["graph_id"] == "payment" and asked["decision"] is None
        client.runs.wait(answered, "payment", command={"resume": {"type": "accept"}})
        done = receiver.wait_for(lambda e: e["event"] == "approval.answered"
                                 and e["thread_id"] == answered)
        assert done["pending"] is False and done["key"] == asked["key"]
        assert done["decision"]["who"]["id"] == "alice"
        assert done["decision"]["decision"] == "accept"
        # a deadline passes: the server decides, and says so
        late = client.threads.create()["thread_id"]
        client.runs.wait(late, "deadline_payment", input={"amount": 90})
        receiver.wait_for(lambda e: e["event"] == "approval.requested"
                          and e["thread_id"] == late)
        hooks = hooks_of(url.server.ctx.graphs.get("deadline_payment"))
        later = datetime.now(UTC) + timedelta(hours=2)
        hooks.clock = lambda: later
        try:
            expired = receiver.wait_for(lambda e: e["event"] == "approval.expired"
                                        and e["thread_id"] == late)
        finally:
            hooks.clock = None
        assert expired["decision"]["who"]["id"] == "threadloom:deadline"
        assert expired["decision"]["decision"] == "reject" and expired["pending"] is False
        # the first POST failed (500): it is sent again
        end = time.monotonic() + 30
        while [b for _, b in receiver.got].count(receiver.got[0][1]) < 2:
            assert time.monotonic() < end, "the failed delivery was not sent again"
            time.sleep(0.05)
    # every delivery is signed with the secret over "<timestamp>.<body>"
    assert len(receiver.got) >= 5
    for headers, body in receiver.got:
        stamp = headers["X-Threadloom-Timestamp"]
        mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        assert headers["X-Threadloom-Signature"] == "sha256=" + mac.hexdigest()
    # the first POST failed (500) and was sent again
    bodies = [body for _, body in receiver.got]
    assert bodies.count(bodies[0]) == 2
    kinds = [e["event"] for e in receiver.events()[1:]]
    assert sorted(kinds) == sorted(["approval.requested", "approval.answered",
                                    "approval.requested", "approval.expired"]), kinds


def test_only_the_configured_events_are_posted(receiver: Receiver, tmp_path) -> None:
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config

    (tmp_path / "langgraph.json").write_text(json.dumps({
        "graphs": {"payment": str(HERE / "graphs.py") + ":payment"},
        "auth": {"api_keys": API_KEYS},
        "webhooks": {"url": receiver.url, "events": ["answered"]},
    }))
    config = load_config(tmp_path / "langgraph.json", database=str(tmp_path / "one.db"))
    assert config.webhook_events == ("answered",) and config.webhook_url == receiver.url
    with background_server(config, run_worker=True) as url:
        url.server.approval_feed.interval = 0.1
        time.sleep(0.3)
        client = get_sync_client(url=str(url), api_key="key-bob", timeout=30)
        tid = client.threads.create()["thread_id"]
        client.runs.wait(tid, "payment", input={"amount": 5})
        url.server.approval_feed.poke()  # it sees the request pending before the answer
        time.sleep(0.5)
        client.runs.wait(tid, "payment", command={"resume": {"type": "accept"}})
        receiver.wait_for(lambda e: e["event"] == "approval.answered")
    assert {e["event"] for e in receiver.events()} == {"approval.answered"}
    assert "X-Threadloom-Signature" not in receiver.got[-1][0]  # no secret: unsigned


@pytest.mark.parametrize(("hooks", "problem"), [
    ({"url": "ftp://x"}, '"webhooks.url" must be an http:// or https:// URL'),
    ({"url": "http://x", "events": ["approved"]}, '"webhooks.events" must be a list of'),
    ([], '"webhooks" must be an object'),
])
def test_a_bad_webhook_config_is_named(tmp_path, hooks: Any, problem: str) -> None:
    from threadloom.server import load_config

    (tmp_path / "langgraph.json").write_text(json.dumps({"graphs": {}, "webhooks": hooks}))
    with pytest.raises(SystemExit, match=problem.replace(".", r"\.")):
        load_config(tmp_path / "langgraph.json")


def test_a_webhook_outlives_its_receiver_down_and_the_server_stopped(database: str) -> None:
    """The receiver is down when the run ends, and the server stops before it comes
    back: the delivery is kept in the database, and the next server on it sends it once
    the receiver is up - not dropped after a few seconds of retries in a process that
    is gone."""
    from langgraph_sdk import get_sync_client

    from threadloom.server import background_server, load_config
    from threadloom.server.embedded import free_port

    port = free_port()  # nothing listens there yet
    config = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                         database=database, webhook_secret=SECRET)
    with background_server(config, run_worker=True) as url:
        client = get_sync_client(url=str(url), api_key="key-alice", timeout=30)
        tid = client.threads.create()["thread_id"]
        run = client.runs.create(tid, "email", input={"messages": []},
                                 webhook=f"http://127.0.0.1:{port}/runs")
        client.runs.join(tid, run["run_id"])
        time.sleep(2.0)  # refused, tried again, refused...
    receiver = Receiver(port, fail_first=False)  # the receiver comes back
    try:
        with background_server(config, run_worker=True):
            got = receiver.wait_for(lambda e: e.get("run_id") == run["run_id"])
            assert got["status"] == "success" and got["values"]["messages"]
            time.sleep(1.0)
        assert [e.get("run_id") for e in receiver.events()] == [run["run_id"]]  # once
        headers, body = receiver.got[0]
        stamp = headers["X-Threadloom-Timestamp"]
        mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        assert headers["X-Threadloom-Signature"] == "sha256=" + mac.hexdigest()
    finally:
        receiver.http.shutdown()
