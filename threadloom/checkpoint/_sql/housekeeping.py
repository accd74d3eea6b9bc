"""The SQL savers' housekeeping, as generators of ``Query`` like the hot path (``read``,
``write``): schema migrations, deleting a thread, listing threads, pruning, deleting a
run's checkpoints, copying a thread, expiring paused threads, counting stored bytes.

Why apart from ``read`` and ``write``: none of it is on a run's path, and each operation
runs as one transaction behind the thread's lock (on PostgreSQL one pipeline: a round trip per
statement whose rows it needs, plus one), where the hot path's steps are self-contained.
What a prune may delete is decided once here for every backend: blobs survive while a
kept checkpoint references them or a kept delta chain runs through them
(``chains.needed_keys``). ``SqlHousekeeping`` is a base of ``core.SqlCore``; it works with
the state of ``base.SqlBase``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from threadloom.checkpoint._sql.audit import AUDIT
from threadloom.checkpoint._sql.base import SqlBase
from threadloom.checkpoint._sql.reseal import reseal_thread
from threadloom.checkpoint._sql.statements import (
    BLOBS,
    CHECKPOINTS,
    EXPIRE_BATCH,
    MIGRATIONS_TABLE,
    THREADS,
    WRITES,
    Op,
    Query,
    chunks,
    thread_refresh,
    values_cte,
)
from threadloom.checkpoint._stored.decode import decode_stored, load_metadata
from threadloom.checkpoint._stored.records import pruned_checkpoints
from threadloom.checkpoint._values.chains import needed_keys
from threadloom.checkpoint.serde.place import checkpoint_place

__all__ = ["SqlHousekeeping"]


class SqlHousekeeping(SqlBase):
    """Housekeeping operations of ``SqlCore`` (see the module docstring)."""

    # -- schema ------------------------------------------------------------------------

    def migrate(self, migrations: Sequence[Sequence[str]]) -> Op[int]:
        """Apply the migrations not yet recorded; returns how many ran.

        Runs in one transaction behind a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory
        transaction lock on Postgres), so concurrent callers apply each migration once.
        """
        if self.d.lock_migrations:
            yield Query(self.d.lock_migrations)
        yield Query(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (v INTEGER PRIMARY KEY)")
        rows = yield Query(f"SELECT v FROM {MIGRATIONS_TABLE}", fetch=True)
        done = {int(r[0]) for r in rows or ()}
        ran = 0
        for version, statements in enumerate(migrations):
            if version in done:
                continue
            for statement in statements:
                yield Query(statement)
            yield Query(f"INSERT INTO {MIGRATIONS_TABLE} (v) VALUES (?)", (version,))
            ran += 1
        return ran

    # -- housekeeping ------------------------------------------------------------------

    def delete_thread(self, thread_id: str) -> Op[None]:
        thread_id = str(thread_id)
        if self.d.lock_thread:
            yield Query(self.d.lock_thread, (thread_id,))
        # the thread's audit log goes with it (``_sql.audit``)
        for table in (WRITES, BLOBS, CHECKPOINTS, THREADS, AUDIT):
            yield Query(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))
        self.cache.forget(thread_id)
        self.values.forget(thread_id)
        return None

    def list_threads(self, limit: int | None) -> Op[list[str]]:
        """Thread ids by their newest checkpoint's ``created_at``, newest first (ties: by
        newest checkpoint id, newest first, then by thread id): the order of the index
        of ``THREADS``, so ``limit=N`` reads N of its entries."""
        sql = (
            f"SELECT thread_id FROM {THREADS} "
            "ORDER BY created_at DESC, checkpoint_id DESC, thread_id"
        )
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = yield Query(sql, params, fetch=True)
        return [r[0] for r in rows or ()]

    def prune(self, thread_ids: Sequence[str], keep_last: int) -> Op[int]:
        """Keep the ``keep_last`` newest checkpoints per namespace of each thread; returns
        how many checkpoints went (with their pending writes and the values only they
        used).

        Blobs survive while a kept checkpoint references them or a kept delta chain runs
        through them, so every kept checkpoint still reads back whole.
        """
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        dropped = 0
        for thread_id in sorted({str(t) for t in thread_ids}):  # lock order: no deadlocks
            dropped += yield from self._drop(
                thread_id, lambda entries: pruned_checkpoints(entries, keep_last)
            )
        return dropped

    def delete_for_runs(self, run_ids: Sequence[str]) -> Op[int]:
        """Delete the checkpoints whose metadata ``run_id`` is one of ``run_ids`` (in every
        thread and namespace), their pending writes and the values only they used;
        returns how many checkpoints went. Other checkpoints still read back whole."""
        runs = sorted({str(r) for r in run_ids})
        if not runs:
            return 0
        threads: set[str] = set()
        for chunk in chunks(runs, 1):
            rows = yield Query(
                f"SELECT DISTINCT thread_id FROM {CHECKPOINTS} WHERE {self.d.run_id_sql} "
                f"IN ({', '.join('?' for _ in chunk)})",
                list(chunk),
                fetch=True,
            )
            threads.update(r[0] for r in rows or ())
        wanted = set(runs)

        def made_by_run(entries: list[tuple[str, str, dict[str, Any]]]) -> set[tuple[str, str]]:
            return {(ns, c) for ns, c, meta in entries if meta.get("run_id") in wanted}

        dropped = 0
        for thread_id in sorted(threads):
            dropped += yield from self._drop(thread_id, made_by_run)
        return dropped

    def _drop(
        self,
        thread_id: str,
        choose: Callable[[list[tuple[str, str, dict[str, Any]]]], set[tuple[str, str]]],
    ) -> Op[int]:
        """Delete the checkpoints of ``thread_id`` that ``choose`` picks (as (namespace,
        checkpoint id) pairs, from every (namespace, checkpoint id, metadata)), their
        writes, and the blobs no remaining checkpoint needs; how many checkpoints went."""
        if self.d.lock_thread:
            yield Query(self.d.lock_thread, (thread_id,))
        rows = yield Query(
            f"SELECT checkpoint_ns, checkpoint_id, type, checkpoint, metadata "
            f"FROM {CHECKPOINTS} WHERE thread_id = ? ORDER BY checkpoint_ns, checkpoint_id DESC",
            (thread_id,),
            fetch=True,
        )
        rows = rows or []
        picked = choose(
            [
                (ns, checkpoint_id, load_metadata(meta, f"thread {thread_id!r}, namespace "
                                    f"{ns!r}, checkpoint {checkpoint_id!r}"))
                for ns, checkpoint_id, _typ, _blob, meta in rows
            ]
        )  # fmt: skip
        dropped: list[tuple[str, str, str]] = []
        referenced: set[tuple[Any, ...]] = set()
        for ns, checkpoint_id, typ, blob, _meta in rows:
            if (ns, checkpoint_id) in picked:
                dropped.append((thread_id, ns, checkpoint_id))
                continue
            where = f"thread {thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r}"
            place = checkpoint_place(thread_id, ns, checkpoint_id)
            checkpoint = decode_stored(self.serde, (typ, blob), f"checkpoint of {where}", place)
            for channel, version in (checkpoint.get("channel_versions") or {}).items():
                referenced.add((thread_id, ns, channel, str(version)))
        if not dropped:
            return 0
        cols = ("thread_id", "checkpoint_ns", "checkpoint_id")
        for table in (WRITES, CHECKPOINTS):
            for chunk in chunks(dropped, 3):
                cte = values_cte("w", cols, chunk)
                yield Query(
                    f"{cte.sql}DELETE FROM {table} WHERE (thread_id, checkpoint_ns, "
                    "checkpoint_id) IN (SELECT thread_id, checkpoint_ns, checkpoint_id FROM w)",
                    cte.params,
                )
        yield from thread_refresh(thread_id)
        blob_rows = yield Query(
            f"SELECT thread_id, checkpoint_ns, channel, version, base_version FROM {BLOBS} "
            "WHERE thread_id = ?",
            (thread_id,),
            fetch=True,
        )
        bases = {tuple(r[:4]): r[4] for r in blob_rows or ()}
        keep = needed_keys(referenced, bases)
        garbage = [k for k in bases if k not in keep]
        bcols = ("thread_id", "checkpoint_ns", "channel", "version")
        for chunk in chunks(garbage, 4):
            cte = values_cte("w", bcols, chunk)
            yield Query(
                f"{cte.sql}DELETE FROM {BLOBS} WHERE (thread_id, checkpoint_ns, channel, "
                "version) IN (SELECT thread_id, checkpoint_ns, channel, version FROM w)",
                cte.params,
            )
        self.cache.forget(thread_id)
        self.values.forget(thread_id)
        return len(dropped)

    def copy_thread(self, source: str, target: str) -> Op[int]:
        """Copy every checkpoint of thread ``source`` (all namespaces, with their values
        and pending writes, ids unchanged) to thread ``target``, which must have none;
        returns how many checkpoints were copied."""
        source, target = str(source), str(target)
        if source == target:
            raise ValueError(f"copy_thread needs two different threads, got {source!r} twice")
        if self.d.lock_thread:
            for thread_id in sorted((source, target)):
                yield Query(self.d.lock_thread, (thread_id,))
        rows = yield Query(
            f"SELECT (SELECT COUNT(*) FROM {CHECKPOINTS} WHERE thread_id = ?), "
            f"(SELECT COUNT(*) FROM {CHECKPOINTS} WHERE thread_id = ?)",
            (source, target),
            fetch=True,
        )
        count, taken = (int(v) for v in rows[0]) if rows else (0, 0)
        if taken:
            raise ValueError(
                f"Cannot copy thread {source!r} to {target!r}: {target!r} already has "
                f"{taken} checkpoint(s). Copy to a new thread id, or delete {target!r} first."
            )
        if not count:
            return 0
        for table, columns in (
            (CHECKPOINTS, "checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
             "checkpoint, metadata, created_at"),
            (BLOBS, "checkpoint_ns, channel, version, type, blob, base_version, root_version"),
            (WRITES, "checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, "
             "task_path"),
        ):  # fmt: skip
            yield Query(
                f"INSERT INTO {table} (thread_id, {columns}) "
                f"SELECT ?, {columns} FROM {table} WHERE thread_id = ?",
                (target, source),
            )
        yield from thread_refresh(target)
        if self._binds:  # values bound to their place: seal the copies for theirs
            yield from reseal_thread(self.d, self.serde, source, target)
        self.cache.forget(target)
        self.values.forget(target)
        return count

    def expire(self, cutoff: float, batch: int | None = None) -> Op[tuple[list[str], bool]]:
        """Delete up to ``batch`` threads whose newest checkpoint is older than ``cutoff``.

        Returns the deleted ids (sorted) and whether more candidates may remain. Batches
        keep each transaction (and, on Postgres, its number of advisory locks) bounded.

        The candidates are the oldest entries of ``THREADS``'s index (O(batch) whatever
        the table holds); each is checked again against its checkpoints, under the
        thread's lock where the database has one (a run may have just written), and a
        row found out of date is recomputed, so it is not picked again.
        """
        batch = batch or EXPIRE_BATCH
        rows = yield Query(
            f"SELECT thread_id FROM {THREADS} WHERE created_at < ? "
            "ORDER BY created_at LIMIT ?",
            (cutoff, batch),
            fetch=True,
        )
        candidates = sorted(r[0] for r in rows or ())  # lock order: no deadlocks
        expired: list[str] = []
        for thread_id in candidates:
            if self.d.lock_thread:
                yield Query(self.d.lock_thread, (thread_id,))
            again = yield Query(
                f"SELECT MAX(created_at) FROM {CHECKPOINTS} WHERE thread_id = ?",
                (thread_id,),
                fetch=True,
            )
            newest = again[0][0] if again else None
            if newest is None or newest >= cutoff:
                yield from thread_refresh(thread_id)
                continue
            yield from self.delete_thread(thread_id)
            expired.append(thread_id)
        return expired, len(candidates) >= batch

    def stored_bytes(self, thread_id: str | None) -> Op[int]:
        where, params = ("", []) if thread_id is None else (" WHERE thread_id = ?", [thread_id])
        n = self.d.blob_len
        sql = (
            f"SELECT (SELECT COALESCE(SUM({n}(checkpoint) + {self.d.metadata_len}), 0) "
            f"FROM {CHECKPOINTS}{where}), "
            f"(SELECT COALESCE(SUM({n}(blob)), 0) FROM {BLOBS}{where}), "
            f"(SELECT COALESCE(SUM({n}(blob)), 0) FROM {WRITES}{where})"
        )
        rows = yield Query(sql, params * 3, fetch=True)
        return int(sum(rows[0])) if rows else 0
