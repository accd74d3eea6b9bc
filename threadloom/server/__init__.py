"""``threadloom serve``: LangGraph's Agent Server HTTP API, open and self-hosted.

The official ``langgraph-sdk`` client (and the Agent Inbox, and Studio) talk to it
unchanged. Layers, each importing only the ones below it:

* ``routes`` - HTTP: request validation (pydantic; a bad body is a 422 with a
  ``detail``), authentication, server-sent events;
* ``services`` - assistants, threads, runs, store: what each route means;
* ``storage`` - one ``Storage`` interface for records, the run queue and run streams
  (``SqliteStorage``: one file, one process; ``PostgresStorage``: an API process and
  any number of ``threadloom worker`` processes), and the ``Worker`` executing queued
  runs through ``executor``.

Start it with ``threadloom serve --config langgraph.json`` (see ``threadloom.server.cli``)
or embed it: ``create_app(Server.from_config(config))``.
"""

from threadloom.server.app import Server, create_app, open_storage
from threadloom.server.config import ServerConfig, load_config
from threadloom.server.embedded import background_server

__all__ = [
    "Server",
    "ServerConfig",
    "background_server",
    "create_app",
    "load_config",
    "open_storage",
]
