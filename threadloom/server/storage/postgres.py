"""``PostgresStorage``: the server on PostgreSQL - one API process, any number of workers.

``THREADLOOM_DATABASE_URL=postgresql://...`` (or ``--database``) selects it. The API
process (``threadloom serve``) only queues runs; ``threadloom worker`` processes, on
any machine, execute them. Everything they share is in the database:

* the checkpoints (``AsyncPostgresSaver``) and the store (``AsyncPostgresStore``), on
  the same connection pool as the records' transactions; the records' single
  statements (most of what the server asks: create a thread, queue, claim and end a
  run) go through a ``StatementPipe`` instead - pipelined, from all the process's
  coroutines, on two connections of its own (``_statement_pipe``);
* the records: the same tables as ``SqliteStorage`` (``server_assistants``,
  ``server_threads``, ``server_runs``, ``server_crons``), JSON kept as text;
* the run queue in ``server_runs``: a worker claims the oldest pending run whose thread
  has no running run with ``SELECT ... FOR UPDATE SKIP LOCKED`` (workers never wait on
  each other), and a partial unique index on ``(thread_id) WHERE status = 'running'``
  lets the database itself refuse a second running run of a thread. The claim is a
  lease (``lease_expires_at``, database clock) that the worker renews (all its runs'
  in one statement); a worker that dies stops renewing, and any other worker's
  ``requeue_expired`` puts the run back in the queue, where the next claim resumes it
  from its last checkpoint - a worker that was only stalled finds the lease lost at
  its next renewal, and its end of the run is not written (``worker_id`` fences it);
* run streams in ``server_run_events``: every event a worker publishes is a row (its
  ``bigserial`` id is the event id, so ids only grow, whichever worker runs the run), so
  a client reconnecting with ``Last-Event-ID`` replays from the table; a closed stream
  ends with a marker row, and streams closed more than ``retain_seconds`` ago are
  deleted.

Wake-ups are LISTEN/NOTIFY on one connection per process, never polling:
``threadloom_worker_<random>``, each process's own channel (a run was queued for one of
its workers: the payload is the run's seq, which the worker claims by key),
``threadloom_work`` (a thread freed, a run requeued, the listening connection
reopened...: an empty payload, and every worker claims, looking at every queued run;
or a run was queued while no worker is registered: its seq),
``threadloom_run`` (a run ended: ``wait_run``; when its end changed the thread's record
too, the payload is the run's id and the thread's, and the approval feed looks again as
for ``threadloom_threads``), ``threadloom_cancel`` (a running run is
to stop: the process running it cancels it) and ``threadloom_stream`` (a run published:
its subscribers read the new rows) and ``threadloom_threads`` (a thread record changed:
the approval feed looks at what is pending, ``watch_threads``). Each NOTIFY is sent in
the transaction making the change, so it arrives only once the change is visible. If
the listening connection drops, it is reopened and every waiter is woken to look again
(nothing is lost: the state is in the tables, the notifications only say when to look).

A queued run wakes one worker, not all: each ``Worker`` registers in ``server_workers``
(``register_worker``: its id, its process's channel, its slots, the graphs it serves;
renewed every ``registration_seconds``, deleted when it stops) and the statement
queueing a run notifies the channel of the least loaded live worker serving the run's
graph - chosen in that statement (``_WAKE``) - or ``threadloom_work`` when there is
none. The others do not claim
for it (with N workers, N claims and N wake-ups a run would cost, all but one taking
nothing); every idle worker still looks at every queued run at least every
``full_scan_seconds``, so a run meant for a worker that does not take it (full, or
dead before its record went stale) is taken by another within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

from threadloom.server.errors import Conflict
from threadloom.server.records import containment, matches, now_iso
from threadloom.server.storage._statement_pipe import StatementPipe
from threadloom.server.storage.base import (
    CLAIMED_ASSISTANT,
    RUN_ACTIVE,
    CancelAction,
    CancelCallback,
    RunWebhook,
    Storage,
    StreamEvent,
)
from threadloom.server.storage.rows import (
    ASSISTANT_COLS,
    ASSISTANT_SORT,
    CRON_COLS,
    CRON_SORT,
    PENDING_THREAD_COLS,
    PENDING_THREADS,
    PENDING_THREADS_INDEX,
    RUN_COLS,
    THREAD_COLS,
    THREAD_COLS_WITHOUT_VALUES,
    THREAD_SEARCH_INDEXES,
    THREAD_SORT,
    ThreadPage,
    assistant_row,
    cron_row,
    ended_thread_sets,
    merge_thread,
    next_assistant_version,
    order_by,
    page,
    public_thread,
    run_row,
    statuses_of,
    thread_row,
    thread_values,
    thread_version,
    to_json,
    value_needles,
)

__all__ = ["DatabaseUnreachableError", "PostgresStorage", "wait_for_database"]


class DatabaseUnreachableError(RuntimeError):
    """The server's PostgreSQL database could not be reached (``wait_for_database``)."""


