"""``Storage``: the one interface between the server's services and its database.

It holds the server's records (assistants, threads, runs, crons), the run queue the
workers take runs from, the streams of run events, and it hands out the checkpointer
and the store the graphs run on. Two implementations fit behind it: ``SqliteStorage``
(one SQLite file, one process: the embedded default) and a PostgreSQL one for any number
of ``threadloom worker`` processes. Routes and services only ever talk to this
interface, so adding an implementation changes neither.

Records are plain JSON-ready dicts with the keys the Agent Server API returns
(``threadloom/server/records.py`` builds them); timestamps are ISO 8601 strings with an
offset. Every method is a coroutine: the SQLite implementation runs its statements on
one worker thread, the PostgreSQL one on an async connection pool.

What an implementation must guarantee (the services rely on it):

* **One active run per thread.** ``create_run`` decides a busy thread's
  ``multitask_strategy`` atomically with the insert, and ``claim_run`` hands out a run
  only when no other run of its thread is ``running`` (a database constraint, not a
  check in Python, when several processes claim).
* **Leases.** A claimed run belongs to its worker until ``lease_seconds`` pass without
  ``renew_leases``; ``requeue_expired`` puts such runs back to ``pending`` (their graph
  resumes from the last checkpoint, since the run's config names the thread). Only the
  worker holding a run ends it (``end_run`` / ``finish_run`` with its ``worker_id``)
  or puts it back (``release_run``).
* **Wake-ups, not polling.** ``wait_for_work`` returns as soon as a run is queued
  (SQLite: an in-process event; PostgreSQL: LISTEN/NOTIFY), ``wait_run`` as soon as a
  run finishes, ``watch_cancellations`` delivers cancel requests to the process running
  the run.
* **Streams.** ``publish`` gives each event of a run a strictly increasing id;
  ``subscribe(after=id)`` replays the kept events after that id, then follows live
  ones until ``close_stream``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CLAIMED_ASSISTANT",
    "RUN_ACTIVE",
    "RUN_TERMINAL",
    "CancelAction",
    "CancelCallback",
    "RunWebhook",
    "StreamEvent",
    "Storage",
]

CancelAction = Literal["interrupt", "rollback"]
CancelCallback = Callable[[str, CancelAction], Awaitable[None] | None]
"""Called with ``(run_id, action)`` in the process running the run."""

RunWebhook = Callable[[dict[str, Any]], tuple[str, bytes, str] | None]
"""A webhook delivery kept with a run's end (``finish_run`` / ``end_run``): called with
the ended run's record, it gives ``(url, body, name)`` - what ``queue_webhook`` keeps -
or None for none. Kept in the end's own transaction: a process killed just after the end
is written has its webhook kept too."""

RUN_ACTIVE = ("pending", "running")
RUN_TERMINAL = ("success", "error", "interrupted", "timeout")
#: the key of a claimed run holding its assistant's record as of the claim (``claim_runs``)
CLAIMED_ASSISTANT = "_assistant"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One server-sent event of a run: ``id`` strictly increases within the run."""

    id: str
    event: str
    data: bytes  # JSON text


