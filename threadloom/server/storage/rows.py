"""Rows <-> records, shared by the SQL storages (``SqliteStorage``, ``PostgresStorage``).

Both keep the same columns: JSON values as JSON text (so any JSON the API accepts is
stored as sent - PostgreSQL's ``jsonb`` would refuse ``\\u0000``), timestamps as ISO
8601 strings (the records' own format, which sorts as time does). This module holds the
column lists, the row decoders, the sort and paging rules, and the record updates that
both compute in Python (a thread's merged fields, an assistant's next version).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from threadloom.server import serde
from threadloom.server.records import containment, matches, now_iso

__all__ = [
    "ASSISTANT_COLS",
    "ASSISTANT_SORT",
    "CRON_COLS",
    "CRON_SORT",
    "PENDING_THREADS",
    "PENDING_THREADS_INDEX",
    "RUN_COLS",
    "THREAD_COLS",
    "THREAD_SORT",
    "THREAD_SEARCH_INDEXES",
    "ThreadPage",
    "assistant_row",
    "cron_row",
    "ended_thread_sets",
    "string_equalities",
    "merge_thread",
    "next_assistant_version",
    "order_by",
    "page",
    "public_thread",
    "run_row",
    "statuses_of",
    "thread_row",
    "thread_values",
    "to_json",
    "value_needles",
]


def to_json(value: Any) -> str:
    """``value`` as JSON text."""
    return serde.dumps(value).decode()


ASSISTANT_COLS = (
    "assistant_id, graph_id, name, description, config, context, metadata, version, "
    "created_at, updated_at"
)
THREAD_COLS = (
    'thread_id, created_at, updated_at, state_updated_at, metadata, status, config, "values", '
    "interrupts, error"
)
RUN_COLS = (
    "run_id, thread_id, assistant_id, created_at, updated_at, status, metadata, kwargs, "
    "multitask_strategy, cancel_action, attempt"
)
CRON_COLS = (
    "cron_id, assistant_id, thread_id, user_id, schedule, timezone, end_time, payload, "
    "metadata, enabled, on_run_completed, next_run_date, created_at, updated_at"
)

THREAD_SORT = {"thread_id", "status", "created_at", "updated_at", "state_updated_at"}

PENDING_THREADS = (
    "status = 'interrupted' OR (status IN ('busy', 'error') AND interrupts IS NOT NULL "
    "AND interrupts NOT IN ('{}', 'null'))"
)
"""The threads that may have something waiting for a person (``Storage.pending_threads``):
interrupted ones, and busy or failed ones still holding interrupts - a thread's pending
items come from its interrupts, or from its status alone when interrupted with none
(``services.approvals.pending_items``). The predicate of the partial index
``PENDING_THREADS_INDEX``, written the same way in the queries, so that a look at what is
pending reads those threads alone, however many idle or failed threads there are."""

THREAD_COLS_WITHOUT_VALUES = THREAD_COLS.replace('"values"', 'NULL AS "values"')
"""``THREAD_COLS`` with ``values`` NULL: a thread's record where its state values (an
agent's whole conversation, a large document) are not what the reader needs."""
PENDING_THREAD_COLS = THREAD_COLS_WITHOUT_VALUES
"""``THREAD_COLS`` for ``Storage.pending_threads``: what waits is in a thread's interrupts
and status - its state values are left unread."""
PENDING_THREADS_INDEX = (
    "CREATE INDEX IF NOT EXISTS server_threads_pending ON server_threads (created_at) "
    f"WHERE {PENDING_THREADS}"
)
ASSISTANT_SORT = {"assistant_id", "created_at", "updated_at", "name", "graph_id"}
CRON_SORT = {"cron_id", "assistant_id", "thread_id", "next_run_date", "created_at",
             "updated_at", "end_time"}