def wait_for_database(url: str, seconds: float, say: Callable[[str], None]) -> None:
    """Connect to ``url`` until it works, for up to ``seconds``: a database that is not
    up yet (refused, starting, unreachable) is tried again every 0.5 s to 5 s, each
    failure told to ``say``; one that answers with a refusal that will not change (no
    such database, a wrong password) fails at once. Raises ``DatabaseUnreachableError``
    naming where and why, without the URL's password."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
        where = f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/" \
                f"{parts.get('dbname') or parts.get('user') or ''}"
    except psycopg.Error:
        where = "the URL given"
    deadline = time.monotonic() + seconds
    pause = 0.5
    while True:
        try:
            psycopg.connect(url, connect_timeout=max(1, min(10, int(seconds) or 1))).close()
            return
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split()) or repr(exc)
            if not _not_up_yet(reason) or time.monotonic() + pause > deadline:
                raise DatabaseUnreachableError(
                    f"cannot use the database at {where}: {reason}") from None
            say(f"waiting for the database at {where} ({reason})")
        time.sleep(pause)
        pause = min(5.0, pause * 2)

log = logging.getLogger("threadloom.server")

WORK, RUN, CANCEL, STREAM, THREADS = (
    "threadloom_work", "threadloom_run", "threadloom_cancel", "threadloom_stream",
    "threadloom_threads",
)
CLOSED = ""  # the event name of the marker row ending a stream
#: the most connections a ``threadloom worker`` process's pool opens
WORKER_POOL_SIZE = 10

# Advisory lock keys: "tlsm" serialises concurrent setup() of the records' tables; "tldu"
# (with the duty's hash) makes one process at a time fire crons / apply deadlines.
_MIGRATION_LOCK = 0x746C736D
_DUTY_LOCK = 0x746C6475

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE IF NOT EXISTS server_assistants (
            assistant_id text PRIMARY KEY,
            graph_id text NOT NULL,
            name text NOT NULL,
            description text,
            config text NOT NULL,
            context text NOT NULL,
            metadata text NOT NULL,
            version integer NOT NULL,
            created_at text NOT NULL,
            updated_at text NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS server_assistant_versions (
            assistant_id text NOT NULL,
            version integer NOT NULL,
            graph_id text NOT NULL,
            name text NOT NULL,
            description text,
            config text NOT NULL,
            context text NOT NULL,
            metadata text NOT NULL,
            created_at text NOT NULL,
            PRIMARY KEY (assistant_id, version)
        )""",
        """CREATE TABLE IF NOT EXISTS server_threads (
            thread_id text PRIMARY KEY,
            created_at text NOT NULL,
            updated_at text NOT NULL,
            state_updated_at text NOT NULL,
            metadata text NOT NULL,
            status text NOT NULL,
            config text NOT NULL,
            "values" text,
            interrupts text,
            error text
        )""",
        "CREATE INDEX IF NOT EXISTS server_threads_status ON server_threads (status)",
        """CREATE TABLE IF NOT EXISTS server_thread_ttl (
            thread_id text PRIMARY KEY,
            strategy text NOT NULL,
            expires_at double precision NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS server_thread_ttl_at ON server_thread_ttl (expires_at)",
        """CREATE TABLE IF NOT EXISTS server_runs (
            seq bigserial PRIMARY KEY,
            run_id text NOT NULL UNIQUE,
            thread_id text NOT NULL,
            assistant_id text NOT NULL,
            created_at text NOT NULL,
            updated_at text NOT NULL,
            status text NOT NULL,
            metadata text NOT NULL,
            kwargs text NOT NULL,
            multitask_strategy text,
            run_at double precision NOT NULL DEFAULT 0,
            worker_id text,
            lease_expires_at timestamptz,
            cancel_action text,
            attempt integer NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX IF NOT EXISTS server_runs_thread ON server_runs (thread_id, seq)",
        "CREATE INDEX IF NOT EXISTS server_runs_active ON server_runs (seq) "
        "WHERE status IN ('pending', 'running')",
        # one running run per thread, enforced by the database whatever the workers do
        "CREATE UNIQUE INDEX IF NOT EXISTS server_runs_one_running ON server_runs (thread_id) "
        "WHERE status = 'running'",
        """CREATE TABLE IF NOT EXISTS server_run_events (
            id bigserial PRIMARY KEY,
            run_id text NOT NULL,
            event text NOT NULL,
            data bytea NOT NULL,
            keep boolean NOT NULL,
            at timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX IF NOT EXISTS server_run_events_run ON server_run_events (run_id, id)",
        "CREATE INDEX IF NOT EXISTS server_run_events_closed ON server_run_events (at) "
        "WHERE event = ''",
        """CREATE TABLE IF NOT EXISTS server_crons (
            cron_id text PRIMARY KEY,
            assistant_id text,
            thread_id text,
            user_id text,
            schedule text NOT NULL,
            timezone text,
            end_time text,
            payload text NOT NULL,
            metadata text NOT NULL,
            enabled integer NOT NULL,
            on_run_completed text,
            next_run_date text,
            created_at text NOT NULL,
            updated_at text NOT NULL
        )""",
    ),
    (
        # a claim's "no other run of this thread is active" looks at the thread's
        # active runs only (server_runs_thread holds all the thread ever had); thread_id
        # alone, so that the planner never takes it for a claim's lookup of runs by seq
        # (server_runs_active's), walking all of it for the seq in its second column
        "CREATE INDEX IF NOT EXISTS server_runs_active_thread ON server_runs (thread_id) "
        "WHERE status IN ('pending', 'running')",
    ),
    (
        # the workers claiming runs (``register_worker``), each woken on a channel of its
        # own: a queued run's notification goes to one of them (``_WAKE``)
        """CREATE TABLE IF NOT EXISTS server_workers (
            worker_id text PRIMARY KEY,
            channel text NOT NULL,
            slots integer NOT NULL,
            seen_at timestamptz NOT NULL,
            live_until timestamptz NOT NULL
        )""",
        # a worker's running runs, counted when choosing the one to wake
        "CREATE INDEX IF NOT EXISTS server_runs_running_worker ON server_runs (worker_id) "
        "WHERE status = 'running'",
    ),
    # the threads that may have something pending for a person, indexed apart
    (PENDING_THREADS_INDEX,),
    # threads newest first (all, and by status), as a search pages them by default
    THREAD_SEARCH_INDEXES,
    # the graphs a registered worker serves (NULL: all): a queued run wakes one of those
    # serving its graph
    ("ALTER TABLE server_workers ADD COLUMN IF NOT EXISTS graphs text[]",),
    # webhook deliveries, kept until sent (``queue_webhook``)
    (
        """CREATE TABLE IF NOT EXISTS server_webhooks (
            id bigserial PRIMARY KEY,
            url text NOT NULL,
            body bytea NOT NULL,
            name text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_at double precision NOT NULL,
            created_at text NOT NULL,
            error text
        )""",
        "CREATE INDEX IF NOT EXISTS server_webhooks_due ON server_webhooks (next_at)",
    ),
    # threads by metadata (``_METADATA_HOLDS``): a search by owner, user or any other
    # metadata reads the threads that can match, not every thread. The metadata is
    # indexed in a table of its own, kept by triggers: a thread's row changes at every
    # run (status, values) and its metadata rarely - an index on the row itself would
    # be written at each change of either
    (
        # JSON text as jsonb; NULL for what jsonb refuses but the API accepts (\u0000,
        # lone surrogates): a write of such a thread goes through, and the thread is
        # always read by a search (``matches`` decides)
        """CREATE OR REPLACE FUNCTION threadloom_jsonb(text) RETURNS jsonb
            LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
            BEGIN
                RETURN $1::jsonb;
            EXCEPTION WHEN others THEN
                RETURN NULL;
            END $$""",
        # a row for each thread whose metadata is not empty (no filter matches {})
        """CREATE TABLE IF NOT EXISTS server_thread_metadata (
            thread_id text PRIMARY KEY,
            doc jsonb
        )""",
        # (its tables found where the schema's were made, whatever a writer's search_path)
        """CREATE OR REPLACE FUNCTION threadloom_thread_metadata() RETURNS trigger
            LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
            BEGIN
                IF TG_OP = 'DELETE' OR NEW.metadata = '{}' THEN
                    IF TG_OP <> 'INSERT' THEN
                        DELETE FROM server_thread_metadata WHERE thread_id = OLD.thread_id;
                    END IF;
                ELSE
                    INSERT INTO server_thread_metadata (thread_id, doc)
                    VALUES (NEW.thread_id, threadloom_jsonb(NEW.metadata))
                    ON CONFLICT (thread_id) DO UPDATE SET doc = EXCLUDED.doc;
                END IF;
                RETURN NULL;
            END $$""",
        "DROP TRIGGER IF EXISTS server_threads_metadata ON server_threads",
        "CREATE TRIGGER server_threads_metadata AFTER INSERT OR DELETE ON "
        "server_threads FOR EACH ROW EXECUTE FUNCTION threadloom_thread_metadata()",
        "DROP TRIGGER IF EXISTS server_threads_metadata_changed ON server_threads",
        "CREATE TRIGGER server_threads_metadata_changed AFTER UPDATE ON "
        "server_threads FOR EACH ROW WHEN (OLD.metadata IS DISTINCT FROM NEW.metadata) "
        "EXECUTE FUNCTION threadloom_thread_metadata()",
        "INSERT INTO server_thread_metadata (thread_id, doc) SELECT thread_id, "
        "threadloom_jsonb(metadata) FROM server_threads WHERE metadata <> '{}' "
        "ON CONFLICT (thread_id) DO NOTHING",
        "ANALYZE server_thread_metadata",  # (the plans of the first searches)
        "CREATE INDEX IF NOT EXISTS server_thread_metadata_doc ON server_thread_metadata "
        "USING gin (doc jsonb_path_ops)",
        "CREATE INDEX IF NOT EXISTS server_thread_metadata_unread ON server_thread_metadata "
        "(thread_id) WHERE doc IS NULL",
    ),
]

_NOTIFY = "SELECT pg_notify(%s, %s)"
_SEARCH_BATCH = 200  # rows fetched at a time by a filtered thread search
# the threads whose metadata can match a filter (its ``containment`` document, the
# parameter): those whose metadata contains it, and those jsonb could not hold
_METADATA_HOLDS = (
    "EXISTS (SELECT 1 FROM server_thread_metadata m WHERE m.thread_id = "
    "server_threads.thread_id AND (m.doc @> %s::jsonb OR m.doc IS NULL))"
)


def _metadata_holds(metadata: dict[str, Any] | None) -> str | None:
    """The parameter of ``_METADATA_HOLDS`` for a metadata filter: its ``containment``
    document as JSON text; None when it narrows nothing or holds a \\u escape (which
    jsonb may refuse: ``matches`` alone decides then)."""
    held = containment(metadata)
    if held is None:
        return None
    text = to_json(held)
    return None if "\\u" in text else text


# The channel to notify of a queued run (its one parameter: WORK, the fallback): the
# channel of one live registered worker - the least loaded (fewest running runs, a full
# one last), at random among equals - else WORK (no worker registered: every worker
# hears it, as workers that do not register expect). The others still claim the run in
# their next look at every queued run (``claim_runs``): a worker with a free slot looks
# at least every ``full_scan_seconds``, so a run meant for a worker that cannot take it
# (full, or dead before its registration went stale) waits about that long at most
# while another has room.
_WAKE = (
    "coalesce((SELECT w.channel FROM server_workers w CROSS JOIN LATERAL (SELECT count(*) "
    "AS n FROM server_runs x WHERE x.worker_id = w.worker_id AND x.status = 'running') l "
    "WHERE w.live_until > now() AND (w.graphs IS NULL OR g.graph_id IS NULL OR "
    "g.graph_id = ANY(w.graphs)) ORDER BY l.n >= w.slots, l.n, random() LIMIT 1), %s)"
)
# the queued run's graph, ``g`` in ``_WAKE`` (NULL when its assistant is gone: any
# worker takes it) - for a statement whose CTE ``r`` inserted the run
_WAKE_FROM = ("FROM (SELECT (SELECT a.graph_id FROM server_assistants a WHERE "
              "a.assistant_id = (SELECT assistant_id FROM r)) AS graph_id) g")
_INSERT_RUN = (  # the parameters: _run_values
    "INSERT INTO server_runs (run_id, thread_id, assistant_id, created_at, updated_at, "
    "status, metadata, kwargs, multitask_strategy, run_at) "
    "VALUES (%s,%s,%s,%s,%s,'pending',%s,%s,%s,%s)"
)


def _run_values(record: dict[str, Any], multitask_strategy: str) -> tuple[Any, ...]:
    return (record["run_id"], record["thread_id"], record["assistant_id"],
            record["created_at"], record["updated_at"], to_json(record["metadata"]),
            to_json(record["kwargs"]), multitask_strategy, record.get("run_at", 0.0))


_UPDATE_THREAD = (  # the parameters: rows.thread_values(record), then the thread id
    'UPDATE server_threads SET updated_at=%s, state_updated_at=%s, metadata=%s, status=%s, '
    'config=%s, "values"=%s, interrupts=%s, error=%s WHERE thread_id=%s'
)
# Commit without waiting for the WAL flush (a crash of the database server may lose the
# last few such commits, never corrupt anything): for what costs only a retry if lost -
# stream events (the checkpoints are the truth), claims, leases and finished runs (a lost
# one is run again from its durable checkpoint), thread records (refreshed from the
# checkpoint). Queued runs and new threads - what a client was told exists - wait for it.
_RELAXED = "set_config('synchronous_commit', 'off', true)"
# a claim's condition on the run's graph: one of those served (``%s``, an array), or its
# assistant gone (the run then ends at once, on any worker)
_SERVED = ("AND NOT EXISTS (SELECT 1 FROM server_assistants a WHERE a.assistant_id = "
           "r.assistant_id AND a.graph_id <> ALL(%s))")


class PostgresStorage(Storage):
    """Server storage in PostgreSQL, shared by an API process and its workers (see the
    module docstring).

    ``url`` is a ``postgresql://`` connection URL; ``pool_size`` the most connections
    this process opens for queries (a worker process: ``WORKER_POOL_SIZE``; plus one
    listening for notifications and one holding run locks). ``retain_seconds``: how long
    a closed run stream stays replayable.
    """

    #: several processes share this storage: the API process need not run a worker
    shared = True
    #: the longest a claim goes without looking at every queued run (``claim_runs``)
    full_scan_seconds = 1.0
    #: how often a registered worker's row is renewed (``register_worker``); it counts
    #: as live for three such periods
    registration_seconds = 2.0

    def __init__(self, url: str, *, pool_size: int = 20, retain_seconds: float = 600.0
                 ) -> None:
        try:
            from psycopg_pool import AsyncConnectionPool
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise SystemExit(
                "PostgreSQL server storage needs psycopg 3 and psycopg-pool: "
                "pip install 'threadloom[postgres]'"
            ) from exc
        from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver
        from threadloom.store.postgres import AsyncPostgresStore

        self.url = url
        self.retain_seconds = retain_seconds
        # connections opened up front (a pool growing one connection at a time under
        # a burst of requests makes them queue), more on demand up to ``pool_size``
        self._pool = AsyncConnectionPool(
            url, min_size=min(8, max(2, pool_size)), max_size=max(2, pool_size), open=False,
            kwargs={"autocommit": True},
        )
        # single statements outside a transaction: pipelined on connections of their own
        self._pipe = StatementPipe(url)
        self.checkpointer = AsyncPostgresSaver(self._pool)
        self.checkpointer.keep_lock_connection = True  # closed in close()
        self.store = AsyncPostgresStore(self._pool)
        self._listener: Any = None
        self._listen_task: asyncio.Task | None = None
        self._pool_check: asyncio.Task | None = None
        self._work: asyncio.Event | None = None
        # the runs queued since the last claim, as their notifications named them (see
        # ``claim_runs``), and when the last claim looked at every queued run
        self._claim_hints: set[int] = set()
        self._scan_asked = True
        self._last_scan = float("-inf")
        # the runs full looks took lately: their notifications may come after
        self._scanned: OrderedDict[int, None] = OrderedDict()
        self._run_waiters: dict[str, set[asyncio.Event]] = {}
        self._stream_waiters: dict[str, set[asyncio.Event]] = {}
        # run id -> {id of the run's newest event before them: events} of the stream
        # notifications that carried their events, while the run has subscribers here
        self._inline: dict[str, dict[int, list[tuple[int, str, bytes, bool]]]] = {}
        # run id -> the highest event id notified to this process (per-run baselines
        # for subscribers that want only what comes next)
        self._seen: OrderedDict[str, int] = OrderedDict()
        # runs this process just queued: a subscriber made now misses none of their events
        self._fresh: OrderedDict[str, float] = OrderedDict()
        self._cancel_callbacks: list[CancelCallback] = []
        self._thread_callbacks: list[Callable[[], None]] = []
        self._last_cleanup = 0.0
        self._closed = False
        # the connection holding this process's duties (``lead``), and which it holds
        self._leader: Any = None
        self._duties: set[str] = set()
        self._channels: tuple[str, ...] = (WORK, RUN, CANCEL, STREAM, THREADS)
        #: this process's own channel (listened to as well): a run queued for one of
        #: its workers (``register_worker``)
        self.channel = f"threadloom_worker_{secrets.token_hex(8)}"
        # worker id -> (slots, the graphs it serves or None: all)
        self._registered: dict[str, tuple[int, list[str] | None]] = {}
        self._register_task: asyncio.Task | None = None
        self._register_lock = asyncio.Lock()
        self._register_failed = False
        self._pool_bounds: tuple[int, int] | None = None

    # -- plumbing ----------------------------------------------------------------------

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        """A cursor in one transaction."""
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @asynccontextmanager
    async def _pipelined_tx(self) -> AsyncIterator[Any]:
        """A connection in pipeline mode, in one transaction: statements are sent
        without waiting for their replies until one is read (``BEGIN`` goes with the
        first read, ``COMMIT`` with the last writes: a round trip per read, not per
        statement). Read each result on a cursor of its own (``conn.execute``).

        ``BEGIN`` and ``COMMIT`` are plain statements in the pipeline (not
        ``conn.transaction()``, whose blocks wait for a reply at each end): on a busy
        event loop every wait for the server costs a turn of the loop, so the fewer the
        better."""
        async with self._pool.connection() as conn, conn.pipeline():
            await conn.execute("BEGIN")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _rows(self, sql: str, args: Sequence[Any] = (), *, binary: bool = False
                    ) -> list[tuple]:
        """The rows of one statement, its own transaction (through the pipe: never
        call this while holding a transaction open, see ``_statement_pipe``);
        ``binary``: see ``StatementPipe.rows``."""
        return await self._pipe.rows(sql, args, binary=binary)

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        rows = await self._rows(sql, args)
        return rows[0] if rows else None

    async def setup(self) -> None:
        self._work = asyncio.Event()
        await self._pool.open()
        if self._pool_bounds is not None:
            await self._pool.resize(*self._pool_bounds)
        await self.checkpointer.setup()
        await self.store.setup()
        async with self._tx() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await cur.execute(
                "CREATE TABLE IF NOT EXISTS server_migrations (v integer PRIMARY KEY)"
            )
            await cur.execute("SELECT max(v) FROM server_migrations")
            row = await cur.fetchone()
            current = -1 if row is None or row[0] is None else int(row[0])
            for version, statements in enumerate(MIGRATIONS):
                if version <= current:
                    continue
                for statement in statements:
                    await cur.execute(statement)
                await cur.execute("INSERT INTO server_migrations (v) VALUES (%s)", (version,))
        await self._listen()
        self._listen_task = asyncio.create_task(self._listen_loop(), name="threadloom-listen")

    async def close(self) -> None:
        for worker_id in list(self._registered):  # (a worker not stopped: gone now)
            await self.unregister_worker(worker_id)
        self._closed = True
        for task in (self._listen_task, self._pool_check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for conn in (self._listener, self._leader):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        with contextlib.suppress(Exception):
            await self.checkpointer.aclose_run_locks()
        await self._pipe.close()
        await self._pool.close()

    # -- workers -----------------------------------------------------------------------

    async def register_worker(self, worker_id: str, slots: int,
                              graph_ids: Collection[str] | None = None) -> None:
        """Record the worker in ``server_workers`` with this process's channel (see
        ``_WAKE``), and renew the record every ``registration_seconds`` until
        ``unregister_worker`` (a worker that dies stops renewing it: it goes stale, and
        is deleted an hour later by another registration). A failed write is logged and
        tried again at the next renewal; meanwhile runs reach the worker by the looks
        at every queued run (when other workers are registered) or by the broadcast
        (when none is)."""
        self._registered[worker_id] = (max(1, int(slots)),
                                       None if graph_ids is None else list(graph_ids))
        await self._register()
        if self._register_task is None or self._register_task.done():
            self._register_task = asyncio.create_task(
                self._register_loop(), name="threadloom-register"
            )

    async def _register_loop(self) -> None:
        while self._registered and not self._closed:
            await asyncio.sleep(self.registration_seconds)
            await self._register()

    async def _register(self) -> None:
        """Write (or renew) the records of this process's registered workers."""
        async with self._register_lock:
            if not self._registered or self._closed:
                return
            try:
                # relaxed: a record lost with the last commits is written again soon
                await self._rows(
                    "WITH gone AS (DELETE FROM server_workers WHERE live_until < now() - "
                    "interval '1 hour') INSERT INTO server_workers (worker_id, channel, "
                    "slots, graphs, seen_at, live_until) SELECT w, %s, s, g, now(), now() + "
                    "make_interval(secs => %s) FROM jsonb_to_recordset(%s::jsonb) AS "
                    "u(w text, s int, g text[]) ON CONFLICT (worker_id) DO UPDATE SET "
                    "channel = excluded.channel, slots = excluded.slots, graphs = "
                    "excluded.graphs, seen_at = excluded.seen_at, "
                    f"live_until = excluded.live_until RETURNING {_RELAXED}",
                    (self.channel, 3.0 * self.registration_seconds, to_json(
                        [{"w": w, "s": slots, "g": graphs}
                         for w, (slots, graphs) in self._registered.items()])),
                )
            except Exception as exc:
                if not self._register_failed:
                    log.warning("registering worker(s) %s failed (%s: %s); they are woken "
                                "as unregistered workers are until it succeeds",
                                ", ".join(self._registered), type(exc).__name__,
                                str(exc).strip(), exc_info=not self.unavailable(exc))
                self._register_failed = True
                return
            if self._register_failed:
                log.info("worker(s) %s registered", ", ".join(self._registered))
            self._register_failed = False

    async def unregister_worker(self, worker_id: str) -> None:
        """Delete the worker's record: no run is meant for it any more."""
        async with self._register_lock:
            self._registered.pop(worker_id, None)
            if not self._registered and self._register_task is not None:
                self._register_task.cancel()
                self._register_task = None
            try:
                await self._rows("DELETE FROM server_workers WHERE worker_id = %s",
                                 (worker_id,))
            except Exception:
                log.warning("unregistering worker %s failed (its record goes stale)",
                            worker_id, exc_info=True)

    # -- notifications -----------------------------------------------------------------

    def serve_workers_only(self) -> None:
        """Listen only for queued runs (``threadloom_work`` and this process's own
        channel, which every process listens to) and cancellations: a ``threadloom worker``
        process follows no stream and waits for no run, so the notifications of every
        event published and every run ended need not wake it (each worker process would
        otherwise read them all). Its pool stays small (at most ``WORKER_POOL_SIZE``
        connections): its runs' writes are few and short, the API process's many."""
        self._channels = (WORK, CANCEL)
        self._pool_bounds = (min(4, WORKER_POOL_SIZE), WORKER_POOL_SIZE)

    async def _listen(self) -> None:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        for channel in (*self._channels, self.channel):
            await conn.execute(f"LISTEN {channel}")
        self._listener = conn

    async def _listen_loop(self) -> None:
        while not self._closed:
            try:
                async for note in self._listener.notifies():
                    await self._dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._closed:
                    return
                log.warning("the notification connection dropped; reconnecting")
                # the database restarted, or dropped this process's connections: the
                # pool's idle ones too, likely - found now, not by the next requests
                self._check_pool()
            # reconnect, then wake everyone: what they missed is in the tables
            while not self._closed:
                with contextlib.suppress(Exception):
                    await self._listener.close()
                try:
                    await self._listen()
                    break
                except Exception:
                    await asyncio.sleep(1.0)
            self._wake_all()

    def _wake_all(self) -> None:
        self._scan_asked = True  # notifications may have been missed
        if self._work is not None:
            self._work.set()
        self._threads_changed()
        for waiters in (*self._run_waiters.values(), *self._stream_waiters.values()):
            for event in waiters:
                event.set()

    async def _dispatch(self, channel: str, payload: str) -> None:
        if channel == STREAM:
            run_id, _, rest = payload.partition(" ")
            event_id, _, rest = rest.partition(" ")
            self._note_seen(run_id, int(event_id or 0))
            waiters = self._stream_waiters.get(run_id)
            if not waiters:
                return
            if rest:  # the events themselves: kept for this process's subscribers
                before, _, body = rest.partition(" ")
                batch = _inline_events(body)
                if batch:
                    batches = self._inline.setdefault(run_id, {})
                    batches[int(before)] = batch
                    while len(batches) > 64:
                        del batches[min(batches)]
            for event in waiters:
                event.set()
        elif channel == WORK or channel == self.channel:  # (its own: for it alone)
            if payload.isdigit():  # a run was queued: its seq
                if int(payload) not in self._scanned:  # (else claimed here already)
                    self._claim_hints.add(int(payload))
            else:  # a thread freed, a run requeued...: look at every queued run
                self._scan_asked = True
            if self._work is not None:
                self._work.set()
        elif channel == RUN:  # a run ended (``<run id>[ <its thread's id>]``)
            run_id, _, thread_id = payload.partition(" ")
            for event in self._run_waiters.get(run_id, ()):
                event.set()
            if thread_id:  # and its thread's record changed (``end_run``)
                self._threads_changed()
        elif channel == THREADS:
            self._threads_changed()
        elif channel == CANCEL:
            run_id, _, action = payload.partition(" ")
            for callback in list(self._cancel_callbacks):
                try:
                    result = callback(run_id, action)  # type: ignore[arg-type]
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("cancelling run %s failed", run_id)

    def _threads_changed(self) -> None:
        for callback in list(self._thread_callbacks):
            try:
                callback()
            except Exception:
                log.exception("a thread-change callback failed")

    def watch_threads(self, callback: Callable[[], None]) -> bool:
        self._thread_callbacks.append(callback)
        return True

    def _note_seen(self, run_id: str, event_id: int) -> None:
        self._fresh.pop(run_id, None)  # its events have begun: a new subscriber is late
        if event_id > self._seen.get(run_id, 0):
            self._seen[run_id] = event_id
        self._seen.move_to_end(run_id)
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)

    # -- assistants --------------------------------------------------------------------

    async def create_assistant(self, record: dict[str, Any], *, if_exists: str) -> dict:
        async with self._tx() as cur:
            await cur.execute(
                f"SELECT {ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = %s "
                "FOR UPDATE",
                (record["assistant_id"],),
            )
            row = await cur.fetchone()
            if row is not None:
                if if_exists == "do_nothing":
                    return assistant_row(row)
                raise Conflict(f"Assistant {record['assistant_id']} already exists.")
            await cur.execute(
                f"INSERT INTO server_assistants ({ASSISTANT_COLS}) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (assistant_id) DO NOTHING",
                (record["assistant_id"], record["graph_id"], record["name"],
                 record.get("description"), to_json(record["config"]),
                 to_json(record["context"]), to_json(record["metadata"]), record["version"],
                 record["created_at"], record["updated_at"]),
            )
            if cur.rowcount == 0:  # another process made it just now
                if if_exists != "do_nothing":
                    raise Conflict(f"Assistant {record['assistant_id']} already exists.")
                await cur.execute(
                    f"SELECT {ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = %s",
                    (record["assistant_id"],),
                )
                return assistant_row(await cur.fetchone())
            await self._insert_version(cur, record)
            return record

    @staticmethod
    async def _insert_version(cur: Any, record: dict[str, Any]) -> None:
        await cur.execute(
            "INSERT INTO server_assistant_versions (assistant_id, version, graph_id, name, "
            "description, config, context, metadata, created_at) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (record["assistant_id"], record["version"], record["graph_id"], record["name"],
             record.get("description"), to_json(record["config"]), to_json(record["context"]),
             to_json(record["metadata"]), record["updated_at"]),
        )

    async def get_assistant(self, assistant_id: str) -> dict | None:
        row = await self._one(
            f"SELECT {ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = %s",
            (assistant_id,),
        )
        return None if row is None else assistant_row(row)

    async def update_assistant(self, assistant_id: str, changes: dict[str, Any]) -> dict | None:
        async with self._tx() as cur:
            await cur.execute(
                f"SELECT {ASSISTANT_COLS} FROM server_assistants WHERE assistant_id = %s "
                "FOR UPDATE",
                (assistant_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            await cur.execute(
                "SELECT max(version) FROM server_assistant_versions WHERE assistant_id = %s",
                (assistant_id,),
            )
            latest = (await cur.fetchone())[0]
            new = next_assistant_version(assistant_row(row), changes, latest)
            await self._insert_version(cur, new)
            await cur.execute(
                "UPDATE server_assistants SET graph_id=%s, name=%s, description=%s, config=%s, "
                "context=%s, metadata=%s, version=%s, updated_at=%s WHERE assistant_id=%s",
                (new["graph_id"], new["name"], new.get("description"), to_json(new["config"]),
                 to_json(new["context"]), to_json(new["metadata"]), new["version"],
                 new["updated_at"], assistant_id),
            )
            return new

    async def delete_assistant(self, assistant_id: str) -> bool:
        async with self._tx() as cur:
            await cur.execute(
                "DELETE FROM server_assistants WHERE assistant_id = %s", (assistant_id,)
            )
            found = cur.rowcount > 0
            await cur.execute(
                "DELETE FROM server_assistant_versions WHERE assistant_id = %s", (assistant_id,)
            )
            return found

    async def _assistants(self, graph_id: str | None, name: str | None,
                          metadata: dict | None, order: str) -> list[dict]:
        sql = f"SELECT {ASSISTANT_COLS} FROM server_assistants WHERE true"
        args: list[Any] = []
        if graph_id is not None:
            sql += " AND graph_id = %s"
            args.append(graph_id)
        if name is not None:
            sql += " AND name LIKE %s"
            args.append(f"%{name}%")
        rows = [assistant_row(r) for r in await self._rows(f"{sql} ORDER BY {order}", args)]
        return [r for r in rows if matches(r["metadata"], metadata)]

    async def search_assistants(self, *, graph_id, name, metadata, limit, offset, sort_by,
                                sort_order) -> list[dict]:
        order = order_by(sort_by, sort_order, ASSISTANT_SORT, "created_at")
        return page(await self._assistants(graph_id, name, metadata, order), limit, offset)

    async def count_assistants(self, *, graph_id, name, metadata) -> int:
        return len(await self._assistants(graph_id, name, metadata, "created_at"))

    async def assistant_versions(self, assistant_id, *, metadata, limit, offset) -> list[dict]:
        rows = await self._rows(
            "SELECT assistant_id, graph_id, name, description, config, context, metadata, "
            "version, created_at, created_at FROM server_assistant_versions "
            "WHERE assistant_id = %s ORDER BY version DESC",
            (assistant_id,),
        )
        out = []
        for row in rows:
            rec = assistant_row(row)
            rec.pop("updated_at")
            if matches(rec["metadata"], metadata):
                out.append(rec)
        return page(out, limit, offset)

    async def set_assistant_version(self, assistant_id: str, version: int) -> dict | None:
        async with self._tx() as cur:
            await cur.execute(
                "SELECT assistant_id, graph_id, name, description, config, context, metadata, "
                "version, created_at, created_at FROM server_assistant_versions "
                "WHERE assistant_id = %s AND version = %s",
                (assistant_id, version),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            rec = assistant_row(row)
            await cur.execute(
                "UPDATE server_assistants SET graph_id=%s, name=%s, description=%s, config=%s, "
                "context=%s, metadata=%s, version=%s, updated_at=%s WHERE assistant_id=%s "
                f"RETURNING {ASSISTANT_COLS}",
                (rec["graph_id"], rec["name"], rec.get("description"), to_json(rec["config"]),
                 to_json(rec["context"]), to_json(rec["metadata"]), rec["version"], now_iso(),
                 assistant_id),
            )
            row = await cur.fetchone()
            return None if row is None else assistant_row(row)

    # -- threads -----------------------------------------------------------------------

    async def create_thread(self, record: dict[str, Any], *, if_exists: str) -> dict:
        # one statement in its own transaction: one round trip (not BEGIN, INSERT, COMMIT)
        values = (
            record["thread_id"], record["created_at"], record["updated_at"],
            record["state_updated_at"], to_json(record["metadata"]), record["status"],
            to_json(record.get("config") or {}),
            None if record.get("values") is None else to_json(record["values"]),
            None if "interrupts" not in record else to_json(record["interrupts"]),
            None if record.get("error") is None else to_json(record["error"]),
        )
        while True:
            if await self._rows(
                f"INSERT INTO server_threads ({THREAD_COLS}) VALUES "
                "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (thread_id) DO NOTHING "
                "RETURNING 1", values,
            ):
                return record
            if if_exists != "do_nothing":
                raise Conflict(f"Thread {record['thread_id']} already exists.")
            existing = await self.get_thread(record["thread_id"])
            if existing is not None:  # (else deleted in between: insert it after all)
                return existing

    async def get_thread(self, thread_id: str, *, values: bool = True) -> dict | None:
        cols = THREAD_COLS if values else THREAD_COLS_WITHOUT_VALUES
        row = await self._one(
            f"SELECT {cols} FROM server_threads WHERE thread_id = %s", (thread_id,)
        )
        return None if row is None else thread_row(row)

    async def get_thread_and_assistant(self, thread_id: str, assistant_id: str, *,
                                       values: bool = True
                                       ) -> tuple[dict | None, dict | None]:
        """Both in one statement."""
        t_cols = ", ".join(f"t.{c.strip()}" for c in THREAD_COLS.split(","))
        if not values:
            t_cols = t_cols.replace('t."values"', 'NULL AS "values"')
        a_cols = ", ".join(f"a.{c.strip()}" for c in ASSISTANT_COLS.split(","))
        row = await self._one(
            f"SELECT {t_cols}, {a_cols} FROM (SELECT 1) AS one "
            "LEFT JOIN server_threads t ON t.thread_id = %s "
            "LEFT JOIN server_assistants a ON a.assistant_id = %s",
            (thread_id, assistant_id),
        )
        assert row is not None
        width = len(THREAD_COLS.split(","))
        thread, assistant = row[:width], row[width:]
        return (None if thread[0] is None else thread_row(thread),
                None if assistant[0] is None else assistant_row(assistant))

    async def update_thread(self, thread_id: str, **fields: Any) -> dict | None:
        # two statements, no transaction held between them: read the record (and its
        # row version, xmin), then write the merged record only if the row is still
        # that version - with its notification, relaxed (the record is refreshed from
        # the checkpoint anyway); a write in between makes it read and merge again
        while True:
            row = await self._one(
                f"SELECT xmin::text, {THREAD_COLS} FROM server_threads WHERE thread_id = %s",
                (thread_id,),
            )
            if row is None:
                return None
            rec = merge_thread(thread_row(row[1:]), fields)
            if await self._rows(
                f"WITH u AS ({_UPDATE_THREAD} AND xmin::text = %s RETURNING 1) "
                f"SELECT pg_notify(%s, %s), {_RELAXED} FROM u",
                (*thread_values(rec), thread_id, row[0], THREADS, thread_id),
            ):
                return public_thread(rec)

    async def delete_thread(self, thread_id: str) -> bool:
        async with self._tx() as cur:
            await cur.execute("DELETE FROM server_threads WHERE thread_id = %s", (thread_id,))
            found = cur.rowcount > 0
            await cur.execute(_NOTIFY, (THREADS, thread_id))
            await cur.execute("DELETE FROM server_thread_ttl WHERE thread_id = %s", (thread_id,))
            await cur.execute(
                "DELETE FROM server_runs WHERE thread_id = %s RETURNING run_id", (thread_id,)
            )
            for (run_id,) in await cur.fetchall():
                await cur.execute(_NOTIFY, (RUN, run_id))
        if found:
            await self.checkpointer.adelete_thread(thread_id)
        return found

    async def _threads(self, ids, status, order: str, page: ThreadPage) -> list[dict]:
        """``page`` filled from the threads of ``ids`` / ``status`` in ``order`` (and
        those whose metadata and values can match: ``_METADATA_HOLDS``,
        ``value_needles``), read only as far as it
        needs: the query pages itself when nothing is filtered here, else a server-side
        cursor is read a batch at a time (one statement: one snapshot).

        A page by metadata is first asked for with a ``LIMIT`` of the rows it needs:
        most filters are wholly said by the index (``containment``), and the planner
        then chooses by how rare the filter's value is - the index for a rare owner,
        the search's order for one that nearly every thread holds - where a cursor's
        plan favours its first rows whatever they cost. Only when ``matches`` turned
        some of those rows down is the page read again, through the cursor."""
        sql = f"SELECT {THREAD_COLS} FROM server_threads WHERE true"
        args: list[Any] = []
        held = _metadata_holds(page.metadata)
        if held is not None:
            sql += f" AND {_METADATA_HOLDS}"
            args.append(held)
        for needle in value_needles(page.values):
            sql += ' AND strpos("values", %s) > 0'
            args.append(needle)
        if status is not None:
            sql += " AND status = ANY(%s)"
            args.append(statuses_of(status))
        if ids:
            sql += " AND thread_id = ANY(%s)"
            args.append(list(ids))
        sql += f" ORDER BY {order}"
        window = page.window()
        if window is not None:
            page.add(await self._rows(f"{sql} LIMIT %s OFFSET %s", [*args, *window]))
            return page.rows
        if held is not None and page.limit >= 0:
            need = page.skip + page.limit
            first = ThreadPage(page.metadata, page.values, page.limit, page.skip)
            rows = await self._rows(f"{sql} LIMIT %s", [*args, need])
            first.add(rows)
            if first.full or len(rows) < need:
                return first.rows
        async with self._pool.connection() as conn, conn.transaction():
            if page.limit < 0:  # every row read: the plan cheapest in all
                await conn.execute("SET LOCAL cursor_tuple_fraction = 1")
            async with conn.cursor(name="threadloom_thread_search") as cur:
                await cur.execute(sql, args)
                while not page.full and (rows := await cur.fetchmany(_SEARCH_BATCH)):
                    page.add(rows)
        return page.rows

    async def pending_threads(self, metadata: dict[str, Any] | None,
                              ids: Collection[str] | None = None) -> list[dict]:
        among, args = "", list[Any]()
        if ids is not None:
            among, args = " AND thread_id = ANY(%s)", [list(ids)]
        held = _metadata_holds(metadata)  # (a reviewer's inbox: their owner's threads)
        if held is not None:
            among += f" AND {_METADATA_HOLDS}"
            args.append(held)
        rows = await self._rows(
            f"SELECT {PENDING_THREAD_COLS} FROM server_threads WHERE ({PENDING_THREADS}){among} "
            "ORDER BY created_at DESC", args
        )
        return [r for r in map(thread_row, rows) if matches(r["metadata"], metadata or {})]

    async def pending_thread_versions(self) -> dict[str, str]:
        return {tid: thread_version(at, status) for tid, at, status in await self._rows(
            f"SELECT thread_id, updated_at, status FROM server_threads WHERE {PENDING_THREADS}"
        )}

    async def search_threads(self, *, ids, metadata, values, status, limit, offset, sort_by,
                             sort_order) -> list[dict]:
        order = order_by(sort_by, sort_order, THREAD_SORT, "created_at")
        return await self._threads(ids, status, order, ThreadPage(metadata, values, limit,
                                                                    offset))

    async def count_threads(self, *, metadata, values, status) -> int:
        if not metadata and not values:  # counted by the database
            sql, args = "SELECT count(*) FROM server_threads", []
            if status is not None:
                sql, args = sql + " WHERE status = ANY(%s)", [statuses_of(status)]
            row = await self._one(sql, args)
            return int(row[0]) if row else 0
        page = ThreadPage(metadata, values, -1, 0)
        return len(await self._threads(None, status, "created_at", page))

    # -- runs --------------------------------------------------------------------------

    async def create_run(
        self, record: dict[str, Any], *, multitask_strategy: str,
        thread_metadata: tuple[dict[str, Any], dict[str, Any]] | None = None,
    ) -> tuple[dict, list[dict]]:
        # the thread's new metadata goes with the run when the stored one is still what
        # the caller read (compared as stored: JSON text); else merged afterwards
        retag, retag_args = "", []
        if thread_metadata is not None:
            seen, keys = thread_metadata
            retag = ", metadata = CASE WHEN metadata = %s THEN %s ELSE metadata END"
            retag_args = [to_json(seen), to_json({**seen, **keys})]
        if multitask_strategy == "enqueue":
            # nothing to decide from the thread's other runs: one statement, one round
            # trip (its UPDATE of the thread row waits for whoever holds that row, as
            # the lock below does), committed durably with its notifications
            rows = await self._rows(
                f"WITH t AS (UPDATE server_threads SET status = 'busy', updated_at = %s{retag} "
                "WHERE thread_id = %s RETURNING metadata), "
                f"r AS ({_INSERT_RUN} RETURNING seq, assistant_id) "
                f"SELECT pg_notify({_WAKE}, (SELECT seq::text FROM r)), pg_notify(%s, %s), "
                f"(SELECT metadata FROM t), (SELECT count(*) FROM r) {_WAKE_FROM}",
                (record["updated_at"], *retag_args, record["thread_id"],
                 *_run_values(record, "enqueue"), WORK, THREADS, record["thread_id"]),
            )
            await self._retag(record["thread_id"], thread_metadata, rows[0][2])
            return self._created(record, "enqueue"), []
        # two round trips: the lock and the active runs, then the writes and the commit
        async with self._pipelined_tx() as conn, conn.cursor() as cur:
            # the thread's row lock orders the decisions on one thread across processes
            await cur.execute(
                "SELECT 1 FROM server_threads WHERE thread_id = %s FOR UPDATE",
                (record["thread_id"],),
            )
            await cur.execute(
                f"SELECT {RUN_COLS} FROM server_runs WHERE thread_id = %s AND status IN "
                "('pending', 'running') ORDER BY seq",
                (record["thread_id"],),
            )
            active = [run_row(r) for r in await cur.fetchall()]
            if active and multitask_strategy == "reject":
                raise Conflict(
                    f"Thread {record['thread_id']} is already running a task (run "
                    f"{active[0]['run_id']}). Wait for it to finish, or choose a different "
                    "multitask strategy (interrupt, rollback, enqueue)."
                )
            to_cancel = active if multitask_strategy in ("interrupt", "rollback") else []
            # (with runs to cancel, claimable only once they end: their ends, with this
            # run still queued, ask every worker to look at every queued run)
            await cur.execute(
                f"WITH r AS ({_INSERT_RUN} RETURNING seq, assistant_id) "
                f"SELECT pg_notify({_WAKE}, (SELECT seq::text FROM r)) {_WAKE_FROM}",
                (*_run_values(record, multitask_strategy), WORK),
            )
            await cur.execute(
                f"UPDATE server_threads SET status = 'busy', updated_at = %s{retag} "
                "WHERE thread_id = %s RETURNING metadata",
                (record["updated_at"], *retag_args, record["thread_id"]),
            )
            # (read only when it matters: reading waits for the reply, a round trip)
            stored = await cur.fetchone() if thread_metadata is not None else None
            await cur.execute(_NOTIFY, (THREADS, record["thread_id"]))
        await self._retag(record["thread_id"], thread_metadata, stored and stored[0])
        return self._created(record, multitask_strategy), to_cancel

    async def _retag(self, thread_id: str,
                     thread_metadata: tuple[dict[str, Any], dict[str, Any]] | None,
                     stored: str | None) -> None:
        """``create_run``'s metadata keys, merged now if the thread's metadata had
        changed since the caller read it (``stored``: what the queueing left there)."""
        if thread_metadata is None or stored is None:
            return
        seen, keys = thread_metadata
        if stored != to_json({**seen, **keys}):
            await self.update_thread(thread_id, metadata=keys)

    def _created(self, record: dict[str, Any], multitask_strategy: str) -> dict:
        self._fresh[record["run_id"]] = time.monotonic()
        self._forget_fresh()
        return {**record, "status": "pending", "multitask_strategy": multitask_strategy,
                "attempt": 0}

    def _forget_fresh(self, older_than: float = 5.0) -> None:
        now = time.monotonic()
        while self._fresh:
            run_id, at = next(iter(self._fresh.items()))
            if now - at < older_than and len(self._fresh) < 10_000:
                break
            self._fresh.pop(run_id)

    async def get_run(self, run_id: str, thread_id: str | None = None) -> dict | None:
        row = await self._one(f"SELECT {RUN_COLS} FROM server_runs WHERE run_id = %s", (run_id,))
        if row is None:
            return None
        run = run_row(row)
        if thread_id is not None and run["thread_id"] != thread_id:
            return None
        return run

    async def list_runs(self, thread_id, *, limit, offset, status) -> list[dict]:
        sql = f"SELECT {RUN_COLS} FROM server_runs WHERE thread_id = %s"
        args: list[Any] = [thread_id]
        if status is not None:
            sql += " AND status = ANY(%s)"
            args.append(statuses_of(status))
        sql += " ORDER BY seq DESC LIMIT %s OFFSET %s"
        args += [limit if limit >= 0 else None, offset]  # NULL: no limit
        return [run_row(r) for r in await self._rows(sql, args)]

    async def list_active_runs(self, thread_id: str | None = None) -> list[dict]:
        sql = f"SELECT {RUN_COLS} FROM server_runs WHERE status IN ('pending', 'running')"
        args: list[Any] = []
        if thread_id is not None:
            sql += " AND thread_id = %s"
            args.append(thread_id)
        return [run_row(r) for r in await self._rows(sql + " ORDER BY seq", args)]

    async def delete_run(self, run_id: str) -> bool:
        async with self._tx() as cur:
            await cur.execute("DELETE FROM server_runs WHERE run_id = %s", (run_id,))
            found = cur.rowcount > 0
            if found:
                await cur.execute(_NOTIFY, (RUN, run_id))
                await cur.execute(_NOTIFY, (WORK, ""))
            return found

    async def claim_run(self, worker_id: str, lease_seconds: float,
                        graph_ids: Collection[str] | None = None) -> dict | None:
        runs = await self.claim_runs(worker_id, lease_seconds, 1, graph_ids)
        return runs[0] if runs else None

    async def claim_runs(self, worker_id: str, lease_seconds: float, limit: int,
                         graph_ids: Collection[str] | None = None) -> list[dict]:
        """Up to ``limit`` runs in one statement - one round trip, its own transaction
        (relaxed by set_config in RETURNING, evaluated before its commit) - oldest first.
        No two of them are of one thread: only a thread's oldest pending run, and only
        while none of its runs is running, can be taken. Each carries its assistant's
        record (``CLAIMED_ASSISTANT``), read in the same statement.

        Which runs are looked at: those the notifications of their queueing named
        (``_claim_hints``), each found by its key, while there are any and the last
        look at every queued run is less than ``full_scan_seconds`` old; else every
        queued run, oldest first. Looking at every queued run walks an index that, on a
        busy server, is full of entries of runs that were queued a moment ago and are
        not any more (each change of a run's status adds one; they go only when the
        table is vacuumed): under load that walk was the most expensive statement the
        server ran. The full look still comes at least every ``full_scan_seconds``,
        when notifications may have been missed (the listening connection dropped), and
        when a run may have become claimable without being queued (a thread freed,
        a run requeued, a run's ``after_seconds`` past) - and when there is no run named
        (so a claim coming back empty after a full look says no queued run is claimable;
        after a named claim, only that no run heard of is). A full look takes the oldest
        claimable runs; the named runs it did not reach stay named, so runs are taken
        oldest first either way."""
        limit = max(1, int(limit))
        now = time.monotonic()
        if (self._claim_hints and not self._scan_asked
                and now - self._last_scan < self.full_scan_seconds):
            hints = sorted(self._claim_hints)
            self._claim_hints.clear()
            rows = await self._claim(worker_id, lease_seconds, limit, hints, graph_ids)
            if len(rows) == limit:
                # a full claim: the named runs it did not reach may still be queued
                taken = {row[-2] for row in rows}
                self._claim_hints.update(seq for seq in hints if seq not in taken)
            # (else each named run not taken is not claimable now: another worker took
            # it, its thread is busy or its time has not come - a full look finds it)
            return self._claimed(rows)
        self._scan_asked = False
        self._last_scan = now
        rows = await self._claim(worker_id, lease_seconds, limit, None, graph_ids)
        # the named runs it took are named no more, nor when their notifications come
        # later; those it did not reach stay named (forgetting them left them to the
        # looks at every queued run, one a second, while runs queued after them were
        # claimed by name at once: under load, a run waited 13 s where most waited 0.6)
        for row in rows:
            self._claim_hints.discard(row[-2])
            self._scanned[row[-2]] = None
        while len(self._scanned) > 1000:
            self._scanned.popitem(last=False)
        return self._claimed(rows)

    async def _claim(self, worker_id: str, lease_seconds: float, limit: int,
                     among: list[int] | None, graph_ids: Collection[str] | None
                     ) -> list[tuple]:
        """``claim_runs``'s statement: rows of claimed runs, each with its assistant's
        record and its seq; ``among``: the seqs of the runs to look at (None: all);
        ``graph_ids``: the graphs served (None: all)."""
        import psycopg

        try:
            return await self._rows(
                f"""
                WITH next AS (
                    SELECT r.seq, r.assistant_id FROM server_runs r
                    WHERE r.status = 'pending' {"" if among is None else "AND r.seq = ANY(%s)"}
                      AND r.run_at <= extract(epoch FROM clock_timestamp())
                      AND NOT EXISTS (
                          SELECT 1 FROM server_runs o
                          WHERE o.thread_id = r.thread_id
                            AND (o.status = 'running'
                                 OR (o.status = 'pending' AND o.seq < r.seq)))
                      {"" if graph_ids is None else _SERVED}
                    ORDER BY r.seq
                    LIMIT %s
                    FOR UPDATE OF r SKIP LOCKED
                )
                UPDATE server_runs SET status = 'running', worker_id = %s,
                    lease_expires_at = clock_timestamp() + make_interval(secs => %s),
                    attempt = attempt + 1, updated_at = %s
                FROM next LEFT JOIN server_assistants a
                    ON a.assistant_id = next.assistant_id
                WHERE server_runs.seq = next.seq
                RETURNING {", ".join("server_runs." + c.strip() for c in RUN_COLS.split(","))},
                    {", ".join("a." + c.strip() for c in ASSISTANT_COLS.split(","))},
                    server_runs.seq, {_RELAXED}
                """,
                (*([] if among is None else [among]),
                 *([] if graph_ids is None else [list(graph_ids)]), limit, worker_id,
                 float(lease_seconds), now_iso()),
            )
        except psycopg.errors.UniqueViolation:
            # another worker started a run of one of those threads in between: the
            # partial unique index refused the claim; the next claim looks again
            if self._work is not None:
                self._work.set()
            return []

    @staticmethod
    def _claimed(rows: list[tuple]) -> list[dict]:
        """The runs of ``_claim``'s rows, oldest first, each with its assistant."""
        width = len(RUN_COLS.split(","))
        runs = []
        for row in sorted(rows, key=lambda row: row[-2]):
            run = run_row(row[:width])
            assistant = row[width:-2]
            run[CLAIMED_ASSISTANT] = None if assistant[0] is None else assistant_row(assistant)
            runs.append(run)
        return runs

    async def renew_leases(self, run_ids: Sequence[str], worker_id: str,
                           lease_seconds: float) -> set[str]:
        if not run_ids:
            return set()
        rows = await self._rows(
            "UPDATE server_runs SET lease_expires_at = clock_timestamp() + "
            "make_interval(secs => %s) WHERE run_id = ANY(%s) AND worker_id = %s "
            f"AND status = 'running' RETURNING run_id, {_RELAXED}",
            (float(lease_seconds), list(run_ids), worker_id),
        )
        return {row[0] for row in rows}

    async def release_run(self, run_id: str, worker_id: str, delay_seconds: float) -> bool:
        # a run to take now wakes the workers; a later one is found by their looks at
        # every queued run (at least once a second)
        delay = max(0.0, float(delay_seconds))
        row = await self._one(
            "WITH r AS (UPDATE server_runs SET status = 'pending', worker_id = NULL, "
            "lease_expires_at = NULL, run_at = extract(epoch FROM clock_timestamp()) + %s, "
            "updated_at = %s WHERE run_id = %s AND worker_id = %s AND status = 'running' "
            "RETURNING run_id) SELECT r.run_id, CASE WHEN %s THEN pg_notify(%s, '') END "
            "FROM r",
            (delay, now_iso(), run_id, worker_id, delay == 0.0, WORK),
        )
        return row is not None

    def unavailable(self, error: BaseException) -> bool:
        """See ``Storage.unavailable``: a connection lost or refused, the server shutting
        down or starting, a transaction it asks to retry (``_connection_lost``) - not a
        statement timing out, which would again. When it is, the pool's idle
        connections are checked (in the background, once at a time): those the database
        dropped with this one go now, not each with the next run or request taking it."""
        import psycopg

        if not (isinstance(error, psycopg.OperationalError)
                and _connection_lost(error.sqlstate)
                and _caller(error).startswith(_OWN_DATABASE_CALLERS)):
            return False
        self._check_pool()
        return True

    def _check_pool(self) -> None:
        """Check the pool's idle connections in the background (once at a time): those
        the database dropped go, new ones are opened."""
        if self._pool_check is None or self._pool_check.done():
            self._pool_check = asyncio.get_running_loop().create_task(
                self._checked_pool(), name="threadloom-pool-check")

    async def _checked_pool(self) -> None:
        with contextlib.suppress(Exception):  # (the database still out of reach)
            await self._pool.check()

    async def finish_run(self, run_id: str, status: str, *, thread: dict[str, Any] | None,
                         worker_id: str | None = None,
                         webhook: RunWebhook | None = None) -> dict | None:
        return await self.end_run(run_id, status, thread=thread, events=None, keep=False,
                                  worker_id=worker_id, webhook=webhook)

    async def end_run(
        self, run_id: str, status: str, *, thread: dict[str, Any] | None,
        events: Sequence[tuple[str, bytes]] | None, keep: bool, worker_id: str | None = None,
        webhook: RunWebhook | None = None,
    ) -> dict | None:
        """One statement, its own transaction, one round trip: lock the thread, end the
        run, update the thread (``busy`` while another run of it is active), append
        ``events`` and close the stream (unless ``events`` is None: ``finish_run``),
        with their notifications.

        The thread's fields are written as given, without reading the thread first, so
        ``metadata`` (merged into the stored one) is not among them. The statement's
        snapshot predates the thread lock: if another transaction changed the thread
        before the lock was had (e.g. queued a run on it), the runs the snapshot shows
        may be out of date - then the statement writes nothing, and is run again (with
        a new snapshot, taken after that change).

        ``worker_id``: only if that worker holds the run; else the statement writes
        nothing - neither the run, the thread nor the events (unless the run is gone:
        its stream still ends) - and returns None.

        ``webhook``: the statement and the delivery's insert in one transaction (two
        round trips more: the delivery is made of the ended run)."""
        fields = dict(thread or {})
        sql, args = _end_run_statement(run_id, status, fields, events, keep, worker_id)
        if webhook is None:
            while True:
                row = await self._one(sql, args)
                assert row is not None
                if row[-1]:  # (else the thread changed after this statement's snapshot)
                    break
            return None if row[0] is None else run_row(row[:len(RUN_COLS.split(","))])
        async with self._tx() as cur:
            while True:  # (read committed: each statement has a snapshot of its own)
                await cur.execute(sql, args)
                row = await cur.fetchone()
                assert row is not None
                if row[-1]:
                    break
            if row[0] is None:
                return None
            run = run_row(row[:len(RUN_COLS.split(","))])
            delivery = webhook(run)
            if delivery is not None:
                await cur.execute(_QUEUE_WEBHOOK, (*delivery, now_iso()))
        return run

    async def request_cancel(self, run_ids: Sequence[str], action: CancelAction) -> list[dict]:
        found = []
        async with self._tx() as cur:
            for run_id in run_ids:
                await cur.execute(
                    f"SELECT {RUN_COLS} FROM server_runs WHERE run_id = %s FOR UPDATE",
                    (run_id,),
                )
                row = await cur.fetchone()
                if row is None:
                    continue
                run = run_row(row)
                found.append(run)
                if run["status"] == "pending":  # never started: ends here and now
                    if action == "rollback":
                        await cur.execute("DELETE FROM server_runs WHERE run_id = %s", (run_id,))
                    else:
                        await cur.execute(
                            "UPDATE server_runs SET status = 'interrupted', cancel_action = %s, "
                            "updated_at = %s WHERE run_id = %s",
                            (action, now_iso(), run_id),
                        )
                    await cur.execute(_NOTIFY, (RUN, run_id))
                    await cur.execute(_NOTIFY, (WORK, ""))
                elif run["status"] == "running":
                    await cur.execute(
                        "UPDATE server_runs SET cancel_action = %s WHERE run_id = %s",
                        (action, run_id),
                    )
                    run["cancel_reason"] = action
                    await cur.execute(_NOTIFY, (CANCEL, f"{run_id} {action}"))
        return found

    async def requeue_expired(self) -> list[str]:
        rows = await self._rows(
            "UPDATE server_runs SET status = 'pending', worker_id = NULL, "
            "lease_expires_at = NULL WHERE run_id IN (SELECT run_id FROM server_runs "
            "WHERE status = 'running' AND lease_expires_at < clock_timestamp() "
            "FOR UPDATE SKIP LOCKED) RETURNING run_id"
        )
        ids = [r[0] for r in rows]
        if ids:
            await self._rows(_NOTIFY, (WORK, ""))
        await self._cleanup_streams()
        return ids

    async def wait_for_work(self, timeout: float) -> None:
        assert self._work is not None, "setup() first"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    async def wait_run(self, run_id: str, timeout: float | None) -> dict | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        event = asyncio.Event()
        waiters = self._run_waiters.setdefault(run_id, set())
        waiters.add(event)
        try:
            while True:
                event.clear()
                run = await self.get_run(run_id)
                if run is None or run["status"] not in RUN_ACTIVE:
                    return run
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return run
                # a lost notification costs at most a few seconds, never a hang
                wait = 5.0 if left is None else min(left, 5.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), wait)
        finally:
            waiters.discard(event)
            if not waiters:
                self._run_waiters.pop(run_id, None)

    async def watch_cancellations(self, callback: CancelCallback) -> None:
        self._cancel_callbacks.append(callback)

    # -- duties of one process at a time ----------------------------------------------

    async def lead(self, duty: str) -> bool:
        """A session advisory lock per duty on a connection of this process's own: held
        until the process (or that connection) ends, then the next process asking
        gets it. A duty held is checked each time: one round trip on that connection,
        which the database may have dropped (a restart) - its locks with it, which
        another process may hold now."""
        import psycopg

        try:
            if duty in self._duties and self._leader is not None and not self._leader.closed:
                with contextlib.suppress(psycopg.OperationalError):  # (then asked again)
                    await self._leader.execute("SELECT 1")
                    return True
            if self._leader is None or self._leader.closed or self._leader.broken:
                self._duties.clear()
                if self._leader is not None:
                    await self._leader.close()
                self._leader = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            cur = await self._leader.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_DUTY_LOCK, duty)
            )
            row = await cur.fetchone()
        except psycopg.Error as exc:
            log.warning("asking for the %s duty failed (%s: %s)", duty, type(exc).__name__,
                        str(exc).strip(), exc_info=not self.unavailable(exc))
            return False
        if row and row[0]:
            self._duties.add(duty)
            return True
        return False

    # -- webhooks ----------------------------------------------------------------------

    async def queue_webhook(self, url: str, body: bytes, name: str) -> None:
        await self._rows(_QUEUE_WEBHOOK, (url, body, name, now_iso()))

    async def take_webhooks(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        rows = await self._rows(
            "WITH due AS (SELECT id FROM server_webhooks WHERE next_at <= extract(epoch FROM "
            "clock_timestamp()) ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE server_webhooks w SET next_at = extract(epoch FROM clock_timestamp()) + "
            "%s FROM due WHERE w.id = due.id RETURNING w.id, w.url, w.body, w.name, "
            "w.attempts", (limit, float(lease_seconds)))
        return [{"id": r[0], "url": r[1], "body": bytes(r[2]), "name": r[3],
                 "attempts": r[4]} for r in sorted(rows)]

    async def end_webhook(self, webhook_id: int, *, retry_at: float | None = None,
                          error: str | None = None) -> None:
        if retry_at is None:
            await self._rows("DELETE FROM server_webhooks WHERE id = %s", (webhook_id,))
            return
        await self._rows(
            "UPDATE server_webhooks SET next_at = %s, attempts = attempts + 1, error = %s "
            "WHERE id = %s", (float(retry_at), error, webhook_id))

    # -- streams -----------------------------------------------------------------------

    async def publish(self, run_id: str, event: str, data: bytes, *, keep: bool) -> str:
        return await self._append(run_id, [(event, data, keep)])

    async def publish_many(self, run_id: str, events: Sequence[tuple[str, bytes]], *,
                           keep: bool) -> None:
        """The events in one statement: one round trip, one notification."""
        if events:
            await self._append(run_id, [(e, d, keep) for e, d in events])

    async def _append(self, run_id: str, events: Sequence[tuple[str, bytes, bool]]) -> str:
        """Append ``events`` in one relaxed statement with their notification; the id
        of the last."""
        sql, args = _events_cte(run_id, events)
        note, note_args = _stream_note(run_id)
        row = await self._one(
            f"WITH {sql} SELECT max(e.id), {note}, {_RELAXED} FROM e", (*args, *note_args)
        )
        assert row is not None
        return str(row[0])

    async def close_stream(self, run_id: str) -> None:
        await self.publish(run_id, CLOSED, b"", keep=True)

    async def _cleanup_streams(self) -> None:
        """Delete the streams closed more than ``retain_seconds`` ago (at most every
        30 s per process)."""
        now = time.monotonic()
        if now - self._last_cleanup < 30.0:
            return
        self._last_cleanup = now
        await self._rows(
            "DELETE FROM server_run_events WHERE run_id IN (SELECT run_id FROM "
            "server_run_events WHERE event = '' AND at < now() - make_interval(secs => %s))",
            (self.retain_seconds,),
        )

    def subscribe(self, run_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        waker = asyncio.Event()
        self._stream_waiters.setdefault(run_id, set()).add(waker)
        if run_id in self._fresh:
            # queued here just now and no event heard of yet: everything is live (for
            # every subscriber: the run's own stream and the threads joined to it)
            live_from: int | None = 0
        else:
            live_from = self._seen.get(run_id)  # None: the table's newest, when iterated
        return self._follow(run_id, waker, _parse(after), live_from)

    async def _follow(self, run_id: str, waker: asyncio.Event, after: int | None,
                      live_from: int | None) -> AsyncIterator[StreamEvent]:
        # a run queued here just now has not ended: its first empty read asks nothing more
        started = live_from == 0
        try:
            if live_from is None:
                row = await self._one(
                    "SELECT coalesce(max(id), 0) FROM server_run_events WHERE run_id = %s",
                    (run_id,),
                )
                live_from = int(row[0]) if row else 0
            position = live_from if after is None else after
            # a run queued here just now has published nothing this process has not
            # heard of: no need to read before its first notification - unless one came
            # before this first step (the clear below would lose its wake-up), or even
            # before the queueing returned here (on a busy event loop the run can have
            # ended by then: its notification found no subscriber to keep its events for)
            unread = (started and after is None and not waker.is_set()
                      and run_id not in self._seen)
            ended_since: float | None = None
            while True:
                waker.clear()
                # the events that follow ``position``, from a notification if one
                # carried them, else from the table
                inline = self._inline.get(run_id, {}).get(position)
                if inline is not None:
                    rows: Sequence[tuple] = inline
                elif unread:
                    rows = []
                else:
                    rows = await self._rows(_READ_EVENTS, (run_id, position, READ_BYTES),
                                            binary=True)
                unread = False
                for event_id, event, data, keep, *_ in rows:
                    if event == CLOSED:
                        return
                    position = event_id
                    if keep or event_id > live_from:
                        yield StreamEvent(str(event_id), event, bytes(data))
                if inline is None:  # a read stops at _READ_ROWS rows or READ_BYTES
                    more = bool(rows) and (len(rows) < rows[-1][4] or
                                           rows[-1][4] == _READ_ROWS)
                else:
                    more = position in self._inline.get(run_id, {})
                got, rows, data = bool(rows), (), b""  # (not held through the next read)
                if more:
                    continue
                if not got and started:
                    started = False
                elif not got:
                    # a stream nobody will close: the run is over (or gone) and its
                    # worker did not get to close it (it died); give the closing a moment
                    run = await self.get_run(run_id)
                    if run is None or run["status"] not in RUN_ACTIVE:
                        if ended_since is None:
                            ended_since = time.monotonic()
                        elif time.monotonic() - ended_since > 2.0:
                            return
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(waker.wait(), 0.5)
                        continue
                    ended_since = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), 5.0)
        finally:
            waiters = self._stream_waiters.get(run_id)
            if waiters is not None:
                waiters.discard(waker)
                if not waiters:
                    self._stream_waiters.pop(run_id, None)
                    self._inline.pop(run_id, None)

    # -- crons -------------------------------------------------------------------------

    @staticmethod
    def _cron_values(rec: dict[str, Any]) -> tuple[Any, ...]:
        return (rec["cron_id"], rec.get("assistant_id"), rec.get("thread_id"),
                rec.get("user_id"), rec["schedule"], rec.get("timezone"), rec.get("end_time"),
                to_json(rec["payload"]), to_json(rec["metadata"]), int(rec["enabled"]),
                rec.get("on_run_completed"), rec.get("next_run_date"), rec["created_at"],
                rec["updated_at"])

    async def create_cron(self, record: dict[str, Any]) -> dict:
        await self._rows(
            f"INSERT INTO server_crons ({CRON_COLS}) VALUES "
            "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            self._cron_values(record),
        )
        return record

    async def get_cron(self, cron_id: str) -> dict | None:
        row = await self._one(
            f"SELECT {CRON_COLS} FROM server_crons WHERE cron_id = %s", (cron_id,)
        )
        return None if row is None else cron_row(row)

    async def update_cron(self, cron_id: str, **fields: Any) -> dict | None:
        async with self._tx() as cur:
            await cur.execute(
                f"SELECT {CRON_COLS} FROM server_crons WHERE cron_id = %s FOR UPDATE",
                (cron_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            rec = {**cron_row(row), **fields, "updated_at": now_iso()}
            columns = [c.strip() for c in CRON_COLS.split(",")]
            sets = ", ".join(f"{c} = %s" for c in columns[1:])
            await cur.execute(
                f"UPDATE server_crons SET {sets} WHERE cron_id = %s",
                (*self._cron_values(rec)[1:], cron_id),
            )
            return rec

    async def delete_cron(self, cron_id: str) -> bool:
        rows = await self._rows(
            "DELETE FROM server_crons WHERE cron_id = %s RETURNING 1", (cron_id,)
        )
        return bool(rows)

    async def search_crons(self, *, assistant_id, thread_id, enabled, limit, offset, sort_by,
                           sort_order) -> list[dict]:
        sql = f"SELECT {CRON_COLS} FROM server_crons WHERE true"
        args: list[Any] = []
        if assistant_id is not None:
            sql += " AND assistant_id = %s"
            args.append(assistant_id)
        if thread_id is not None:
            sql += " AND thread_id = %s"
            args.append(thread_id)
        if enabled is not None:
            sql += " AND enabled = %s"
            args.append(int(enabled))
        order = order_by(sort_by, sort_order, CRON_SORT, "created_at")
        sql += f" ORDER BY {order} LIMIT %s OFFSET %s"
        args += [limit if limit >= 0 else None, offset]  # NULL: no limit
        return [cron_row(r) for r in await self._rows(sql, args)]

    async def set_thread_ttl(self, thread_id: str, expires_at: float | None,
                             strategy: str = "delete") -> None:
        async with self._tx() as cur:
            if expires_at is None:
                await cur.execute("DELETE FROM server_thread_ttl WHERE thread_id = %s",
                                  (thread_id,))
                return
            await cur.execute(
                "INSERT INTO server_thread_ttl (thread_id, strategy, expires_at) VALUES "
                "(%s,%s,%s) ON CONFLICT (thread_id) DO UPDATE SET strategy = "
                "excluded.strategy, expires_at = excluded.expires_at",
                (thread_id, strategy, expires_at),
            )

    async def expired_threads(self, now: float) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in await self._rows(
            "SELECT thread_id, strategy FROM server_thread_ttl WHERE expires_at <= %s "
            "ORDER BY expires_at", (now,),
        )]

    async def due_crons(self, now_iso: str) -> list[dict]:
        return [
            cron_row(r) for r in await self._rows(
                f"SELECT {CRON_COLS} FROM server_crons WHERE enabled = 1 AND "
                "next_run_date IS NOT NULL AND next_run_date <= %s",
                (now_iso,),
            )
        ]


def _events_cte(run_id: str, events: Sequence[tuple[str, bytes, bool]], *,
                when: str = "true") -> tuple[str, list[Any]]:
    """The CTE ``e`` appending ``events`` (name, data, keep) to a run's stream in order
    (``RETURNING`` their rows: ``id``, ``event``, ``keep``, ``size``, and ``data`` only
    where the notification may carry it, else NULL - not a copy of a large value held
    to the statement's end) if the SQL condition ``when`` holds, and its
    parameters. The data go in binary (``%b``): as a text array each value would be
    escaped to twice its size, in Python (a 50 MB value: ~1 s, against 0.06)."""
    return (
        "e AS (INSERT INTO server_run_events (run_id, event, data, keep) "
        "SELECT %s, e, d, k FROM unnest(%s::text[], %b::bytea[], %s::bool[]) "
        f"WITH ORDINALITY AS u(e, d, k, n) WHERE {when} ORDER BY n "
        f"RETURNING id, event, keep, octet_length(data) AS size, CASE WHEN octet_length("
        f"data) <= {INLINE_BYTES} THEN data END AS data)",
        [run_id, [e[0] for e in events], [e[1] for e in events], [e[2] for e in events]],
    )


#: ``queue_webhook``'s statement: a delivery due now (``url``, ``body``, ``name``,
#: ``created_at``)
_QUEUE_WEBHOOK = (
    "INSERT INTO server_webhooks (url, body, name, next_at, created_at) VALUES "
    "(%s, %s, %s, extract(epoch FROM clock_timestamp()), %s)"
)


def _end_run_statement(run_id: str, status: str, fields: dict[str, Any],
                       events: Sequence[tuple[str, bytes]] | None, keep: bool,
                       worker_id: str | None = None) -> tuple[str, list[Any]]:
    """``PostgresStorage.end_run``'s statement and its parameters. Its row: the ended
    run's ``RUN_COLS`` (NULLs when there is no such run), the notifications' and
    ``set_config``'s results, and whether the statement's snapshot saw the thread's
    latest version - else it wrote nothing (the runs it would have read may be out of
    date) and is to be run again."""
    now = now_iso()
    sets, set_args = ended_thread_sets(fields, now, "%s")
    if "status" in fields:
        own_status, status_args = "%s", [fields["status"]]
    else:
        own_status, status_args = "server_threads.status", []
    busy = "cardinality((SELECT s FROM o)) > 0"
    # the thread's lock first (the order create_run and delete_thread take), in the
    # InitPlan of the run's UPDATE; relaxed (set_config): if lost, the run's lease runs
    # out and it is run again from its (durable) last checkpoint, where it ends at once
    ctes = [
        "th AS (SELECT xmin::text AS x FROM server_threads WHERE thread_id = (SELECT "
        "thread_id FROM server_runs WHERE run_id = %s) FOR UPDATE)",
        "snap AS (SELECT xmin::text AS x FROM server_threads WHERE thread_id = (SELECT "
        "thread_id FROM server_runs WHERE run_id = %s))",
        # the lock, then: is the thread still the version this statement's snapshot
        # holds (the runs it reads are then up to date)? Nothing is written if not
        "ok AS (SELECT (SELECT x FROM th) IS NOT DISTINCT FROM (SELECT x FROM snap) AS ok)",
        "r AS (UPDATE server_runs SET status = %s, updated_at = %s, worker_id = NULL, "
        "lease_expires_at = NULL WHERE run_id = %s AND (SELECT ok FROM ok) "
        f"{'' if worker_id is None else 'AND worker_id = %s '}RETURNING {RUN_COLS})",
        "o AS (SELECT coalesce(array_agg(o.status), '{}') AS s FROM server_runs o WHERE "
        "o.thread_id = (SELECT thread_id FROM r) AND o.run_id != %s AND o.status IN "
        "('pending', 'running'))",
        f"t AS (UPDATE server_threads SET {', '.join(sets)}, status = CASE WHEN {busy} "
        f"THEN 'busy' ELSE {own_status} END WHERE thread_id = (SELECT thread_id FROM r) "
        f"AND (%s OR {busy}) RETURNING thread_id)",
    ]
    args: list[Any] = [run_id, run_id, status, now, run_id,
                       *([] if worker_id is None else [worker_id]), run_id, *set_args,
                       *status_args, bool(fields)]
    notes = [
        # the run ended and (its id, then the thread's) the thread's record changed: one
        # notification for both, not one on THREADS too (PostgreSQL wakes every
        # listening connection of the database for each notification)
        "CASE WHEN r.run_id IS NOT NULL THEN pg_notify(%s, r.run_id || "
        "coalesce(' ' || (SELECT thread_id FROM t), '')) END",
        # a run queued behind this one may start now
        "CASE WHEN (SELECT 'pending' = ANY(s) FROM o) THEN pg_notify(%s, '') END",
    ]
    note_args: list[Any] = [RUN, WORK]
    if events is not None:
        # (a worker no longer holding the run leaves its stream to the one that does;
        # a run deleted meanwhile still has its stream ended)
        when = "(SELECT ok FROM ok)" if worker_id is None else (
            "(SELECT ok FROM ok) AND (EXISTS (SELECT 1 FROM r) OR NOT EXISTS (SELECT 1 "
            "FROM server_runs WHERE run_id = %s))")
        sql, values = _events_cte(run_id, [*((e, d, keep) for e, d in events),
                                           (CLOSED, b"", True)], when=when)
        ctes.append(sql)
        args += [*values, *([] if worker_id is None else [run_id])]  # (``when``'s last)
        note, values = _stream_note(run_id)
        notes.append(f"(SELECT {note} FROM e HAVING count(*) > 0)")
        note_args += values
    cols = ", ".join(f"r.{c.strip()}" for c in RUN_COLS.split(","))
    return (
        f"WITH {', '.join(ctes)} SELECT {cols}, {', '.join(notes)}, {_RELAXED}, "
        "(SELECT ok FROM ok) FROM (SELECT 1) AS one LEFT JOIN r ON true",
        [*args, *note_args],
    )


#: a subscriber's read of a run's events: the rows after an id, at most 500, each taken
#: while those before it in the read hold less than READ_BYTES of data (a read holds at
#: most READ_BYTES plus one event) - a run whose events carry a large state (``values``
#: mode) is read a few at a time, not hundreds of copies of it at once. Its rows: id,
#: event, data, keep, and how many the page had before the bytes' cap (more may follow
#: when it is 500, or more than the rows returned)
READ_BYTES = 8 * 1024 * 1024
_READ_ROWS = 500
_READ_EVENTS = (
    "SELECT id, event, data, keep, paged FROM (SELECT id, event, data, keep, count(*) "
    "OVER () AS paged, sum(octet_length(data)) OVER (ORDER BY id) - octet_length(data) AS "
    "before FROM (SELECT id, event, data, keep FROM server_run_events WHERE run_id = %s "
    f"AND id > %s ORDER BY id LIMIT {_READ_ROWS}) page) capped WHERE before < %s ORDER BY id"
)


#: the most bytes (names and data) of the events a stream notification carries
INLINE_BYTES = 3000
_INLINE_COUNT = 16


def _stream_note(run_id: str) -> tuple[str, list[Any]]:
    """The notification of the rows of CTE ``e`` (an aggregate over ``e``), and its
    parameters: ``<run id> <newest id>`` and, when they are few and small, `` <the run's
    newest id before them> <[[id, name, keep, base64 data], ...]>`` - the events
    themselves, which a subscriber that has read up to that id takes from the
    notification instead of reading the table (PostgreSQL caps a payload at 8000
    bytes). The id before them is read in the statement's snapshot: without the rows
    it inserts. (The aggregate's ``FILTER``: an aggregate is computed whatever the
    ``CASE`` around it decides - without it a 50 MB event was base64-encoded and
    escaped into JSON, 2 s of the database's CPU, to be thrown away.)"""
    return (
        "pg_notify(%s, %s || ' ' || max(e.id) || CASE WHEN count(*) <= "
        f"{_INLINE_COUNT} AND sum(e.size + octet_length(e.event)) <= "
        f"{INLINE_BYTES} THEN ' ' || (SELECT coalesce(max(o.id), 0) FROM "
        "server_run_events o WHERE o.run_id = %s) || ' ' || json_agg(json_build_array("
        "e.id, e.event, e.keep, encode(e.data, 'base64')) ORDER BY e.id) FILTER (WHERE "
        f"e.size <= {INLINE_BYTES})::text ELSE '' END)",
        [STREAM, run_id, run_id],
    )


#: the modules whose calls to psycopg go to the server's own database (its checkpointer,
#: its store, this storage) - not a node's own calls to a database of its own
_OWN_DATABASE_CALLERS = ("threadloom.checkpoint.", "threadloom.store.",
                         "threadloom.server.storage.")


#: the server's refusals of a connection that pass (libpq gives a refused connection no
#: SQLSTATE, only the server's message): starting up, shutting down, in recovery, full
_PASSING_REFUSALS = ("starting up", "shutting down", "recovery", "too many clients",
                     "not yet accepting connections")


def _not_up_yet(reason: str) -> bool:
    """Whether a failed connection (its message) may work later: nothing answered (no
    server's ``FATAL``: refused, timed out, no route), or the server refused it for now
    (``_PASSING_REFUSALS``) - not for good (no such database, a wrong password)."""
    if "FATAL:" not in reason:
        return True
    return any(words in reason for words in _PASSING_REFUSALS)


def _connection_lost(sqlstate: str | None) -> bool:
    """Whether an ``OperationalError`` with this SQLSTATE is the connection or the
    server going away (or a transaction the database asks to retry), not a statement
    that would fail again (a statement timeout, ``57014``)."""
    return (sqlstate is None  # (raised by the client: the connection dropped, a pool's
            # timeout, a refused connection)
            or sqlstate[:2] in ("08", "40")  # connection exceptions; serialization,
            # deadlock
            or sqlstate in ("57P01", "57P02", "57P03", "53300"))  # shutting down,
            # starting up, too many connections


def _caller(error: BaseException) -> str:
    """The module of the innermost frame of ``error``'s traceback outside psycopg and
    the standard library (``contextlib``, ``asyncio``): the code that called psycopg."""
    caller = ""
    tb = error.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        top = name.partition(".")[0]
        if top not in ("psycopg", "psycopg_pool") and top not in sys.stdlib_module_names:
            caller = name
        tb = tb.tb_next
    return caller


def _inline_events(body: str) -> list[tuple[int, str, bytes, bool]] | None:
    """The events a stream notification carries (see ``_stream_note``), or None."""
    import base64
    import json

    try:
        return [(int(i), str(e), base64.b64decode(d), bool(k)) for i, e, k, d in json.loads(body)]
    except (ValueError, TypeError):
        return None


def _parse(event_id: str | None) -> int | None:
    if event_id is None or event_id == "":
        return None
    try:
        return int(str(event_id).split("-", 1)[0])
    except ValueError:
        return 0
