"""``InMemoryCache``: cache entries in a dict of this process (lost when it exits)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from threadloom.cache.base import BaseCache, FullKey, Namespace, check_key, check_ttl, expiry_of
from threadloom.checkpoint.base import SerializerProtocol

__all__ = ["InMemoryCache"]


class InMemoryCache(BaseCache[Any]):
    """Keeps serialized entries in memory, ``{namespace: {key: (type, bytes, expiry)}}``.

    Safe to share between threads. Expired entries are dropped when read.
    """

    def __init__(self, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self._data: dict[Namespace, dict[str, tuple[str, bytes, float | None]]] = {}
        self._lock = threading.RLock()

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        now = time.time()
        found: dict[FullKey, tuple[str, bytes]] = {}
        with self._lock:
            for full in keys:
                ns, key = check_key(full)
                entries = self._data.get(ns)
                entry = entries.get(key) if entries else None
                if entry is None:
                    continue
                type_, data, expiry = entry
                if expiry is not None and expiry <= now:
                    del entries[key]  # type: ignore[union-attr]
                    continue
                found[full] = (type_, data)
        return {full: self._decode(stored) for full, stored in found.items()}

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        now = time.time()
        rows = []
        for full, (value, ttl) in pairs.items():
            ns, key = check_key(full)
            type_, data = self._encode(value)
            rows.append((ns, key, (type_, data, expiry_of(check_ttl(ttl), now))))
        with self._lock:
            for ns, key, entry in rows:
                self._data.setdefault(ns, {})[key] = entry

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        with self._lock:
            if namespaces is None:
                self._data.clear()
            else:
                for ns in namespaces:
                    self._data.pop(tuple(ns), None)
