"""Sealing stored rows anew, for the SQL savers: ``copy_thread`` under an encrypting
serializer, and ``rekey`` (``threadloom.checkpoint.rekey``).

Every table that holds encrypted values is described once (:data:`TABLES`): its primary
key, the columns a value's place is made of (``serde.place``), and where the sealed value
is. Two operations (generators of ``Query``, as in ``_sql.read``) work on any of them:

* :func:`reseal_thread` - after a thread's rows were copied to another thread id, seal
  each copied value for its new place (run in the copy's transaction);
* :func:`rekey_batch` - the next rows (in primary-key order) that are not sealed with the
  serializer's write key, sealed again for the same place, each ``UPDATE`` conditional
  on the row being unchanged since it was read. One batch is one transaction, so a crash
  loses nothing and a rerun carries on (sealed rows are skipped).

Values are resealed without being decoded (``EncryptedSerializer.reseal``): no code runs
on stored bytes, a value of a type this process does not know is carried over as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from threadloom.checkpoint._sql.audit import AUDIT
from threadloom.checkpoint._sql.statements import BLOBS, CHECKPOINTS, WRITES, Dialect, Op, Query
from threadloom.checkpoint._stored.auditcodec import reseal_text
from threadloom.checkpoint._stored.decode import as_bytes
from threadloom.checkpoint.serde.base import CorruptCheckpointError
from threadloom.checkpoint.serde.place import (
    Place,
    audit_head_place,
    audit_place,
    checkpoint_place,
    place_name,
    value_place,
    write_place,
)

__all__ = ["TABLES", "SealedTable", "rekey_batch", "reseal_thread"]


@dataclass(frozen=True)
class SealedTable:
    """A table holding sealed values."""

    name: str
    keys: tuple[str, ...]  # the primary key, thread_id first
    extra: tuple[str, ...]  # other columns the place is made of
    data: str  # the column holding the value
    typed: bool  # True: a (type, bytes) value; False: sealed JSON text (the audit log)
    place: Callable[..., Place]  # (thread_id, *other keys, *extra) -> the value's place


def _audit_place(thread_id: str, seq: Any) -> Place:
    return audit_head_place(thread_id) if int(seq) == 0 else audit_place(thread_id, int(seq))


def _write_place(
    thread_id: str, ns: str, checkpoint_id: str, task_id: str, idx: Any, channel: str
) -> Place:
    return write_place(thread_id, ns, checkpoint_id, task_id, int(idx), channel)


TABLES: tuple[SealedTable, ...] = (
    SealedTable(
        CHECKPOINTS, ("thread_id", "checkpoint_ns", "checkpoint_id"), (), "checkpoint", True,
        checkpoint_place,
    ),
    SealedTable(
        BLOBS, ("thread_id", "checkpoint_ns", "channel", "version"),
        ("base_version", "root_version"), "blob", True, value_place,
    ),
    SealedTable(
        WRITES, ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"), ("channel",),
        "blob", True, _write_place,
    ),
    SealedTable(AUDIT, ("thread_id", "seq"), (), "record", False, _audit_place),
)  # fmt: skip


def _select(t: SealedTable) -> str:
    typ = "type" if t.typed else "NULL"
    return f"SELECT {', '.join((*t.keys, *t.extra))}, {typ}, {t.data} FROM {t.name}"


def _update(d: Dialect, t: SealedTable) -> str:
    where = " AND ".join(f"{k} = ?" for k in t.keys)
    if t.typed:
        return (
            f"UPDATE {t.name} SET type = ?, {t.data} = {d.blob_param} WHERE {where} "
            f"AND type = ? AND {t.data} = {d.blob_param}"
        )
    return f"UPDATE {t.name} SET {t.data} = ? WHERE {where} AND {t.data} = ?"


def _resealed(
    serde: Any, t: SealedTable, row: Sequence[Any], place: Place, new_place: Place | None
) -> tuple[Any, ...] | None:
    """The new (type, data) of a row (typed tables) or (data,) (the audit log); None when
    nothing changes."""
    typ, data = row[-2], as_bytes(row[-1])
    try:
        if not t.typed:
            text = reseal_text(serde, data, place, new_place)
            return None if text is None else (text,)
        if typ == "empty":
            return None
        if new_place is None and serde.is_current(typ):
            return None
        return tuple(serde.reseal((typ, data), place, new_place))
    except CorruptCheckpointError as exc:
        raise type(exc)(f"Cannot re-encrypt the stored {place_name(place)}: {exc}") from exc


def _update_query(
    d: Dialect, t: SealedTable, row: Sequence[Any], new: tuple[Any, ...], keys: Sequence[Any]
) -> Query:
    old = (row[-2], as_bytes(row[-1])) if t.typed else (row[-1],)
    return Query(_update(d, t), [*new, *keys, *old])


def reseal_thread(d: Dialect, serde: Any, source: str, target: str) -> Op[int]:
    """Seal the values of thread ``target`` - rows just copied from ``source``, still
    sealed for ``source``'s places - for their places in ``target``; how many."""
    count = 0
    for t in TABLES:
        if t.name == AUDIT:  # copy_thread copies checkpoints, not the audit log
            continue
        rows = yield Query(f"{_select(t)} WHERE thread_id = ?", (target,), fetch=True)
        updates = []
        for row in rows or ():
            rest = row[1 : len(t.keys) + len(t.extra)]
            new = _resealed(serde, t, row, t.place(source, *rest), t.place(target, *rest))
            if new is not None:
                updates.append(_update_query(d, t, row, new, row[: len(t.keys)]))
        if updates:
            yield tuple(updates)
            count += len(updates)
    return count


def rekey_batch(
    d: Dialect, serde: Any, t: SealedTable, after: Sequence[Any] | None, size: int
) -> Op[tuple[tuple[Any, ...] | None, int, int]]:
    """Reseal, with the serializer's write key, up to ``size`` rows of ``t`` after the
    primary key ``after`` that are not sealed with it yet.

    Returns (the last primary key read, or None at the end of the table; rows read; rows
    resealed). Run it as one transaction.
    """
    where: list[str] = []
    params: list[Any] = []
    if t.typed:  # rows sealed with the write key end their tag with ":<key id>"
        where.append("type <> 'empty' AND type NOT LIKE ? ESCAPE '!'")
        kid = serde.key_id.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params.append(f"%:{kid}")
    if after is not None:
        where.append(f"({', '.join(t.keys)}) > ({', '.join('?' for _ in t.keys)})")
        params += list(after)
    sql = _select(t)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {', '.join(t.keys)} LIMIT ?"
    rows = yield Query(sql, [*params, size], fetch=True)
    rows = rows or []
    updates = []
    for row in rows:
        keys = row[: len(t.keys)]
        new = _resealed(serde, t, row, t.place(*row[: len(t.keys) + len(t.extra)]), None)
        if new is not None:
            updates.append(_update_query(d, t, row, new, keys))
    if updates:
        yield tuple(updates)
    last = tuple(rows[-1][: len(t.keys)]) if len(rows) >= size else None
    return last, len(rows), len(updates)
