"""The cache interface every backend implements.

Entries are addressed by a :data:`FullKey`, ``(namespace, key)``: the namespace is a tuple
of strings naming what was cached (for node results, ``threadloom.cache.keys`` builds it
from the node's name) so that :meth:`BaseCache.clear` can drop one node's entries; the key
is a string identifying the input. Values are stored through ``serde`` (the checkpoint
serializer by default), so a cached value is a copy: mutating what a run got back never
changes the cache, and only allowlisted types are rebuilt on the way out.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from threadloom.checkpoint.base import SerializerProtocol

__all__ = ["BaseCache", "FullKey", "Namespace"]

ValueT = TypeVar("ValueT")

Namespace = tuple[str, ...]
FullKey = tuple[Namespace, str]


class BaseCache(ABC, Generic[ValueT]):
    """A key-value cache with per-entry time to live.

    Subclasses implement :meth:`get`, :meth:`set` and :meth:`clear`; the async methods
    default to calling them (override them for a backend with real async I/O).

    Args:
        serde: turns values into ``(type, bytes)`` and back; defaults to
            ``default_serializer()`` (``MsgpackSerializer(strict=False)``), the checkpoint
            savers' default.
    """

    serde: SerializerProtocol

    def __init__(self, *, serde: SerializerProtocol | None = None) -> None:
        if serde is None:
            from threadloom.checkpoint.serde.msgpack import default_serializer

            serde = default_serializer()
        self.serde = serde

    @abstractmethod
    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """The live (not expired) entries among ``keys``; missing keys are left out."""

    @abstractmethod
    def set(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Store each ``key: (value, ttl)``; ``ttl`` is in seconds, ``None`` for no expiry."""

    @abstractmethod
    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Drop the entries of ``namespaces`` (all entries when ``None``)."""

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, ValueT]:
        """Async :meth:`get`."""
        return self.get(keys)

    async def aset(self, pairs: Mapping[FullKey, tuple[ValueT, int | None]]) -> None:
        """Async :meth:`set`."""
        self.set(pairs)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        """Async :meth:`clear`."""
        self.clear(namespaces)

    # -- helpers for backends ------------------------------------------------------------

    def _encode(self, value: Any) -> tuple[str, bytes]:
        return self.serde.dumps_typed(value)

    def _decode(self, stored: tuple[str, bytes]) -> Any:
        return self.serde.loads_typed(stored)


def check_key(key: Any) -> FullKey:
    """``key`` if it is a ``(tuple of str, str)`` pair, else a ``TypeError`` naming it."""
    if (
        isinstance(key, tuple)
        and len(key) == 2
        and isinstance(key[0], tuple)
        and all(isinstance(part, str) for part in key[0])
        and isinstance(key[1], str)
    ):
        return key
    raise TypeError(
        f"Cache keys are (namespace, key) pairs with a namespace tuple of strings and a "
        f"string key, got {key!r}."
    )


def check_ttl(ttl: Any) -> float | None:
    """A ``ttl`` in seconds as a float (``None`` for no expiry); rejects negatives."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0:
        raise ValueError(
            f"Cache ttl must be a non-negative number of seconds or None, got {ttl!r}."
        )
    return float(ttl)


def expiry_of(ttl: float | None, now: float | None = None) -> float | None:
    """The wall-clock time an entry stored now with ``ttl`` expires (``None``: never)."""
    if ttl is None:
        return None
    return (time.time() if now is None else now) + ttl
