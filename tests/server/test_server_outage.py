"""The server's PostgreSQL database going down and coming back, for real: the server
reaches it through a TCP forwarder that the test stops (every connection cut, new ones
refused) and starts again."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.server.conftest import HERE, Forwarder


def test_requests_while_the_database_is_down_are_503_and_it_serves_again_after(
    fresh_postgres_database: str,
) -> None:
    """While the database is down a request is answered 503 with ``Retry-After`` and
    the reason - not a 500 - and nothing is lost: once it is back, the server serves
    again without a restart (its pool, statement connections and listener reconnect),
    and a run queued before goes on."""
    from langgraph_sdk import get_sync_client
    from psycopg.conninfo import conninfo_to_dict

    from threadloom.server import background_server, load_config
    from threadloom.server.embedded import free_port

    parts = conninfo_to_dict(fresh_postgres_database)
    target = (parts.get("host") or "127.0.0.1", int(parts.get("port") or 5432))
    port = free_port()
    through = f"postgresql://{parts.get('user', 'postgres')}@127.0.0.1:{port}/{parts['dbname']}"
    forwarder = Forwarder(port, target)
    config = load_config(None, graphs={"email": "./graphs.py:email"}, base_dir=HERE,
                         database=through, dev=True)
    try:
        with background_server(config, run_worker=True) as url:
            client = get_sync_client(url=str(url), api_key=None, timeout=60)
            tid = client.threads.create()["thread_id"]
            assert client.runs.wait(tid, "email", input={"messages": []})["messages"]

            forwarder.stop()  # the database goes down
            answers: list[Any] = []
            for _ in range(3):
                answers.append(httpx.get(f"{url}/threads/{tid}", timeout=30))
                answers.append(httpx.post(f"{url}/threads", json={}, timeout=30))
            assert {a.status_code for a in answers} == {503}, [
                (a.status_code, a.text) for a in answers]
            assert all(a.headers["Retry-After"] == "1" for a in answers)
            assert "database went away" in answers[0].json()["detail"]

            forwarder = Forwarder(port, target)  # and comes back
            deadline = time.monotonic() + 30
            while True:
                got = httpx.get(f"{url}/threads/{tid}", timeout=30)
                if got.status_code == 200:
                    break
                assert got.status_code == 503, got.text
                assert time.monotonic() < deadline, "the server did not serve again"
                time.sleep(0.2)
            again = client.threads.create()["thread_id"]
            assert client.runs.wait(again, "email", input={"messages": []})["messages"]
    finally:
        forwarder.stop()
