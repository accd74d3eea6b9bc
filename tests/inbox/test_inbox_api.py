"""The approval inbox's API (``/approvals``), through HTTP: what a reviewer sees by role,
deciding (approve, edit, reject, batches, quorum), refusals of overtaken decisions,
deadlines applied by the server, live events, and the audit trail."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inbox_support import (
    ALICE,
    BOB,
    CAROL,
    ROOT,
    Inbox,
    cleanup_request,
    email_request,
    refund,
    seed_call,
)


def decide(inbox: Inbox, key: str, thread_id: str, *answers: dict[str, Any]) -> Any:
    with inbox.http(key) as http:
        return http.post(f"/approvals/threads/{thread_id}/decisions",
                         json={"answers": list(answers)})


def answer(row: dict[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
    return {"request_id": row["request_id"], "digest": row["digest"], "type": kind, **extra}


def test_reviewers_see_what_their_roles_allow_filtered_and_sorted(inbox: Inbox) -> None:
    files = inbox.start("files", seed_call())
    email = inbox.start("email", email_request())
    money = inbox.start("refund", refund(seconds=300))
    mine = {files, email, money}
    with inbox.http(ALICE) as http:
        data = http.get("/approvals", params={"sort": "urgent", "limit": 1000}).json()
    rows = [r for r in data["items"] if r["thread_id"] in mine]
    # most urgent first: the refund (5 min), the deletion (1 h), the email (24 h)
    assert [r["action"] for r in rows] == ["issue_refund", "delete_file", "send_email"]
    delete = rows[1]
    assert delete["summary"] == 'path="/tmp/old_data.csv"'
    assert delete["asked_by"] == "carol" and delete["roles"] == ["ops"]
    assert delete["status"] == "waiting" and delete["allowed"] == [
        "accept", "edit", "reject", "response"]
    assert rows[2]["quorum"] == 2 and rows[2]["approvals"] == []
    assert {"files", "email", "refund"} <= set(data["graphs"])
    assert {"ops", "finance"} <= set(data["assignees"])
    # bob (finance) does not see the deletion, which is for ops
    assert inbox.rows(BOB, files) == []
    assert [r["action"] for r in inbox.rows(BOB, email)] == ["send_email"]
    # carol (no role) sees nothing she could not decide
    assert inbox.rows(CAROL, email) == []
    # filters
    assert inbox.rows(ALICE, files, graph="email") == []
    assert inbox.rows(ALICE, files, assignee="ops")[0]["action"] == "delete_file"
    assert inbox.rows(ALICE, email, assignee="ops") == []
    assert inbox.rows(ALICE, money, status="partial") == []
    with inbox.http(ALICE) as http:
        newest = [r["thread_id"] for r in http.get("/approvals", params={
            "sort": "newest", "limit": 1000}).json()["items"] if r["thread_id"] in mine]
        assert newest == [money, email, files]
        bad = http.get("/approvals", params={"sort": "sideways"})
        assert bad.status_code == 422 and "sideways" in bad.json()["detail"]
        me = http.get("/approvals/me").json()
        assert me["identity"] == "alice" and me["roles"] == ["ops", "finance"]
    with inbox.http(None) as http:
        assert http.get("/approvals").status_code == 401


def test_approve_records_the_signed_in_reviewer_and_refuses_a_second_answer(
    inbox: Inbox,
) -> None:
    thread = inbox.start("files", seed_call())
    (row,) = inbox.rows(ALICE, thread)
    # bob cannot see it, nor decide it
    with inbox.http(BOB) as http:
        page = http.get(f"/approvals/threads/{thread}/requests/{row['request_id']}")
        assert page.status_code == 404
    refused = decide(inbox, BOB, thread, answer(row, "accept"))
    assert refused.status_code == 403 and refused.json()["reason"] == "not_allowed"
    # a reviewer named in the answer is not trusted: the identity is the key's
    done = decide(inbox, ALICE, thread, answer(row, "accept"))
    assert done.status_code == 200, done.text
    (decision,) = done.json()["decisions"]
    assert decision["who"]["id"] == "alice" and decision["decision"] == "accept"
    assert done.json()["thread_status"] == "idle"
    assert "Deleted /tmp/old_data.csv" in inbox.state(thread)["messages"][-1]["content"]
    again = decide(inbox, ALICE, thread, answer(row, "reject", message="too late"))
    assert again.status_code == 409
    body = again.json()
    assert body["reason"] == "overtaken"
    assert "already answered: 'accept' by alice" in body["detail"]
    assert body["decision"]["who"]["id"] == "alice"


def test_edit_is_checked_against_the_schema_and_its_diff_recorded(inbox: Inbox) -> None:
    thread = inbox.start("refund", refund())
    (row,) = inbox.rows(BOB, thread)
    with inbox.http(BOB) as http:
        page = http.get(f"/approvals/threads/{thread}/requests/{row['request_id']}").json()
    (request,) = page["requests"]
    assert request["args_schema"]["properties"]["amount"]["exclusiveMinimum"] == 0
    assert page["context"]["values"]["order_id"] == "A-1042"
    bad = decide(inbox, BOB, thread, answer(row, "edit", args={**row["args"], "amount": -5}))
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid"
    assert inbox.rows(BOB, thread)[0]["digest"] == row["digest"]  # nothing applied
    edited = decide(inbox, BOB, thread, answer(row, "edit", args={**row["args"], "amount": 99}))
    assert edited.status_code == 200, edited.text
    (decision,) = edited.json()["decisions"]
    assert decision["args_diff"]["changed"] == {"amount": {"from": 129.9, "to": 99}}
    assert inbox.state(thread)["outcome"] == "refunded 99.00 EUR"


def test_reject_gives_the_agent_the_reason(inbox: Inbox) -> None:
    thread = inbox.start("files", seed_call("/etc/hosts"))
    (row,) = inbox.rows(ALICE, thread)
    done = decide(inbox, ALICE, thread,
                  answer(row, "reject", message="Never delete system files."))
    assert done.status_code == 200, done.text
    assert done.json()["decisions"][0]["message"] == "Never delete system files."
    tool = [m for m in inbox.state(thread)["messages"] if m["type"] == "tool"][-1]
    assert "Never delete system files." in tool["content"]


def test_a_batch_is_answered_atomically(inbox: Inbox) -> None:
    thread = inbox.start("files", cleanup_request())
    rows = inbox.rows(ALICE, thread)
    assert [r["batch_size"] for r in rows] == [2, 2]
    tmp, doc = sorted(rows, key=lambda r: r["request_id"], reverse=True)
    assert tmp["args"]["path"] == "/tmp/old_data.csv"
    with inbox.http(ALICE) as http:
        page = http.get(f"/approvals/threads/{thread}/requests/{doc['request_id']}").json()
    assert [r["request_id"] for r in page["requests"]] == ["call_tmp", "call_doc"]
    # one bad answer: neither is applied
    bad = decide(inbox, ALICE, thread, answer(tmp, "accept"),
                 answer(doc, "edit", args={"path": 42}))
    assert bad.status_code == 422, bad.text
    assert len(inbox.rows(ALICE, thread)) == 2
    with inbox.http(ALICE) as http:
        audit = http.get(f"/approvals/threads/{thread}/audit").json()["records"]
    assert [r for r in audit if r["event"] == "decision"] == []
    done = decide(inbox, ALICE, thread, answer(tmp, "accept"),
                  answer(doc, "reject", message="Keep the report."))
    assert done.status_code == 200, done.text
    decisions = done.json()["decisions"]
    assert [(d["request_id"], d["decision"]) for d in decisions] == [
        ("call_tmp", "accept"), ("call_doc", "reject")]
    assert len({d["seq"] for d in decisions}) == 2
    tools = [m for m in inbox.state(thread)["messages"] if m["type"] == "tool"]
    assert [m["content"] for m in tools][0] == "Deleted /tmp/old_data.csv"
    assert "Keep the report." in tools[1]["content"]


def test_two_of_two_quorum_needs_two_distinct_reviewers(inbox: Inbox) -> None:
    thread = inbox.start("email", email_request())
    (row,) = inbox.rows(ALICE, thread)
    first = decide(inbox, ALICE, thread, answer(row, "accept"))
    assert first.status_code == 200, first.text
    (decision,) = first.json()["decisions"]
    assert decision["status"] == "pending" and (decision["approvals"], decision["needed"]) == (1, 2)
    (row,) = inbox.rows(BOB, thread)
    assert row["status"] == "partial" and [a["id"] for a in row["approvals"]] == ["alice"]
    assert inbox.rows(ALICE, thread)[0]["you_approved"] is True
    twice = decide(inbox, ALICE, thread, answer(row, "accept"))
    assert twice.status_code == 409 and twice.json()["reason"] == "already_approved"
    second = decide(inbox, BOB, thread, answer(row, "accept"))
    assert second.status_code == 200, second.text
    assert second.json()["decisions"][0]["status"] == "decided:accept"
    assert inbox.state(thread)["messages"][-1]["content"] == (
        "Email sent successfully to client@example.com.")


def _events(inbox: Inbox, key: str, found: list[tuple[str, dict]], ready: threading.Event,
            stop: threading.Event) -> None:
    with inbox.http(key) as http, http.stream("GET", "/approvals/stream") as response:
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line.split(":", 1)[1])
                if kind == "ready":
                    ready.set()
                else:
                    found.append((kind, data))
            if stop.is_set():
                return


def _wait_for(found: list, predicate: Any, timeout: float = 20.0) -> tuple[str, dict]:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for item in found:
            if predicate(*item):
                return item
        time.sleep(0.05)
    raise AssertionError(f"no such event among {[k for k, _ in found]}")


def test_events_and_a_deadline_the_server_applies(inbox: Inbox) -> None:
    found: list[tuple[str, dict]] = []
    ready, stop = threading.Event(), threading.Event()
    listener = threading.Thread(target=_events, args=(inbox, BOB, found, ready, stop),
                                daemon=True)
    listener.start()
    assert ready.wait(20)
    quick = inbox.start("refund", refund(seconds=3))
    email = inbox.start("email", email_request())
    files = inbox.start("files", seed_call())
    kind, data = _wait_for(found, lambda k, d: k == "requested" and d["row"]["thread_id"] == quick)
    assert data["pending"] and data["row"]["deadline"]["on_timeout"] == "reject"
    # the feed knows the email's request before it is answered (else the answer's look
    # is the first to see it, and tells of it as requested, partly approved)
    _wait_for(found, lambda k, d: k == "requested" and d["row"]["thread_id"] == email)
    (row,) = inbox.rows(ALICE, email)
    assert decide(inbox, ALICE, email, answer(row, "accept")).status_code == 200
    kind, data = _wait_for(found, lambda k, d: k == "answered" and d["row"]["thread_id"] == email)
    assert data["pending"] is True and data["decision"]["who"]["id"] == "alice"
    assert data["row"]["approvals"][0]["id"] == "alice"
    kind, data = _wait_for(found, lambda k, d: k == "expired" and d["row"]["thread_id"] == quick)
    assert data["pending"] is False
    assert data["decision"]["who"]["id"] == "threadloom:deadline"
    assert data["decision"]["decision"] == "reject"
    assert inbox.state(quick)["outcome"] == "reject: Nobody decided the refund in time."
    late = decide(inbox, BOB, quick, answer(data["row"], "accept"))
    assert late.status_code == 409 and late.json()["reason"] == "expired"
    assert "expired: its deadline decided 'reject'" in late.json()["detail"]
    # bob (finance) never hears of the deletion, which is for ops
    assert not any(d["row"]["thread_id"] == files for _, d in found)
    stop.set()


def test_audit_verifies_exports_json_lines_and_shows_tampering(inbox: Inbox) -> None:
    thread = inbox.start("email", email_request())
    (row,) = inbox.rows(ALICE, thread)
    decide(inbox, ALICE, thread, answer(row, "accept"))
    decide(inbox, BOB, thread, answer(row, "accept"))
    with inbox.http(BOB) as http:
        audit = http.get(f"/approvals/threads/{thread}/audit").json()
        exported = http.get(f"/approvals/threads/{thread}/audit.jsonl")
    assert audit["verified"] is True and audit["problem"] is None
    decisions = [r for r in audit["records"] if r["event"] == "decision"]
    assert [(r["who"]["id"], r["status"]) for r in decisions] == [
        ("alice", "pending"), ("bob", "decided:accept")]
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [r["seq"] for r in lines] == [r["seq"] for r in audit["records"]]
    with sqlite3.connect(inbox.database) as db:
        db.execute("UPDATE threadloom_audit_log SET record = json_set(record, '$.who.id', "
                   "'mallory') WHERE thread_id = ? AND seq = 1", (thread,))
    with inbox.http(BOB) as http:
        tampered = http.get(f"/approvals/threads/{thread}/audit").json()
    assert tampered["verified"] is False and "altered" in tampered["problem"]


def test_custom_auth_handler_signs_reviewers_in(tmp_path) -> None:
    from langgraph_sdk import Auth

    from threadloom.server import background_server, load_config

    auth = Auth()
    tokens = {"token-dana": {"identity": "dana", "permissions": ["ops"]}}

    @auth.authenticate
    async def authenticate(headers: dict[bytes, bytes]) -> dict[str, Any]:
        # the inbox sends "Authorization: Bearer", the official client "x-api-key"
        bearer = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        token = bearer.strip() or headers.get(b"x-api-key", b"").decode()
        if token not in tokens:
            raise Auth.exceptions.HTTPException(status_code=401, detail="unknown token")
        return tokens[token]

    config = load_config(ROOT / "examples" / "inbox" / "langgraph.json",
                         database=str(tmp_path / "custom.db"))
    config.api_keys = {}
    with background_server(config, auth=auth) as url:
        served = Inbox(str(url), url.server, tmp_path / "custom.db")
        thread = served.start("files", seed_call(), key="token-dana")
        (row,) = served.rows("token-dana", thread)
        with served.http("token-dana") as http:
            assert http.get("/approvals/me").json()["identity"] == "dana"
        with served.http("nobody") as http:
            assert http.get("/approvals").status_code == 401
        done = decide(served, "token-dana", thread, answer(row, "accept"))
        assert done.json()["decisions"][0]["who"] == {"id": "dana", "roles": ["ops"]}


def test_the_page_and_its_assets_come_from_the_package(inbox: Inbox) -> None:
    with inbox.http(None) as http:
        page = http.get("/inbox")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for name in ("inbox.js", "inbox.css"):
            asset = http.get(f"/inbox/{name}")
            assert asset.status_code == 200
            # nothing is fetched from elsewhere (no CDN)
            assert "http://" not in asset.text and "https://" not in asset.text
        assert "https://" not in page.text and "http://" not in page.text
        assert http.get("/inbox/../app.py").status_code == 404
        assert http.get("/inbox/secrets.txt").status_code == 404


@contextlib.contextmanager
def _make_serve(database: Path, *args: str) -> Iterator[tuple[str, str]]:
    """examples/inbox/serve.py on ``database``: its base URL and what it printed."""
    import os
    import signal
    import subprocess
    import sys

    from threadloom.server.embedded import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "inbox" / "serve.py"), "--port", str(port),
         "--database", str(database), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        printed = []
        for line in proc.stdout:
            printed.append(line)
            if "(Ctrl-C stops)" in line:
                break
        yield f"http://127.0.0.1:{port}", "".join(printed)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def _actions(base: str) -> list[str]:
    import httpx

    items = httpx.get(base + "/approvals", headers={"x-api-key": ALICE}).json()["items"]
    return sorted(r["action"] for r in items)


def test_make_serve_starts_the_demo_and_prints_the_inbox_url(tmp_path) -> None:
    """``make serve`` (examples/inbox/serve.py): the seed's workflows with approvals
    already waiting, and the URL to open."""
    import httpx

    with _make_serve(tmp_path / "demo.db") as (base, text):
        assert f"threadloom approval inbox: {base}/inbox" in text, text
        assert "demo-alice" in text and "demo-bob" in text
        assert httpx.get(base + "/inbox").status_code == 200
        items = httpx.get(base + "/approvals", headers={"x-api-key": ALICE}).json()["items"]
        assert sorted(r["action"] for r in items) == [
            "delete_file", "delete_file", "delete_file", "issue_refund", "send_email"]
        seed = [r for r in items if r["request_id"] == "call_delete"]
        assert seed[0]["args"] == {"path": "/tmp/old_data.csv"}  # the seed's tool call


def test_make_serve_seeds_a_database_left_without_the_demo(tmp_path) -> None:
    """A database that exists but holds no demo threads (an earlier start failed or was
    told --no-seed) is seeded on the next start; a seeded one is not seeded again."""
    database = tmp_path / "demo.db"
    with _make_serve(database, "--no-seed") as (base, _):
        assert _actions(base) == []
    with _make_serve(database) as (base, text):
        assert text.count("started ") == 4, text
    with _make_serve(database) as (base, text):
        assert "started " not in text
        assert len(_actions(base)) == 5


def test_a_decision_after_the_thread_moved_on_is_refused(inbox: Inbox) -> None:
    from langgraph_sdk import get_sync_client

    thread = inbox.start("files", seed_call())
    (row,) = inbox.rows(ALICE, thread)
    client = get_sync_client(url=inbox.url, api_key=CAROL, timeout=30)
    # carol's agent changes its mind: the pending tool call is replaced by an answer
    client.threads.update_state(
        thread, {"messages": [{"role": "assistant", "content": "Never mind."}]},
        as_node="agent",
    )
    assert inbox.rows(ALICE, thread) == []
    refused = decide(inbox, ALICE, thread, answer(row, "accept"))
    assert refused.status_code == 409 and refused.json()["reason"] == "overtaken"
    assert "The thread moved on" in refused.json()["detail"]
    assert "Deleted" not in json.dumps(inbox.state(thread))


def test_every_inbox_file_is_package_data() -> None:
    """The wheel carries the page: pyproject's package-data names every inbox file."""
    import fnmatch
    import tomllib

    from threadloom.server.routes.inbox import INBOX_DIR

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["threadloom.server"]
    files = [p.relative_to(INBOX_DIR.parent).as_posix() for p in INBOX_DIR.iterdir()]
    assert sorted(files) == ["inbox/inbox.css", "inbox/inbox.js", "inbox/index.html"]
    for name in files:
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name


