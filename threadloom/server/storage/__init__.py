"""Server storage: the ``Storage`` interface and its implementations."""

from threadloom.server.storage.base import Storage, StreamEvent

__all__ = ["Storage", "StreamEvent"]
