"""Node result caches: ``BaseCache`` and its backends.

A node (or task) given a ``CachePolicy`` has its writes stored in the graph's cache
(``compile(cache=...)``) under a key computed from its input; a later run that reaches
the same node with the same input replays the stored writes instead of running it.

* :class:`~threadloom.cache.memory.InMemoryCache` - a dict in this process.
* :class:`~threadloom.cache.sqlite.SqliteCache` - a table in a SQLite file (stdlib only).
* :class:`~threadloom.cache.redis.RedisCache` - keys in Redis (needs ``redis``), shared by
  every process pointed at the same server.
"""

from threadloom.cache.base import BaseCache, FullKey, Namespace

__all__ = ["BaseCache", "FullKey", "Namespace"]