def assistant_row(row: Sequence[Any]) -> dict[str, Any]:
    """An assistant record from a row of ``ASSISTANT_COLS``."""
    return {
        "assistant_id": row[0],
        "graph_id": row[1],
        "name": row[2],
        "description": row[3],
        "config": serde.loads(row[4]),
        "context": serde.loads(row[5]),
        "metadata": serde.loads(row[6]),
        "version": row[7],
        "created_at": row[8],
        "updated_at": row[9],
    }


def thread_version(updated_at: str, status: str) -> str:
    """A thread record's version (``Storage.pending_thread_versions``): every write to a
    thread sets its ``updated_at``."""
    return f"{updated_at} {status}"


def thread_row(row: Sequence[Any]) -> dict[str, Any]:
    """A thread record from a row of ``THREAD_COLS``."""
    out = {
        "thread_id": row[0],
        "created_at": row[1],
        "updated_at": row[2],
        "state_updated_at": row[3],
        "metadata": serde.loads(row[4]),
        "status": row[5],
        "config": serde.loads(row[6]),
        "values": serde.loads(row[7]),
    }
    if row[8] is not None:
        out["interrupts"] = serde.loads(row[8])
    if row[9] is not None:
        out["error"] = serde.loads(row[9])
    elif row[8] is not None:  # a thread that has run shows ``error: null``, as the
        out["error"] = None   # reference's does (a new thread has neither key)
    return out


def run_row(row: Sequence[Any]) -> dict[str, Any]:
    """A run record from a row of ``RUN_COLS``."""
    out = {
        "run_id": row[0],
        "thread_id": row[1],
        "assistant_id": row[2],
        "created_at": row[3],
        "updated_at": row[4],
        "status": row[5],
        "metadata": serde.loads(row[6]),
        "kwargs": serde.loads(row[7]),
        "multitask_strategy": row[8],
        "attempt": row[10],
    }
    if row[9] is not None:
        out["cancel_reason"] = row[9]
    return out


def cron_row(row: Sequence[Any]) -> dict[str, Any]:
    """A cron record from a row of ``CRON_COLS``."""
    return {
        "cron_id": row[0],
        "assistant_id": row[1],
        "thread_id": row[2],
        "user_id": row[3],
        "schedule": row[4],
        "timezone": row[5],
        "end_time": row[6],
        "payload": serde.loads(row[7]),
        "metadata": serde.loads(row[8]),
        "enabled": bool(row[9]),
        "on_run_completed": row[10],
        "next_run_date": row[11],
        "created_at": row[12],
        "updated_at": row[13],
    }


def order_by(sort_by: str | None, sort_order: str | None, allowed: set[str],
             default: str) -> str:
    """An ``ORDER BY`` clause from a client's sort request (unknown columns: ``default``;
    descending unless ``asc``)."""
    column = sort_by if sort_by in allowed else default
    direction = "ASC" if (sort_order or "").lower() == "asc" else "DESC"
    return f"{column} {direction}"


def statuses_of(status: str | Sequence[str]) -> list[str]:
    """A thread search's ``status`` filter as a list: one status, or any of several (one
    query, so a thread changing status meanwhile is seen once, in one of them)."""
    return [status] if isinstance(status, str) else list(status)


THREAD_SEARCH_INDEXES = (
    "CREATE INDEX IF NOT EXISTS server_threads_created ON server_threads (created_at)",
    "CREATE INDEX IF NOT EXISTS server_threads_status_created ON server_threads "
    "(status, created_at)",
    "DROP INDEX IF EXISTS server_threads_status",  # the new one's prefix
)
"""Threads in the order a search returns them by default (newest first), over all
threads and by status: a page of ``threads.search`` reads its own rows, not every thread
sorted (``created_at`` never changes; the status index it replaces was kept up to date
on every status change as this one is)."""


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f]")
_JSON_VERBATIM = re.compile(r'[\x20-\x21\x23-\x5b\x5d-\x7e]+')  # printable ASCII but " and \\


