"""pytest plugin for `make compat`: LangGraph's published tests against threadloom.

Loaded with ``-p plugin`` before any conftest, it

- serves ``import langgraph...`` from threadloom (:func:`threadloom.install_as_langgraph`),
  so the unedited test files run against threadloom; LangGraph is not installed
  (``run.py --reference`` sets ``THREADLOOM_COMPAT_REFERENCE``: the real LangGraph of
  ``.venv-reference`` is left alone and threadloom is not imported);
- serves the conformance spec (``langgraph.checkpoint.conformance``, a
  package of the suite under test, not of threadloom) from its sdist;
- where run.py could not start the suites' own PostgreSQL on localhost:5442,
  forwards that address to the server named by ``THREADLOOM_TEST_POSTGRES_URL``;
- deselects the tests named in ``deselect.txt`` (each line has its reason).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

HERE = Path(__file__).resolve().parent
SUITE_POSTGRES_PORT = 5442  # the address LangGraph's conftest hard-codes


class _SuitePackageFinder(importlib.abc.MetaPathFinder):
    """Finds ``langgraph.<sub>`` packages that belong to the suite under test."""

    def __init__(self, root: Path, package: str) -> None:
        self.root = root
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.package and not fullname.startswith(self.package + "."):
            return None
        parts = fullname.split(".")
        directory = self.root.joinpath(*parts[:-1])
        return importlib.machinery.PathFinder.find_spec(fullname, [str(directory)])


def _forward(listen_port: int, host: str, port: int) -> None:
    """Forward 127.0.0.1:listen_port to host:port from daemon threads.

    Several pytest processes (xdist workers, or runs from other checkouts)
    may want the port: one holds it, the others keep trying to bind, so the
    forwarding outlives whichever process happened to take it first.
    """

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve() -> None:
        while True:
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                server.bind(("127.0.0.1", listen_port))
            except OSError:
                server.close()
                time.sleep(0.2)  # held by another process: take over when it exits
                continue
            server.listen(128)
            while True:
                client, _ = server.accept()
                try:
                    upstream = socket.create_connection((host, port))
                except OSError:
                    client.close()
                    continue
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser, args) -> None:
    """Before the suite's conftest imports langgraph."""
    if not os.environ.get("THREADLOOM_COMPAT_REFERENCE"):
        import threadloom

        threadloom.install_as_langgraph()
    suite_pkg = os.environ.get("THREADLOOM_COMPAT_SUITE_PACKAGE")
    if suite_pkg:
        root = Path(os.environ["THREADLOOM_COMPAT_SUITE_ROOT"])
        sys.meta_path.insert(0, _SuitePackageFinder(root, suite_pkg))
    if os.environ.get("THREADLOOM_COMPAT_FORWARD_POSTGRES"):  # no server of its own
        url = urlparse(
            os.environ.get(
                "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
            )
        )
        _forward(SUITE_POSTGRES_PORT, url.hostname or "127.0.0.1", url.port or 5432)


def _deselected() -> set[str]:
    path = os.environ.get("THREADLOOM_COMPAT_DESELECT")
    if not path:
        return set()
    ids = set()
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.add(line)
    return ids


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    names = _deselected()
    if not names:
        return
    keep, drop = [], []
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        (drop if item.nodeid in names or base in names else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