def test_a_request_stays_listed_while_its_thread_is_busy(inbox: Inbox) -> None:
    """While a run is applying an answer the thread is busy: its request stays listed
    (no 'answered' then 'requested' again) until the run has ended."""
    import asyncio

    thread = inbox.start("email", email_request())
    storage = inbox.server.ctx.storage

    def set_status(status: str) -> None:
        asyncio.run_coroutine_threadsafe(
            storage.update_thread(thread, status=status), inbox.server.loop
        ).result(10)

    set_status("busy")
    try:
        assert [r["action"] for r in inbox.rows(BOB, thread)] == ["send_email"]
    finally:
        set_status("interrupted")


def test_every_look_sees_a_request_whose_thread_goes_busy_and_back(inbox: Inbox) -> None:
    """The feed's look at what is pending is one consistent snapshot: a thread moving
    between busy and interrupted while it looks is seen in one state or the other, never
    in neither (which published a false 'answered, no longer pending' event and then
    'requested' again)."""
    import asyncio
    import random

    thread = inbox.start("email", email_request())
    approvals, storage = inbox.server.approvals, inbox.server.ctx.storage

    async def race() -> tuple[int, int]:
        done = asyncio.Event()

        async def toggle() -> None:
            flips = random.Random(14)
            for _ in range(300):
                await storage.update_thread(thread, status=flips.choice(["busy", "interrupted"]))
            await storage.update_thread(thread, status="interrupted")
            done.set()

        looks = missed = 0
        toggling = asyncio.create_task(toggle())
        while not done.is_set():
            keys = [i.key for i in await approvals.all_pending() if i.thread_id == thread]
            looks += 1
            missed += len(keys) != 1
        await toggling
        return looks, missed

    looks, missed = asyncio.run_coroutine_threadsafe(race(), inbox.server.loop).result(120)
    assert looks > 10
    assert missed == 0, f"{missed} of {looks} looks did not see the request exactly once"