def string_equalities(metadata: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The ``(JSON path, string)`` pairs of a metadata filter SQLite can check first:
    the strings a thread's metadata must hold for ``matches`` to pass it - at a key, or
    under keys of nested dicts (``records.containment``'s strings outside lists), every
    key a plain name - an auth handler's ``{"owner": ...}``, a graph or user id,
    ``{"prefs": {"lang": "fr"}}``. The rows the database lets through are a superset of
    those ``matches`` passes and are still checked by it (``ThreadPage``): a search
    reads the rows that can match, not every row of the table, in Python. Strings with
    control characters (``json_extract`` does not give back a NUL) or that are not
    UTF-8 (a lone surrogate) are left to ``matches``.

    (PostgreSQL asks an index of the whole document instead.)"""
    found: list[tuple[str, str]] = []

    def walk(path: str, doc: Mapping[str, Any]) -> None:
        for key, want in doc.items():
            if not _PLAIN_KEY.fullmatch(key):
                continue
            if isinstance(want, Mapping):
                walk(f'{path}."{key}"', want)
            elif type(want) is str and _plain_text(want):
                found.append((f'{path}."{key}"', want))

    walk("$", containment(metadata) or {})
    return found


def value_needles(values: Mapping[str, Any] | None, most: int = 8) -> list[str]:
    """Pieces of JSON text a thread's state values must hold for a ``values`` filter to
    pass them: each key and string of the filter (``records.containment``'s) quoted as
    JSON writes it - only those of printable ASCII without ``"`` or ``\\``, which every
    JSON writer leaves as they are - the longest first, at most ``most``. A database
    looks for them in the stored text (``strpos``, ``instr``) before a thread's values
    are decoded: a search by values reads the states that can match, and ``matches``
    still decides."""
    found: set[str] = set()

    def walk(doc: Any) -> None:
        if isinstance(doc, Mapping):
            for key, value in doc.items():
                found.add(key)
                walk(value)
        elif isinstance(doc, list):
            for item in doc:
                walk(item)
        elif isinstance(doc, str):
            found.add(doc)

    walk(containment(values) or {})
    quoted = [f'"{text}"' for text in found if text and _JSON_VERBATIM.fullmatch(text)]
    return sorted(quoted, key=lambda q: (-len(q), q))[:most]


def _plain_text(text: str) -> bool:
    """Whether ``text`` has no control character and is UTF-8."""
    if _CONTROL.search(text):
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class ThreadPage:
    """A page of a thread search, filled from rows of ``THREAD_COLS`` in the search's
    order as the storage reads them (sans I/O: the storage feeds it until ``full``).

    Each row is decoded and kept when its metadata and values contain the search's
    filters (``matches``); the first ``offset`` kept rows are skipped; reading stops
    after ``limit`` (< 0: none) - a page near the front costs its own rows, not a
    decode of every thread. Without filters the query itself can page (``window``).
    """

    __slots__ = ("limit", "metadata", "rows", "skip", "values")

    def __init__(self, metadata: dict[str, Any] | None, values: dict[str, Any] | None,
                 limit: int, offset: int) -> None:
        self.metadata = metadata or {}
        self.values = values or {}
        self.limit = limit
        self.skip = offset
        self.rows: list[dict[str, Any]] = []

    @property
    def full(self) -> bool:
        """Whether the page holds ``limit`` rows (read no further)."""
        return 0 <= self.limit <= len(self.rows)

    def window(self) -> tuple[int | None, int] | None:
        """``(limit, offset)`` for the query to apply itself (limit None: all) when no
        row is filtered out here - the page then keeps every row it is given - else
        None (the query reads on, in order, until the page is full)."""
        if self.metadata or self.values:
            return None
        offset, self.skip = self.skip, 0
        return (self.limit if self.limit >= 0 else None), offset

    def add(self, rows: Iterable[Sequence[Any]]) -> bool:
        """Take ``rows`` (an iterator is read only as far as needed); True once full."""
        if self.full:
            return True
        for row in rows:
            # the metadata alone first: most rows a filter passes over are decoded no
            # further
            if self.metadata and not matches(serde.loads(row[4]), self.metadata):
                continue
            record = thread_row(row)
            if self.values and not matches(record["values"], self.values):
                continue
            if self.skip:
                self.skip -= 1
                continue
            self.rows.append(record)
            if self.full:
                return True
        return False


def page(rows: list[dict[str, Any]], limit: int, offset: int) -> list[dict[str, Any]]:
    """One page of filtered rows (``limit`` < 0: all after ``offset``)."""
    return rows[offset: offset + limit] if limit >= 0 else rows[offset:]


def merge_thread(record: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``record`` with ``Storage.update_thread``'s ``fields`` applied (metadata merged;
    status, config, values, interrupts, error replaced; ``state_updated`` bumps
    ``state_updated_at``), ``updated_at`` now."""
    rec = dict(record)
    now = now_iso()
    if fields.get("metadata") is not None:
        rec["metadata"] = {**rec["metadata"], **fields["metadata"]}
    for key in ("status", "config", "values", "interrupts", "error"):
        if key in fields:
            rec[key] = fields[key]
    rec["updated_at"] = now
    if fields.get("state_updated"):
        rec["state_updated_at"] = now
    return rec


def ended_thread_sets(fields: dict[str, Any], now: str, param: str
                      ) -> tuple[list[str], list[Any]]:
    """The ``SET`` assignments (and their parameters, ``param`` the dialect's
    placeholder) that write a run's end to its thread without reading the thread first:
    ``updated_at`` now, ``state_updated_at`` too when ``state_updated``, and ``config``,
    ``values``, ``interrupts``, ``error`` as given - what ``merge_thread`` makes of
    ``fields`` without ``metadata`` (which is merged, so not among them); the caller
    adds ``status``."""
    if "metadata" in fields:
        raise ValueError("end_run/finish_run set a run's end (status, values, "
                         "interrupts, error, config); merge metadata with update_thread")
    sets: list[str] = [f"updated_at = {param}"]
    args: list[Any] = [now]
    if fields.get("state_updated"):
        sets.append(f"state_updated_at = {param}")
        args.append(now)
    if "config" in fields:
        sets.append(f"config = {param}")
        args.append(to_json(fields["config"] or {}))
    for key in ("values", "interrupts", "error"):
        if key in fields:
            sets.append(f'"{key}" = {param}')
            args.append(None if fields[key] is None else to_json(fields[key]))
    return sets, args


def thread_values(rec: dict[str, Any]) -> tuple[Any, ...]:
    """The UPDATE parameters of a merged thread: updated_at, state_updated_at, metadata,
    status, config, values, interrupts, error."""
    return (
        rec["updated_at"], rec["state_updated_at"], to_json(rec["metadata"]), rec["status"],
        to_json(rec.get("config") or {}),
        None if rec.get("values") is None else to_json(rec["values"]),
        None if rec.get("interrupts") is None else to_json(rec["interrupts"]),
        None if rec.get("error") is None else to_json(rec["error"]),
    )


def public_thread(rec: dict[str, Any]) -> dict[str, Any]:
    """A merged thread as ``thread_row`` would read it back (no null interrupts; a null
    error only beside interrupts)."""
    if rec.get("interrupts") is None:
        rec.pop("interrupts", None)
        if rec.get("error") is None:
            rec.pop("error", None)
    elif rec.get("error") is None:
        rec["error"] = None
    return rec


def next_assistant_version(current: dict[str, Any], changes: dict[str, Any],
                           latest: int | None) -> dict[str, Any]:
    """The assistant's new current version: ``changes`` applied (graph_id, config,
    context, name, description replace; metadata merges), version after ``latest``."""
    new = dict(current)
    for key in ("graph_id", "config", "context", "name", "description"):
        if changes.get(key) is not None:
            new[key] = changes[key]
    if changes.get("metadata") is not None:
        new["metadata"] = {**current["metadata"], **changes["metadata"]}
    new["version"] = int(latest or current["version"]) + 1
    new["updated_at"] = now_iso()
    return new
