"""``background_server``: a real server on 127.0.0.1 in a background thread.

For scripts, notebooks, tests and benchmarks that want the HTTP API without a separate
process::

    with background_server(ServerConfig(dev=True, database=":memory:"),
                           graphs={"agent": graph}) as url:
        client = get_sync_client(url=url, api_key=None)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from threadloom.server.app import Server, create_app
from threadloom.server.config import ServerConfig

__all__ = ["background_server", "free_port", "wait_until_up"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, proc: Any = None, *, timeout: float = 60.0) -> None:
    """Wait until the server at ``url`` answers ``GET /ok`` with 200; ``SystemExit``
    saying why if ``proc`` (the server's ``subprocess.Popen``, when it runs in one) exits
    first or ``timeout`` seconds pass."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ok").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server for {url} exited while starting "
                             f"(exit code {proc.returncode})")
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer /ok within {timeout:.0f} s")


@contextmanager
def background_server(
    config: ServerConfig,
    *,
    graphs: Mapping[str, Any] | None = None,
    auth: Any = None,
    port: int | None = None,
    timeout: float = 30.0,
    run_worker: bool | None = None,
) -> Iterator[str]:
    """Serve ``config`` (graphs and auth given as objects override its specs) with
    uvicorn in a daemon thread; yields the base URL; stops the server on exit.
    ``run_worker`` as for ``Server.from_config`` (True: execute runs here even on a
    shared PostgreSQL storage).

    The ``Server`` object is on the URL string's ``server`` attribute.
    """
    import uvicorn

    server = Server.from_config(config, graphs=graphs, auth=auth, run_worker=run_worker)
    port = port or free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(server), host="127.0.0.1", port=port,
                                       log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, name="threadloom-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not uv.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting (see its log)")
        if time.monotonic() > deadline:
            uv.should_exit = True
            raise TimeoutError(f"the server did not start within {timeout} s")
        time.sleep(0.01)
    url = _URL(f"http://127.0.0.1:{port}")
    url.server = server
    try:
        yield url
    finally:
        uv.should_exit = True
        thread.join(timeout=timeout)


class _URL(str):
    """The base URL, carrying the ``Server`` it reaches."""

    server: Server
