"""A real threadloom server (uvicorn on 127.0.0.1, a free port, in a thread) for the
server tests, driven through the official ``langgraph_sdk`` client."""

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


@pytest.fixture(scope="session")
def serve_config(tmp_path_factory: pytest.TempPathFactory):
    """Start a server from a config file; yields a function config_dict -> RunningServer."""
    from contextlib import ExitStack

    from threadloom.server import background_server, load_config

    with ExitStack() as stack:

        def start(config: dict[str, Any], *, dev: bool = False) -> RunningServer:
            folder = tmp_path_factory.mktemp("server")
            for name in ("graphs.py", "auth.py"):
                (folder / name).write_text((HERE / name).read_text())
            (folder / "langgraph.json").write_text(json.dumps(config))
            cfg = load_config(folder / "langgraph.json", dev=dev or None)
            cfg.database = str(folder / "threadloom.db")
            url = stack.enter_context(background_server(cfg))
            return RunningServer(str(url), url.server)

        yield start


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
