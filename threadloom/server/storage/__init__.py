"""Server storage: the ``Storage`` interface and its implementations.

Services see only ``Storage`` (records, the run queue, run streams), so one server runs on
``SqliteStorage`` (one file, one process) or ``PostgresStorage`` (an API process and any
number of workers) alike.
"""

from threadloom.server.storage.base import Storage, StreamEvent

__all__ = ["Storage", "StreamEvent"]
