"""``InMemoryStore``: a process-local store for tests, notebooks and single-process apps.

Nothing is persisted; use :class:`threadloom.store.sqlite.SqliteStore` or
:class:`threadloom.store.postgres.PostgresStore` when memories must survive a restart.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import Any

from threadloom.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    _list_namespaces,
    _matches,
    _now,
    _parse_filter,
    _validate_ops,
)
from threadloom.store.embed import SemanticIndex, rank

__all__ = ["InMemoryStore"]


class InMemoryStore(BaseStore):
    """A dict-backed :class:`BaseStore`.

    Items are kept in one insertion-ordered dict keyed by ``(namespace, key)``, which gives
    ``search`` its insertion order for free; overwriting a key keeps its position and (as in
    LangGraph) resets both ``created_at`` and ``updated_at``.

    Values are deep-copied on the way in and out, so neither the caller mutating a dict it
    passed to ``put`` nor mutating an item it got back can change what is stored -- the
    same isolation the SQL stores give by serializing to JSON.

    ``index={"embed": ..., "dims": ..., "fields": [...]}`` enables semantic search: each
    put embeds the configured fields (see :mod:`threadloom.store.embed`) and
    ``search(..., query=...)`` ranks by cosine similarity. Embedding happens before the
    batch takes the lock, so a failing model changes nothing.
    """

    def __init__(self, *, index: IndexConfig | None = None) -> None:
        self._index = None if index is None else SemanticIndex(index, "InMemoryStore")
        self.index_config: IndexConfig | None = (
            None if self._index is None else self._index.config  # type: ignore[assignment]
        )
        self._items: dict[tuple[tuple[str, ...], str], Item] = {}
        # (namespace, key) -> the (field, vector) pairs of an indexed item
        self._vectors: dict[tuple[tuple[str, ...], str], list[tuple[str, list[float]]]] = {}
        # Batches may come from several threads (sync nodes run in a thread pool).
        self._lock = threading.RLock()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Validate every op, then run them in order under one lock (atomic per batch)."""
        checked = _validate_ops(ops, semantic=self._index is not None)
        vectors: dict[int, Any] = {}
        queries: dict[int, Any] = {}
        if self._index is not None:
            vectors = self._index.embed_puts(checked)
            queries = self._index.embed_queries(checked)
        return self._apply(checked, vectors, queries)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Like :meth:`batch`; the embedding model is called through its async methods."""
        checked = _validate_ops(ops, semantic=self._index is not None)
        vectors: dict[int, Any] = {}
        queries: dict[int, Any] = {}
        if self._index is not None:
            vectors = await self._index.aembed_puts(checked)
            queries = await self._index.aembed_queries(checked)
        return self._apply(checked, vectors, queries)

    def _apply(
        self, ops: list[Op], vectors: dict[int, Any], queries: dict[int, Any]
    ) -> list[Result]:
        with self._lock:
            return [
                self._run(op, vectors.get(i), queries.get(i)) for i, op in enumerate(ops)
            ]

    def _run(self, op: Op, vectors: Any = None, query: Any = None) -> Result:
        if isinstance(op, GetOp):
            item = self._items.get((tuple(op.namespace), op.key))
            return None if item is None else _copy_item(item)
        if isinstance(op, PutOp):
            self._put(op, vectors)
            return None
        if isinstance(op, SearchOp):
            if query is not None:
                return self._semantic_search(op, query)
            return self._search(op)
        if isinstance(op, ListNamespacesOp):
            return _list_namespaces({ns for ns, _ in self._items}, op)
        raise TypeError(f"Unknown store operation: {op!r}")  # pragma: no cover

    def _put(self, op: PutOp, vectors: Any = None) -> None:
        slot = (tuple(op.namespace), op.key)
        self._vectors.pop(slot, None)
        if op.value is None:
            self._items.pop(slot, None)
            return
        if vectors:
            self._vectors[slot] = vectors
        now = _now()
        # Assigning to an existing dict key keeps its position (insertion order).
        self._items[slot] = Item(
            value=copy.deepcopy(op.value),
            key=op.key,
            namespace=slot[0],
            created_at=now,
            updated_at=now,
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        conditions = _parse_filter(op.filter)
        results: list[SearchItem] = []
        skipped = 0
        if op.limit == 0:
            return results
        for (namespace, _key), item in self._items.items():
            if namespace[: len(prefix)] != prefix or not _matches(item.value, conditions):
                continue
            if skipped < op.offset:
                skipped += 1
                continue
            results.append(_search_item(item))
            if len(results) >= op.limit:
                break
        return results


    def _semantic_search(self, op: SearchOp, query: list[float]) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        conditions = _parse_filter(op.filter)
        candidates = [
            (item, [vector for _field, vector in self._vectors.get(slot, ())])
            for slot, item in self._items.items()
            if slot[0][: len(prefix)] == prefix and _matches(item.value, conditions)
        ]
        return [
            _search_item(item, score) for item, score in rank(candidates, query, op.offset,
                                                              op.limit)
        ]


def _copy_item(item: Item) -> Item:
    return Item(
        value=copy.deepcopy(item.value),
        key=item.key,
        namespace=item.namespace,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _search_item(item: Item, score: Any = None) -> SearchItem:
    return SearchItem(
        item.namespace,
        item.key,
        copy.deepcopy(item.value),
        item.created_at,
        item.updated_at,
        score,
    )
