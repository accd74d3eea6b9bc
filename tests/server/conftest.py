"""A real threadloom server (uvicorn on 127.0.0.1, a free port, in a thread) for the
server tests, driven through the official ``langgraph_sdk`` client."""

from __future__ import annotations

import json
import socket
import threading
import time
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def serve_config(tmp_path_factory: pytest.TempPathFactory):
    """Start a server from a config file; yields a function config_dict -> RunningServer."""
    import uvicorn

    from threadloom.server import Server, create_app, load_config

    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(config: dict[str, Any], *, dev: bool = False) -> RunningServer:
        folder = tmp_path_factory.mktemp("server")
        for name in ("graphs.py", "auth.py"):
            (folder / name).write_text((HERE / name).read_text())
        (folder / "langgraph.json").write_text(json.dumps(config))
        cfg = load_config(folder / "langgraph.json", dev=dev or None)
        cfg.database = str(folder / "threadloom.db")
        server = Server.from_config(cfg)
        port = _free_port()
        uv = uvicorn.Server(uvicorn.Config(create_app(server), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not uv.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        started.append((uv, thread))
        return RunningServer(f"http://127.0.0.1:{port}", server)

    yield start
    for uv, thread in started:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def served(serve_config) -> RunningServer:
    """The shared server: every test graph, API keys for alice, bob and mallory."""
    return serve_config({"graphs": GRAPHS, "auth": {"api_keys": API_KEYS}})


@pytest.fixture
def client(served: RunningServer):
    """An async client signed in as alice (finance)."""
    return served.client()


@pytest.fixture
def sync_client(served: RunningServer) -> Iterator[Any]:
    """A sync client signed in as alice (finance)."""
    return served.sync_client()
