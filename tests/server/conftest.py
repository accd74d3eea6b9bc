"""A real threadloom server (uvicorn on 127.0.0.1, a free port, in a thread) for the
server tests, driven through the official ``langgraph_sdk`` client.

The shared server (``served``, hence ``client`` / ``sync_client``) runs once on SQLite
and once on PostgreSQL (``PostgresStorage`` on a new database, its worker in the same
process): every test using it runs against both storages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("langgraph_sdk")

HERE = Path(__file__).resolve().parent

GRAPHS = {
    "email": "./graphs.py:email",
    "tool_agent": "./graphs.py:tool_agent",
    "plan": "./graphs.py:plan",
    "parallel": "./graphs.py:parallel",
    "slow": "./graphs.py:slow",
    "payment": "./graphs.py:payment",
    "deadline_payment": "./graphs.py:deadline_payment",
    "streaming": "./graphs.py:streaming",
}

API_KEYS = {
    "key-alice": {"identity": "alice", "permissions": ["finance"]},
    "key-bob": {"identity": "bob", "permissions": ["finance"]},
    "key-mallory": {"identity": "mallory", "permissions": ["intern"]},
}


@dataclass
class RunningServer:
    """A served app: its base URL and the ``Server`` object behind it."""

    url: str
    server: Any

    def client(self, key: str | None = "key-alice") -> Any:
        """An async official client (``key`` None: no API key sent)."""
        from langgraph_sdk import get_client

        return get_client(url=self.url, api_key=key, timeout=30)

    def sync_client(self, key: str | None = "key-alice") -> Any:
        """A sync official client."""
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=key, timeout=30)


# module scope: no server thread outlives its module (tests elsewhere fork processes,
# and a fork taken while a server thread holds a lock deadlocks the child)
class Forwarder:
    """A TCP forwarder from 127.0.0.1:``port`` to ``target`` (the database), in a thread
    of its own: a database that comes up (``Forwarder(...)``), goes away - every
    connection through it cut, new ones refused (``stop``) - and comes back (a new
    ``Forwarder`` on the same port), for the server behind it alone."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        self.writers: set[asyncio.StreamWriter] = set()

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(*target)
            self.writers |= {writer, up_writer}
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self.server = self.loop.run_until_complete(
            asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Refuse new connections and cut those open (as a database going down)."""
        import asyncio

        async def down() -> None:
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            await self.server.wait_closed()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(down(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def serve_config(tmp_path_factory: pytest.TempPathFactory):
    """Start a server from a config file; yields a function config_dict -> RunningServer."""
    from contextlib import ExitStack

    from threadloom.server import background_server, load_config

    with ExitStack() as stack:

        def start(config: dict[str, Any], *, dev: bool = False,
                  database: str | None = None) -> RunningServer:
            """``database``: a PostgreSQL URL (None: a SQLite file)."""
            folder = tmp_path_factory.mktemp("server")
            for name in ("graphs.py", "auth.py"):
                (folder / name).write_text((HERE / name).read_text())
            (folder / "langgraph.json").write_text(json.dumps(config))
            cfg = load_config(folder / "langgraph.json", dev=dev or None)
            cfg.database = database or str(folder / "threadloom.db")
            url = stack.enter_context(background_server(cfg, run_worker=True))
            return RunningServer(str(url), url.server)

        yield start


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, serve_config) -> Iterator[RunningServer]:
    """The shared server: every test graph, API keys for alice, bob and mallory; on
    SQLite, then on PostgreSQL."""
    config = {"graphs": GRAPHS, "auth": {"api_keys": API_KEYS}}
    if request.param == "sqlite":
        yield serve_config(config)
        return
    from threadloom.server import background_server, load_config

    # its own server (not serve_config's), stopped before the database is dropped (which
    # fails if the server left a connection open)
    url = request.getfixturevalue("session_postgres_database")
    cfg = load_config(None, graphs=dict(GRAPHS), api_keys=dict(API_KEYS), base_dir=HERE,
                      database=url)
    with background_server(cfg, run_worker=True) as base:
        yield RunningServer(str(base), base.server)


@pytest.fixture
def client(served: RunningServer):
    """An async client signed in as alice (finance)."""
    return served.client()


@pytest.fixture
def sync_client(served: RunningServer) -> Iterator[Any]:
    """A sync client signed in as alice (finance)."""
    return served.sync_client()


@pytest.fixture
def sent_statements(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every statement the PostgreSQL server storage sends from now on, as (the name of
    the asyncio task sending it, its SQL with whitespace collapsed): through psycopg's
    async cursors (``AsyncConnection.execute`` included) and through the storage's
    statement pipe. Counts are deterministic where timings are not."""
    import asyncio

    psycopg = pytest.importorskip("psycopg")
    from threadloom.server.storage._statement_pipe import StatementPipe

    seen: list[tuple[str, str]] = []

    def note(query: Any) -> None:
        task = asyncio.current_task()
        seen.append(("" if task is None else task.get_name(), " ".join(str(query).split())))

    executed = psycopg.AsyncCursor.execute

    async def execute(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        note(query)
        return await executed(self, query, params, **kwargs)

    piped = StatementPipe.rows

    async def rows(self: Any, sql: str, params: Any = (), **options: Any) -> Any:
        note(sql)
        return await piped(self, sql, params, **options)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute)
    monkeypatch.setattr(StatementPipe, "rows", rows)
    return seen