def test_plain_interrupts_and_static_pauses_are_answered_by_the_signed_in_reviewer(
    inbox: Inbox,
) -> None:
    """A plain ``interrupt(value)`` is listed as an "answer" item showing the value, a
    static ``interrupt_before`` pause as a "resume" item; answering them records the
    signed-in reviewer, and a second answer is refused as overtaken."""
    asked = inbox.start("question", {"topic": "graphs"})
    paused = inbox.start("publish", {"topic": "graphs"})
    (question,) = inbox.rows(BOB, asked)
    assert question["kind"] == "answer" and question["allowed"] == ["answer"]
    assert question["value"] == {"question": "Which title should the post have?",
                                 "topic": "graphs"}
    assert question["asked_by"] == "carol" and "Which title" in question["summary"]
    (pause,) = inbox.rows(BOB, paused)
    assert pause["kind"] == "resume" and pause["request_id"] == "resume"
    with inbox.http(BOB) as http:
        page = http.get(f"/approvals/threads/{paused}/requests/resume").json()
        assert page["requests"][0]["next"] == ["publish"]
        assert page["context"]["values"]["title"] == "Notes on graphs"
        mixed = http.post(f"/approvals/threads/{asked}/decisions", json={"answers": [
            {**answer(question, "answer"), "value": "x"}, answer(pause, "resume")]})
        assert mixed.status_code == 422 and "alone" in mixed.json()["detail"]
    wrong = decide(inbox, BOB, asked, answer(question, "resume"))
    assert wrong.status_code == 422 and "'answer'" in wrong.json()["detail"]
    done = decide(inbox, BOB, asked, {**answer(question, "answer"), "value": "Graphs, gently"})
    assert done.status_code == 200, done.text
    (decision,) = done.json()["decisions"]
    assert decision["who"]["id"] == "bob" and decision["value"] == "Graphs, gently"
    assert done.json()["thread_status"] == "idle"
    assert inbox.state(asked)["title"] == "Graphs, gently"
    again = decide(inbox, ALICE, asked, {**answer(question, "answer"), "value": "Other"})
    assert again.status_code == 409 and again.json()["reason"] == "overtaken"
    assert "already answered: 'answer' by bob" in again.json()["detail"]
    assert inbox.rows(BOB, asked) == []
    # a JSON answer reaches the node as JSON
    asked_again = inbox.start("question", {"topic": "json"})
    (row,) = inbox.rows(ALICE, asked_again)
    assert decide(inbox, ALICE, asked_again,
                  {**answer(row, "answer"), "value": {"title": "T"}}).status_code == 200
    assert inbox.state(asked_again)["title"] == '{"title": "T"}'
    # the static pause
    resumed = decide(inbox, ALICE, paused, answer(pause, "resume"))
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["decisions"][0]["who"]["id"] == "alice"
    assert inbox.state(paused)["published"] == "published: Notes on graphs"
    late = decide(inbox, BOB, paused, answer(pause, "resume"))
    assert late.status_code == 409 and "already answered: 'resume' by alice" in (
        late.json()["detail"])
    with inbox.http(BOB) as http:
        audit = http.get(f"/approvals/threads/{paused}/audit").json()
    assert audit["verified"] is True
    assert [(r["event"], r["who"]["id"]) for r in audit["records"]] == [("decision", "alice")]