class Storage(abc.ABC):
    """Records, run queue and run streams of one server (see the module docstring)."""

    #: the checkpointer every served graph runs on (a ``BaseCheckpointSaver``)
    checkpointer: Any
    #: the store every served graph and the ``/store`` routes use (a ``BaseStore``)
    store: Any
    #: whether several processes share this storage (then the API process only queues
    #: runs and ``threadloom worker`` processes execute them); False: one process does all
    shared: bool = False

    # -- lifecycle ---------------------------------------------------------------------

    @abc.abstractmethod
    async def setup(self) -> None:
        """Create or migrate the tables (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the storage is not used afterwards."""

    # -- assistants --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_assistant(self, record: dict[str, Any], *, if_exists: str) -> dict[str, Any]:
        """Insert an assistant (version 1). ``if_exists``: ``raise`` -> ``Conflict`` on a
        duplicate id, ``do_nothing`` -> the existing one."""

    @abc.abstractmethod
    async def get_assistant(self, assistant_id: str) -> dict[str, Any] | None:
        """The assistant at its current version."""

    @abc.abstractmethod
    async def update_assistant(
        self, assistant_id: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Store a new version (version + 1) with ``changes`` (graph_id, config, context,
        name, description replace; metadata is merged) and make it current."""

    @abc.abstractmethod
    async def delete_assistant(self, assistant_id: str) -> bool:
        """Delete the assistant and its versions; False when there was none."""

    @abc.abstractmethod
    async def search_assistants(
        self,
        *,
        graph_id: str | None,
        name: str | None,
        metadata: dict[str, Any] | None,
        limit: int,
        offset: int,
        sort_by: str | None,
        sort_order: str | None,
    ) -> list[dict[str, Any]]:
        """Assistants matching every given filter (metadata: containment)."""

    @abc.abstractmethod
    async def count_assistants(
        self, *, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None
    ) -> int:
        """How many assistants ``search_assistants`` would find without paging."""

    @abc.abstractmethod
    async def assistant_versions(
        self, assistant_id: str, *, metadata: dict[str, Any] | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """The assistant's versions, newest first."""

    @abc.abstractmethod
    async def set_assistant_version(self, assistant_id: str, version: int) -> dict[str, Any] | None:
        """Make ``version`` current; None when the assistant or version is unknown."""

    # -- threads -----------------------------------------------------------------------

    @abc.abstractmethod
    async def create_thread(self, record: dict[str, Any], *, if_exists: str) -> dict[str, Any]:
        """Insert a thread; ``if_exists`` as for assistants."""

    @abc.abstractmethod
    async def get_thread(self, thread_id: str, *, values: bool = True
                         ) -> dict[str, Any] | None:
        """The thread record; without ``values``, its ``values`` None (left unread: a
        large state costs its size to read and parse)."""

    async def get_thread_and_assistant(
        self, thread_id: str, assistant_id: str, *, values: bool = True
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``(get_thread(thread_id, values=values), get_assistant(assistant_id))``: what
        queueing a run reads first. Storages that can read both at once (PostgreSQL:
        one statement) override this."""
        return (await self.get_thread(thread_id, values=values),
                await self.get_assistant(assistant_id))

    @abc.abstractmethod
    async def update_thread(self, thread_id: str, **fields: Any) -> dict[str, Any] | None:
        """Change thread fields: ``metadata`` is merged into the stored one; ``status``,
        ``values``, ``interrupts``, ``error``, ``config`` replace; ``state_updated``
        (bool) bumps ``state_updated_at``."""

    @abc.abstractmethod
    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread, its runs and its checkpoints; False when there was none."""

    @abc.abstractmethod
    async def pending_threads(self, metadata: dict[str, Any] | None,
                              ids: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The threads that may have something waiting for a person (``rows``'
        ``PENDING_THREADS``: interrupted, or busy or failed with interrupts), newest
        first, whose metadata contains ``metadata`` (and, with ``ids``, among those):
        one query on an index of those threads alone (a search by status would read
        every failed thread too). Their records come without state values (``values``
        None, ``rows.PENDING_THREAD_COLS``): what waits is in the interrupts."""

    @abc.abstractmethod
    async def pending_thread_versions(self) -> dict[str, str]:
        """The ids of all the threads ``pending_threads`` returns, each with its
        version (``rows.thread_version``), read from their index without their values:
        what the approval feed reads every second, to read again only the threads whose
        version changed."""

    @abc.abstractmethod
    async def search_threads(
        self,
        *,
        ids: Sequence[str] | None,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | Sequence[str] | None,
        limit: int,
        offset: int,
        sort_by: str | None,
        sort_order: str | None,
    ) -> list[dict[str, Any]]:
        """Threads matching every filter (metadata, values: containment; ``status``: one
        status or any of several), from one query; ``limit`` < 0: all of them."""

    @abc.abstractmethod
    async def count_threads(
        self,
        *,
        metadata: dict[str, Any] | None,
        values: dict[str, Any] | None,
        status: str | None,
    ) -> int:
        """How many threads ``search_threads`` would find without paging."""

    @abc.abstractmethod
    async def set_thread_ttl(self, thread_id: str, expires_at: float | None,
                             strategy: str = "delete") -> None:
        """Expire the thread at ``expires_at`` (unix seconds; None: never)."""

    @abc.abstractmethod
    async def expired_threads(self, now: float) -> list[tuple[str, str]]:
        """``(thread_id, strategy)`` of the threads whose TTL has passed at ``now``."""

    # -- runs and the run queue --------------------------------------------------------

    @abc.abstractmethod
    async def create_run(
        self, record: dict[str, Any], *, multitask_strategy: str,
        thread_metadata: tuple[dict[str, Any], dict[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Queue a run (``status: pending``) and mark its thread ``busy``, atomically with
        the decision on a busy thread: ``reject`` raises ``Conflict``; ``interrupt`` /
        ``rollback`` return the active runs to cancel (the caller calls
        ``request_cancel``); ``enqueue`` queues behind them. Returns ``(run, to_cancel)``
        and wakes a waiting worker.

        ``thread_metadata``: ``(the thread's metadata as the caller read it, keys to
        merge into it)`` - the keys end up in the thread's metadata (as
        ``update_thread(metadata=keys)`` would put them), in the same statement as the
        run where the stored metadata is still what the caller read."""

    @abc.abstractmethod
    async def get_run(self, run_id: str, thread_id: str | None = None) -> dict[str, Any] | None:
        """The run (of that thread, when given)."""

    @abc.abstractmethod
    async def list_runs(
        self, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[dict[str, Any]]:
        """A thread's runs, newest first."""

    @abc.abstractmethod
    async def list_active_runs(self, thread_id: str | None = None) -> list[dict[str, Any]]:
        """Pending and running runs (of one thread, or all), oldest first."""

    @abc.abstractmethod
    async def delete_run(self, run_id: str) -> bool:
        """Delete the run record (its checkpoints stay)."""

    @abc.abstractmethod
    async def claim_run(self, worker_id: str, lease_seconds: float,
                        graph_ids: Collection[str] | None = None) -> dict[str, Any] | None:
        """Take the oldest pending run whose thread has no running run (and no older
        pending run: a thread's runs start in the order they were queued) and whose
        ``after_seconds`` delay has passed: mark it ``running``, owned by ``worker_id``
        for ``lease_seconds``, ``attempt`` + 1. None when there is nothing to take.
        PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so workers never wait on each
        other, with a partial unique index on ``(thread_id) WHERE status = 'running'``.
        ``graph_ids`` as for ``claim_runs``."""

    async def claim_runs(self, worker_id: str, lease_seconds: float, limit: int,
                         graph_ids: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` runs as ``claim_run`` takes them, oldest first (PostgreSQL:
        in one statement). A storage may add to each the run's assistant record as of
        the claim under ``CLAIMED_ASSISTANT`` (None: deleted), which the executor then
        does not read again. ``graph_ids``: only runs of assistants of these graphs
        (the graphs the claiming worker serves; a run whose assistant is gone is taken
        by any worker - it ends at once); None: any run."""
        runs: list[dict[str, Any]] = []
        while len(runs) < limit:
            run = await self.claim_run(worker_id, lease_seconds, graph_ids)
            if run is None:
                break
            runs.append(run)
        return runs

    @abc.abstractmethod
    async def renew_leases(self, run_ids: Sequence[str], worker_id: str,
                           lease_seconds: float) -> set[str]:
        """Extend by ``lease_seconds`` the leases ``worker_id`` holds on ``run_ids`` (one
        statement); returns the runs among them it still holds - running, its own. A
        run missing is no longer this worker's: it ended, or its lease ran out and it
        was put back in the queue (and maybe taken by another worker)."""

    @abc.abstractmethod
    async def release_run(self, run_id: str, worker_id: str, delay_seconds: float) -> bool:
        """Put a run ``worker_id`` holds back in the queue (``pending``, its place in
        the queue kept), to be claimed again no sooner than ``delay_seconds`` from now:
        for a run its worker cannot execute yet (another process still holds its
        thread). False, changing nothing, when the worker does not hold it."""

    def unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` is this storage's database going away - a connection
        lost, the database server shutting down or restarting - raised by the storage,
        its checkpointer or its store, rather than a failure of the graph's own: a run
        failing so is put back in the queue and runs again from its last checkpoint
        (``execute_run``) instead of ending in error. False here (one process, one
        file: nothing to reconnect to)."""
        return False

    @abc.abstractmethod
    async def finish_run(
        self, run_id: str, status: str, *, thread: dict[str, Any] | None,
        worker_id: str | None = None, webhook: RunWebhook | None = None,
    ) -> dict[str, Any] | None:
        """Set the run's final status and, in the same transaction, the thread's fields
        (``update_thread`` keys but ``metadata``: what a run's end sets; the thread
        stays ``busy`` when another run of it is active). Wakes ``wait_run``. Returns
        the run. ``worker_id``: only if that worker holds the run (else nothing is
        written and None returned: a worker whose lease ran out does not end a run
        another worker has taken over). ``webhook``: the delivery the run's end makes,
        kept in the same transaction (see ``RunWebhook``)."""

    def serve_workers_only(self) -> None:
        """This process only executes runs (``threadloom worker``): it follows no run's
        stream and waits for no run. A storage may then skip their wake-ups. Call
        before ``setup``."""
        return None  # (SQLite: one process does everything)

    async def register_worker(self, worker_id: str, slots: int,
                              graph_ids: Collection[str] | None = None) -> None:
        """A ``Worker`` of this process (``worker_id``, running up to ``slots`` runs
        at once, of the graphs ``graph_ids`` - None: any) starts claiming runs. A storage
        shared by several processes may then wake this process alone for some queued
        runs (PostgreSQL: one worker per run, among those serving its graph).
        Never raises: a worker whose registration failed still claims runs, woken as
        every worker is."""
        return None  # (SQLite: one process, one worker)

    async def unregister_worker(self, worker_id: str) -> None:
        """The worker stops claiming runs (``register_worker``'s end). Never raises."""
        return None

    async def end_run(
        self, run_id: str, status: str, *, thread: dict[str, Any] | None,
        events: Sequence[tuple[str, bytes]], keep: bool, worker_id: str | None = None,
        webhook: RunWebhook | None = None,
    ) -> dict[str, Any] | None:
        """``finish_run``, then ``events`` (name, data) appended to the run's stream and
        the stream closed: what a worker does when a run ends - neither where
        ``worker_id`` no longer holds the run (another worker's now). Storages that can
        do it in one transaction (PostgreSQL) override this."""
        finished = await self.finish_run(run_id, status, thread=thread, worker_id=worker_id,
                                         webhook=webhook)
        if finished is None and worker_id is not None and \
                await self.get_run(run_id) is not None:
            return None  # not this worker's run any more: its stream is not ours to end
        for event, data in events:
            await self.publish(run_id, event, data, keep=keep)
        await self.close_stream(run_id)
        return finished

    @abc.abstractmethod
    async def request_cancel(
        self, run_ids: Sequence[str], action: CancelAction
    ) -> list[dict[str, Any]]:
        """Cancel runs: pending ones end at once (``interrupted``, or deleted for
        ``rollback``); running ones get the request delivered to their worker through
        ``watch_cancellations``. Returns the runs found."""

    @abc.abstractmethod
    async def requeue_expired(self) -> list[str]:
        """Put running runs whose lease expired back to ``pending``; their ids."""

    @abc.abstractmethod
    async def wait_for_work(self, timeout: float) -> None:
        """Return when a run may have been queued, or after ``timeout`` seconds."""

    @abc.abstractmethod
    async def wait_run(self, run_id: str, timeout: float | None) -> dict[str, Any] | None:
        """Wait until the run is in a final state (or deleted: None); the run."""

    @abc.abstractmethod
    async def watch_cancellations(self, callback: CancelCallback) -> None:
        """Deliver every later cancel request of a running run to ``callback``."""

    def watch_threads(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (on this process's event loop) whenever a thread record may
        have changed, whichever process changed it. False when this storage cannot tell:
        the caller then looks periodically (the approval feed)."""
        return False

    # -- duties of one process at a time ----------------------------------------------

    @abc.abstractmethod
    async def lead(self, duty: str) -> bool:
        """Whether this process does ``duty`` (``"crons"``, ``"deadlines"``: periodic
        work that only one process may do at a time). Once True it stays True while the
        process (and its database session) lives; another process takes over when it
        ends. One process per database (SQLite): always True."""

    # -- webhooks ----------------------------------------------------------------------

    @abc.abstractmethod
    async def queue_webhook(self, url: str, body: bytes, name: str) -> None:
        """Keep a webhook delivery - a POST of the JSON ``body`` to ``url`` (``name``
        says what it is, for logs) - until ``end_webhook``: due now, it outlives the
        process, for whichever process delivers webhooks to send."""

    @abc.abstractmethod
    async def take_webhooks(self, limit: int, lease_seconds: float) -> list[dict[str, Any]]:
        """Up to ``limit`` deliveries due now, oldest due first (``id``, ``url``, ``body``,
        ``name``, ``attempts`` made so far), each held for ``lease_seconds``: not taken
        again meanwhile, by any process (PostgreSQL: ``FOR UPDATE SKIP LOCKED``) - a
        process that dies holding one leaves it to another once that time has passed."""

    @abc.abstractmethod
    async def end_webhook(self, webhook_id: int, *, retry_at: float | None = None,
                          error: str | None = None) -> None:
        """A delivery taken is over: sent, or given up (``retry_at`` None: forgotten) -
        or to be tried again at ``retry_at`` (seconds since the epoch), one more attempt
        counted and ``error`` kept."""

    # -- run streams -------------------------------------------------------------------

    @abc.abstractmethod
    async def publish(self, run_id: str, event: str, data: bytes, *, keep: bool) -> str:
        """Append one event to the run's stream; its id. ``keep``: stored for replay
        (``stream_resumable``), else delivered only to those listening now."""

    async def publish_many(self, run_id: str, events: Sequence[tuple[str, bytes]], *,
                           keep: bool) -> None:
        """Append ``events`` (name, data) in order (PostgreSQL: in one statement)."""
        for event, data in events:
            await self.publish(run_id, event, data, keep=keep)

    @abc.abstractmethod
    async def close_stream(self, run_id: str) -> None:
        """The run emits nothing more: subscribers end after the events they have."""

    @abc.abstractmethod
    def subscribe(self, run_id: str, *, after: str | None) -> AsyncIterator[StreamEvent]:
        """The run's events: the kept ones after ``after`` (a ``Last-Event-ID``; None:
        none of the past), then live ones until the stream closes. Listening starts
        when this returns (a subscriber made right after ``create_run`` misses nothing),
        not when iteration starts."""

    # -- crons -------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_cron(self, record: dict[str, Any]) -> dict[str, Any]:
        """Insert a cron."""

    @abc.abstractmethod
    async def get_cron(self, cron_id: str) -> dict[str, Any] | None:
        """The cron."""

    @abc.abstractmethod
    async def update_cron(self, cron_id: str, **fields: Any) -> dict[str, Any] | None:
        """Replace cron fields."""

    @abc.abstractmethod
    async def delete_cron(self, cron_id: str) -> bool:
        """Delete the cron."""

    @abc.abstractmethod
    async def search_crons(
        self,
        *,
        assistant_id: str | None,
        thread_id: str | None,
        enabled: bool | None,
        limit: int,
        offset: int,
        sort_by: str | None,
        sort_order: str | None,
    ) -> list[dict[str, Any]]:
        """Crons matching the filters."""

    @abc.abstractmethod
    async def due_crons(self, now_iso: str) -> list[dict[str, Any]]:
        """Enabled crons whose ``next_run_date`` has come."""
