"""``RedisCache``: cache entries as Redis keys, shared by every process using the server.

Each entry is one string key, ``<prefix><namespace as JSON>:<key>``, whose value is the
serializer's type tag, a NUL byte and the serialized bytes; a ttl becomes the key's own
Redis expiry. The client is yours (``redis.Redis(...)``, with the default
``decode_responses=False``: values are bytes); this module never imports ``redis`` itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from threadloom.cache.base import BaseCache, FullKey, Namespace, check_key, check_ttl
from threadloom.checkpoint.base import SerializerProtocol

__all__ = ["RedisCache"]

_GLOB_SPECIAL = set("*?[]\\")


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


class RedisCache(BaseCache[Any]):
    """A cache in Redis.

    Args:
        redis: a synchronous ``redis.Redis`` client (``decode_responses=False``).
        serde: value serializer (see :class:`~threadloom.cache.base.BaseCache`).
        prefix: put before every key, so several caches (or tests) can share a database;
            :meth:`clear` only touches keys under it.
    """

    def __init__(
        self,
        redis: Any,
        *,
        serde: SerializerProtocol | None = None,
        prefix: str = "threadloom:cache:",
    ) -> None:
        super().__init__(serde=serde)
        if not isinstance(prefix, str):
            raise TypeError(f"RedisCache prefix must be a string, got {prefix!r}.")
        self.redis = redis
        self.prefix = prefix

    def _ns_prefix(self, ns: Namespace) -> str:
        return f"{self.prefix}{json.dumps(list(ns), separators=(',', ':'))}:"

    def _redis_key(self, ns: Namespace, key: str) -> str:
        return self._ns_prefix(ns) + key

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        fulls = [check_key(k) for k in keys]
        if not fulls:
            return {}
        raw = self.redis.mget([self._redis_key(ns, key) for ns, key in fulls])
        out: dict[FullKey, Any] = {}
        for full, value in zip(fulls, raw, strict=True):
            if value is None:
                continue
            if isinstance(value, str):
                raise TypeError(
                    "RedisCache got text back from Redis: build the client with "
                    "decode_responses=False (the default), values are binary."
                )
            type_, sep, data = bytes(value).partition(b"\x00")
            if not sep:
                continue  # not written by this cache: treat as a miss
            out[full] = self._decode((type_.decode(), data))
        return out

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        rows = []
        for full, (value, ttl) in pairs.items():
            ns, key = check_key(full)
            seconds = check_ttl(ttl)
            type_, data = self._encode(value)
            rows.append((self._redis_key(ns, key), type_.encode() + b"\x00" + data, seconds))
        if not rows:
            return
        pipe = self.redis.pipeline()
        for key, payload, seconds in rows:
            if seconds is None:
                pipe.set(key, payload)
            elif seconds > 0:
                pipe.set(key, payload, px=max(1, int(seconds * 1000)))
            else:
                pipe.delete(key)  # a ttl of 0 has expired already
        pipe.execute()

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        if namespaces is None:
            patterns = [_glob_escape(self.prefix) + "*"]
        else:
            patterns = [_glob_escape(self._ns_prefix(tuple(ns))) + "*" for ns in namespaces]
        for pattern in patterns:
            batch = []
            for key in self.redis.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    self.redis.delete(*batch)
                    batch = []
            if batch:
                self.redis.delete(*batch)
