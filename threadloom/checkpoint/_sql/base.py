"""What every operation of the SQL core works with: the dialect, the serializer and the
caches (``SqlBase``).

Why a module of its own: the core's operations are split by concern - reading (``read``),
writing (``write``), housekeeping (``housekeeping``) - into classes that ``core.SqlCore``
combines, and each of them reads the same state. Holding it here, once, lets each module
declare what it works with without importing the others.
"""

from __future__ import annotations

from threadloom.checkpoint._sql.statements import Dialect
from threadloom.checkpoint._values.cache import ValueCache
from threadloom.checkpoint._values.delta import DeltaCache
from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.serde.place import binds, dumps_at

__all__ = ["SqlBase"]


class SqlBase:
    """The state of ``core.SqlCore``: ``d`` the dialect, ``serde`` the serializer,
    ``cache`` the delta planner's heads, ``values`` the decoded values this process holds
    (by default none: ``ValueCache(max_bytes=0)``)."""

    def __init__(
        self,
        dialect: Dialect,
        serde: SerializerProtocol,
        cache: DeltaCache,
        values: ValueCache | None = None,
    ) -> None:
        self.d = dialect
        self.serde = serde
        self._dumps_at = dumps_at(serde)  # place-bound where the serializer binds
        self._binds = binds(serde)
        self.cache = cache
        self.values = values if values is not None else ValueCache(max_bytes=0)
