"""Durable audit log storage for the SQL savers: one table, append-only, hash-chained.

``threadloom_audit_log(thread_id, seq, record, created_at)`` holds a thread's audit
records (``threadloom.hitl.audit``) as JSON text, numbered from 1 per thread; the row
numbered 0 is the chain's anchor (``{"seq", "hash"}`` of the last record), moved in the
same transaction as every append, so a log cut short (its last records deleted) no
longer reaches its anchor. An append reads the thread's last record and inserts the
new ones chained after it (``chain_audit_records``) in one transaction;
``(thread_id, seq)`` is the primary key, so two concurrent appends cannot both take the
same place - one fails instead of forking the log.

The log goes with its thread: ``delete_thread`` and ``expire_paused`` delete its rows
(``SqlCore.delete_thread``), and ``prune`` keeps the ``audit_keep_last`` newest records
when the saver sets it (``prune_audit``: the older ones become one anchor record at the
last pruned record's place, so the chain still verifies; by default it keeps them all).

Under an encrypting serializer each record (and the anchor) is sealed for its place
(``_stored.auditcodec``); the chain covers the plaintext records.

The table comes with its own migration (``SQLITE_MIGRATION`` / ``POSTGRES_MIGRATION``),
appended to each saver's migration list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from threadloom.checkpoint._sql.statements import Dialect, Op, Query
from threadloom.checkpoint._stored.auditcodec import open_text, seal_text
from threadloom.checkpoint.base import (
    AuditRecord,
    audit_prune_marker,
    chain_audit_records,
    is_prune_marker,
)
from threadloom.checkpoint.serde.place import audit_head_place, audit_place, binds

__all__ = [
    "AUDIT",
    "POSTGRES_MIGRATION",
    "SQLITE_MIGRATION",
    "audit_head",
    "explained",
    "list_audit",
    "prune_audit",
    "put_audit",
]

AUDIT = "threadloom_audit_log"

SQLITE_MIGRATION: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS {AUDIT} (
        thread_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        record TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (thread_id, seq)
    )""",
)

POSTGRES_MIGRATION: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS {AUDIT} (
        thread_id TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        record TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, seq)
    )""",
)

# Appends to one thread's log take turns (Postgres: an advisory transaction lock of its
# own class, "tlau"; SQLite: BEGIN IMMEDIATE already serializes writers).
_LOCKS = {"postgres": "SELECT pg_advisory_xact_lock(1953259893, hashtext(?))"}


def put_audit(
    dialect: Dialect,
    thread_id: str,
    records: Sequence[AuditRecord],
    key: bytes | None = None,
    serde: Any = None,
) -> Op[list[AuditRecord]]:
    """Append ``records`` after the thread's last one (chained, sealed by ``serde`` when
    it encrypts) and move the anchor; the records as stored."""
    thread_id = str(thread_id)
    for record in records:
        json.dumps(record)  # a value JSON cannot hold fails here, before any I/O
    lock = _LOCKS.get(dialect.name)
    if lock:
        yield Query(lock, (thread_id,))
    rows = yield Query(
        f"SELECT seq, record FROM {AUDIT} WHERE thread_id = ? AND seq > 0 "
        "ORDER BY seq DESC LIMIT 1",
        (thread_id,),
        fetch=True,
    )
    last = open_text(serde, rows[0][1], audit_place(thread_id, rows[0][0])) if rows else None
    stored = chain_audit_records(last, thread_id, records, key, salt=binds(serde))
    now = time.time()
    for record in stored:
        text = seal_text(
            serde, json.dumps(record, ensure_ascii=False), audit_place(thread_id, record["seq"])
        )
        yield Query(
            f"INSERT INTO {AUDIT} (thread_id, seq, record, created_at) VALUES (?, ?, ?, ?)",
            (thread_id, record["seq"], text, now),
        )
    if stored:  # the anchor (row seq 0) moves with the append, in the same transaction
        head = seal_text(
            serde,
            json.dumps({"seq": stored[-1]["seq"], "hash": stored[-1]["hash"]}),
            audit_head_place(thread_id),
        )
        yield Query(
            f"INSERT INTO {AUDIT} (thread_id, seq, record, created_at) VALUES (?, 0, ?, ?) "
            "ON CONFLICT (thread_id, seq) DO UPDATE SET record = excluded.record, "
            "created_at = excluded.created_at",
            (thread_id, head, now),
        )
    return stored


def prune_audit(
    dialect: Dialect, thread_id: str, keep: int, key: bytes | None = None, serde: Any = None
) -> Op[None]:
    """Keep the ``keep`` newest records of the thread's log; the older ones are replaced
    by one anchor record (``audit_prune_marker``) at the last pruned record's place.
    The head row (seq 0) stays as it is: the log still ends where it did."""
    thread_id = str(thread_id)
    lock = _LOCKS.get(dialect.name)
    if lock:
        yield Query(lock, (thread_id,))
    rows = yield Query(
        f"SELECT seq, record FROM {AUDIT} WHERE thread_id = ? AND seq > 0 "
        "ORDER BY seq DESC LIMIT 1 OFFSET ?",
        (thread_id, int(keep)),
        fetch=True,
    )
    if not rows:
        return None  # no more than ``keep`` records
    seq, raw = rows[0]
    last = open_text(serde, raw, audit_place(thread_id, seq))
    if is_prune_marker(last):
        return None  # what is older than the newest ``keep`` is already pruned
    yield Query(
        f"DELETE FROM {AUDIT} WHERE thread_id = ? AND seq > 0 AND seq <= ?", (thread_id, seq)
    )
    marker = audit_prune_marker(last, key)
    text = seal_text(serde, json.dumps(marker, ensure_ascii=False), audit_place(thread_id, seq))
    yield Query(
        f"INSERT INTO {AUDIT} (thread_id, seq, record, created_at) VALUES (?, ?, ?, ?)",
        (thread_id, seq, text, time.time()),
    )
    return None


def list_audit(thread_id: str, serde: Any = None) -> Op[list[AuditRecord]]:
    """The thread's records, oldest first (opened by ``serde`` when sealed)."""
    thread_id = str(thread_id)
    rows = yield Query(
        f"SELECT seq, record FROM {AUDIT} WHERE thread_id = ? AND seq > 0 ORDER BY seq",
        (thread_id,),
        fetch=True,
    )
    return [open_text(serde, r[1], audit_place(thread_id, r[0])) for r in rows or ()]


def audit_head(thread_id: str, serde: Any = None) -> Op[dict[str, Any] | None]:
    """The thread's anchor ``{"seq", "hash"}``, or None."""
    thread_id = str(thread_id)
    rows = yield Query(
        f"SELECT record FROM {AUDIT} WHERE thread_id = ? AND seq = 0", (thread_id,),
        fetch=True,
    )
    return open_text(serde, rows[0][0], audit_head_place(thread_id)) if rows else None


@contextmanager
def explained() -> Iterator[None]:
    """A database created before the audit log existed says how to add it."""
    try:
        yield
    except Exception as exc:
        text = str(exc)
        if AUDIT in text and ("no such table" in text or "does not exist" in text):
            raise RuntimeError(
                f"The database has no {AUDIT} table yet: run saver.setup() once to apply "
                "the migration that adds it (idempotent; safe with other processes)."
            ) from exc
        raise
