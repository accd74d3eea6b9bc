"""The approval inbox's server for its tests: ``threadloom serve``'s app on a SQLite file
in the test's temporary folder, serving ``examples/inbox`` (see ``inbox_support``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("langgraph_sdk")

from inbox_support import ALICE, CONFIG, Inbox  # noqa: E402


# module scope: no server thread outlives its module (tests elsewhere fork processes,
# and a fork taken while a server thread holds a lock deadlocks the child)
@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbox]:
    """The shared inbox server (approval events looked for every 0.1 s)."""
    from threadloom.server import background_server, load_config

    database = tmp_path_factory.mktemp("inbox") / "inbox.db"
    config = load_config(CONFIG, database=str(database))
    assert json.loads(CONFIG.read_text())["auth"]["api_keys"][ALICE]["identity"] == "alice"
    with background_server(config) as url:
        url.server.approval_feed.interval = 0.1
        yield Inbox(str(url), url.server, database)
