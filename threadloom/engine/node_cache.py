"""Where cached node results live in a ``BaseCache`` and how they are keyed.

A node with a ``CachePolicy`` has its writes (the ``(channel, value)`` list it produced:
state updates and the triggers of the nodes that follow) stored under

* namespace ``(WRITES_NS, <module.qualname of its function>, <node name>)``: so one
  node's entries can be cleared, and two graphs sharing a cache with a same-named node
  but different functions never read each other's results;
* key ``key_func(input)`` (a string; other values are hashed to one).

The functional API's tasks use the same scheme with the task's function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from threadloom.types import CachePolicy, default_cache_key

__all__ = ["WRITES_NS", "cache_key", "decode_writes", "encode_writes", "node_namespace"]

WRITES_NS = "__threadloom_writes__"


def identifier(fn: Any) -> str:
    """``module.qualname`` of a function (or of a callable object's class, or a
    runnable's name), to tell apart same-named nodes of different graphs."""
    target = getattr(fn, "func", None) if not hasattr(fn, "__qualname__") else fn
    target = target if target is not None else fn
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if qualname is None:
        cls = type(target)
        module, qualname = cls.__module__, cls.__qualname__
        name = getattr(target, "name", None)
        if isinstance(name, str):
            qualname = f"{qualname}:{name}"
    return f"{module}.{qualname}" if module else str(qualname)


def node_namespace(name: str, fn: Any) -> tuple[str, ...]:
    """The cache namespace of the node (or task) ``name`` running ``fn``."""
    return (WRITES_NS, identifier(fn), name)


def cache_key(policy: CachePolicy[Any], *args: Any, **kwargs: Any) -> str:
    """``policy.key_func(*args, **kwargs)`` as a string key."""
    key = policy.key_func(*args, **kwargs)
    if isinstance(key, str):
        return key
    return default_cache_key(key)


def encode_writes(writes: Sequence[tuple[str, Any]]) -> list[list[Any]]:
    """Writes as the cache stores them (lists: every serializer keeps lists)."""
    return [[channel, value] for channel, value in writes]


def decode_writes(stored: Any) -> list[tuple[str, Any]] | None:
    """Writes back from :func:`encode_writes`' form; ``None`` if ``stored`` is not one."""
    if not isinstance(stored, list | tuple):
        return None
    writes = []
    for item in stored:
        if not isinstance(item, list | tuple) or len(item) != 2 or not isinstance(item[0], str):
            return None
        writes.append((item[0], item[1]))
    return writes
