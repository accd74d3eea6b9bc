"""Long-term memory shared across threads: ``BaseStore`` and its implementations.

``InMemoryStore`` is always available. ``SqliteStore`` (stdlib only) and the PostgreSQL
stores (which need ``psycopg``) are imported lazily on first attribute access, so
``import threadloom.store`` works without the optional database drivers installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from threadloom.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
    SemanticSearchNotSupportedError,
)
from threadloom.store.memory import InMemoryStore

if TYPE_CHECKING:
    from threadloom.store.postgres import AsyncPostgresStore, PostgresStore
    from threadloom.store.sqlite import SqliteStore

__all__ = [
    "AsyncPostgresStore",
    "BaseStore",
    "GetOp",
    "InMemoryStore",
    "InvalidNamespaceError",
    "Item",
    "ListNamespacesOp",
    "MatchCondition",
    "PostgresStore",
    "PutOp",
    "SearchItem",
    "SearchOp",
    "SemanticSearchNotSupportedError",
    "SqliteStore",
]

_LAZY = {
    "SqliteStore": "threadloom.store.sqlite",
    "PostgresStore": "threadloom.store.postgres",
    "AsyncPostgresStore": "threadloom.store.postgres",
}


def __getattr__(name: str) -> Any:
    """Import the SQL-backed stores only when first used (optional dependencies)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
