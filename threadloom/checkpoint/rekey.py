"""Re-encrypt a checkpoint store with the current key: key rotation, and migrations.

    from threadloom.checkpoint.rekey import rekey
    saver.serde = EncryptedSerializer.from_aes_gcm(new_key, old_keys=[old_key])
    report = rekey(saver)          # or: threadloom rekey --sqlite app.db

``rekey`` walks every table that holds encrypted values - checkpoints, channel values,
pending writes and the audit log - and seals each value that is not sealed with the
serializer's write key yet (an old key, no key id, not bound to its place, or - only
with ``allow_plaintext_reads=True`` - not encrypted at all) again with it, bound to its
place. Values are resealed without being decoded.

It is safe to stop at any point: the SQL savers work in batches of ``batch_size`` rows,
each one transaction whose updates apply only to rows unchanged since they were read, so
a crash rolls back at most the batch in flight and nothing is lost or half-written. It is
idempotent: a rerun skips what is done and carries on. Keep the old keys in ``old_keys``
until a run reports nothing left to do; only then may they go.

A row that cannot be read (damaged, an unknown key, or plaintext without the opt-in)
stops the run with its error (a ``CorruptCheckpointError`` naming the row); what was
resealed before it stays resealed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from threadloom.checkpoint._sql.reseal import TABLES, rekey_batch
from threadloom.checkpoint._sql.saver import AsyncSqlSaver, SyncSqlSaver
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.checkpoint.serde.place import binds

__all__ = ["RekeyReport", "arekey", "rekey"]

DEFAULT_BATCH = 500


@dataclass
class RekeyReport:
    """What a ``rekey`` run did: the write key's id, rows read and rows resealed per
    table (a rerun of a finished store reseals none)."""

    key_id: str
    scanned: dict[str, int] = field(default_factory=dict)
    resealed: dict[str, int] = field(default_factory=dict)

    @property
    def total_resealed(self) -> int:
        return sum(self.resealed.values())

    def count(self, table: str, scanned: int, resealed: int) -> None:
        self.scanned[table] = self.scanned.get(table, 0) + scanned
        self.resealed[table] = self.resealed.get(table, 0) + resealed


def _serde(saver: Any) -> Any:
    serde = getattr(saver, "serde", None)
    if not (binds(serde) and all(
        callable(getattr(serde, name, None)) for name in ("reseal", "is_current")
    )):
        raise TypeError(
            f"rekey needs a saver whose serializer encrypts (an EncryptedSerializer), got "
            f"{type(serde).__name__}: set saver.serde = EncryptedSerializer.from_aes_gcm("
            "new_key, old_keys=[...]) first."
        )
    return serde


def _batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


def rekey(saver: Any, *, batch_size: int = DEFAULT_BATCH) -> RekeyReport:
    """Reseal every value of ``saver``'s store with its serializer's write key (see the
    module docstring); returns what was done. ``InMemorySaver``, ``SqliteSaver`` and
    ``PostgresSaver`` (and, from a thread other than their loop's, the async savers)."""
    serde = _serde(saver)
    size = _batch_size(batch_size)
    report = RekeyReport(serde.key_id)
    if isinstance(saver, InMemorySaver):
        saver._rekey(report)
        return report
    if isinstance(saver, AsyncSqlSaver):
        return saver._bridge(arekey(saver, batch_size=size))
    if not isinstance(saver, SyncSqlSaver):
        raise TypeError(f"rekey does not know how to walk a {type(saver).__name__}'s store.")
    walk = _walk(saver, serde, size, report)
    try:
        op = next(walk)
        while True:
            op = walk.send(saver._run(op, write=True))
    except StopIteration:
        pass
    finally:
        saver.clear_cache()  # cached rows are the old ciphertexts
    return report


def _walk(
    saver: Any, serde: Any, size: int, report: RekeyReport
) -> Generator[Any, Any, None]:
    """The SQL savers' rekey as the operations to run, one transaction each (a batch of
    one table), in order; each one's result is sent back."""
    for table in TABLES:
        after = None
        while True:
            after, scanned, resealed = yield rekey_batch(
                saver.dialect, serde, table, after, size
            )
            report.count(table.name, scanned, resealed)
            if after is None:
                break


async def arekey(saver: Any, *, batch_size: int = DEFAULT_BATCH) -> RekeyReport:
    """Async ``rekey``: the async SQL savers run it on their connection; others in a
    worker thread."""
    if not isinstance(saver, AsyncSqlSaver):
        return await asyncio.to_thread(rekey, saver, batch_size=batch_size)
    serde = _serde(saver)
    report = RekeyReport(serde.key_id)
    walk = _walk(saver, serde, _batch_size(batch_size), report)
    try:
        op = next(walk)
        while True:
            op = walk.send(await saver._arun(op, write=True))
    except StopIteration:
        pass
    finally:
        saver.clear_cache()
    return report
