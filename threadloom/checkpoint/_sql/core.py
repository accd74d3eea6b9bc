"""The SQL savers' algorithm, written once for SQLite and Postgres, sync and async.

Every method of ``SqlCore`` that touches the database is a generator of ``Query`` or
``Batch`` (see ``statements``): it decides what to read and write, a backend driver executes
it. So what to store, how a stale head is detected, how delta chains are rebuilt and what
a prune may delete are the same code on every backend, with no I/O of their own.

``SqlCore`` only combines the operations, which live by concern: ``read`` (``get_tuple``,
``list`` pages), ``write`` (``put``, ``put_writes``, ``settle``), ``housekeeping``
(migrations, deleting, pruning, copying, expiring), all over the state of ``base.SqlBase``.

Round trips on the hot path (what a graph run and ``get_state`` do): ``get_tuple`` is one
statement, plus one for values the value cache does not hold (``read``); ``put`` is one
batch - one round trip on PostgreSQL - whose every insert is conditional on the head check
and the delta-base check, no SELECT-then-INSERT on the way; ``put_writes`` is one batch
(``write``).

Each of these steps is self-contained, so the drivers may run them without an enclosing
transaction (each statement or batch is atomic on its own); housekeeping (``prune``,
``delete_thread``, ``expire``, ``migrate``: ``housekeeping``) runs as one transaction
(on Postgres one pipeline: a round trip per statement whose rows it needs, plus one).

Storage layout (tables in ``statements``): a checkpoint row without values (serialized with the
saver's serde) and JSON metadata; one blob row per (thread, namespace, channel, version)
written only for channels in ``new_versions`` - either the whole value, or, for a list
that grew, the appended items plus ``base_version``/``root_version`` (``_values.delta``); one row
per pending write.

Damaged rows raise ``CorruptCheckpointError`` naming the thread, namespace and checkpoint;
decoding goes through the serializer, which never runs code named by stored bytes. A
serializer that binds values to their place (``EncryptedSerializer``) is given each row's
place (``serde.place``: the checkpoint row, the value's (channel, version, base, root),
the write's (checkpoint, task, index, channel)), so a row copied elsewhere is refused;
``copy_thread`` then reseals the copies for their new thread (``reseal``).
"""

from __future__ import annotations

from threadloom.checkpoint._sql.housekeeping import SqlHousekeeping
from threadloom.checkpoint._sql.read import SqlReads
from threadloom.checkpoint._sql.write import SqlWrites

__all__ = ["SqlCore"]


class SqlCore(SqlReads, SqlWrites, SqlHousekeeping):
    """The saver operations as generators of ``Query`` (see the module docstring):
    ``SqlCore(dialect, serde, delta_cache, value_cache)``."""