def test_a_page_of_the_list_builds_the_rows_of_that_page(inbox: Inbox) -> None:
    """Thousands of requests waiting make one page each time the inbox asks, not
    thousands of rows: the rows are built for the page only (filtered, sorted and
    counted on what those need), and the pending threads are read without their state
    values. The page is the one the whole list sorted would give."""
    started = [inbox.start("files", seed_call()) for _ in range(6)]
    approvals = inbox.server.approvals
    built: list[Any] = []
    real = approvals.row

    async def row(user: Any, item: Any) -> Any:
        built.append(item.key)
        return await real(user, item)

    approvals.row = row
    try:
        with inbox.http(ALICE) as http:
            everything = http.get("/approvals", params={"limit": 1000}).json()
            built.clear()
            page = http.get("/approvals", params={"limit": 2, "offset": 1}).json()
    finally:
        del approvals.row
    assert len(built) == 2

    def same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "now"} for r in rows]  # (the clock)

    assert same(page["items"]) == same(everything["items"][1:3])
    assert page["total"] == everything["total"] >= len(started)

    import asyncio

    records = asyncio.run_coroutine_threadsafe(
        inbox.server.ctx.storage.pending_threads(None, started), inbox.server.loop).result()
    assert {r["thread_id"] for r in records} == set(started)
    assert all(r["values"] is None for r in records)


def test_who_asked_is_remembered_for_the_newest_threads_only(inbox: Inbox,
                                                             monkeypatch: Any) -> None:
    """A server listing approvals for months remembers who asked on a bounded number
    of threads (the most recent), not on every thread that ever waited."""
    from threadloom.server.services import approvals as module

    monkeypatch.setattr(module, "_ASKED_BY_KEPT", 2)
    started = [inbox.start("files", seed_call()) for _ in range(3)]
    with inbox.http(ALICE) as http:
        rows = [r for r in http.get("/approvals", params={"limit": 1000}).json()["items"]
                if r["thread_id"] in started]
    assert [r["asked_by"] for r in rows] == ["carol"] * 3
    assert len(inbox.server.approvals._asked_by) == 2
