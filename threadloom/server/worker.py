"""``Worker``: takes queued runs from the storage and executes them.

The embedded server runs one inside its own process; with PostgreSQL, ``threadloom
worker`` processes run the same class against the shared database. A worker:

* registers with the storage (``register_worker``: on PostgreSQL, a queued run's
  notification then goes to one worker, not to all) and unregisters when it stops;
* takes only runs of the graphs it serves (``graph_ids``: a worker deployed with an
  older config, or one dedicated to some graphs, leaves the others' runs queued for
  the workers that serve them, instead of failing them);
* executes up to ``concurrency`` runs at once; claims as many runs as it has free slots
  in one call (``Storage.claim_runs``: one round trip on PostgreSQL), claims again when
  a run ends if the last claim filled every slot, and else sleeps in ``wait_for_work``
  (woken when a run is queued or a thread freed) until there is something to take;
* renews the leases of the runs it holds every ``lease_seconds / 3``, in one statement
  (a worker that stops renewing loses its runs to ``requeue_expired``, run by every
  worker); a run whose lease it finds lost - its event loop was blocked, or the
  database out of reach, for longer than the lease - it lets go at once: the task is
  cancelled, nothing recorded, and the worker that took it over finishes it;
* cancels the task of a run when a cancel request for it arrives
  (``watch_cancellations``), recording the action asked for - also when the request
  arrives just before the claim that started the run returned here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections import OrderedDict
from collections.abc import Collection
from typing import Any

from threadloom.server.config import RUN_SLOTS
from threadloom.server.executor import RunHold, execute_run
from threadloom.server.periodic import log_failure
from threadloom.server.records import new_id
from threadloom.server.services.threads import ThreadService

__all__ = ["Worker"]

log = logging.getLogger("threadloom.server")


class Worker:
    """Executes queued runs (see the module docstring)."""

    def __init__(
        self,
        threads: ThreadService,
        *,
        concurrency: int = RUN_SLOTS,
        lease_seconds: float = 30.0,
        worker_id: str | None = None,
        graph_ids: Collection[str] | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency: the runs a worker executes at once must be a "
                             f"whole number of at least 1, got {concurrency!r}")
        if not (isinstance(lease_seconds, (int, float)) and 0 < lease_seconds < math.inf):
            raise ValueError(f"lease_seconds must be a positive number of seconds (a run "
                             f"is handed on when its lease is not renewed for that long), "
                             f"got {lease_seconds!r}")
        self.threads = threads
        self.storage = threads.ctx.storage
        self.concurrency = concurrency
        self.lease_seconds = float(lease_seconds)
        self.graph_ids = None if graph_ids is None else tuple(graph_ids)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        self._running: dict[str, tuple[asyncio.Task[None], RunHold]] = {}
        self._freed = asyncio.Event()  # set when a run ends (a slot is free)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        # cancel requests for runs not (yet) held here, most recent last
        self._early: OrderedDict[str, str] = OrderedDict()

    async def start(self) -> None:
        """Start claiming runs in the background."""
        await self.storage.watch_cancellations(self._on_cancel)
        # (a storage shared by several processes may then wake this one alone for a run)
        await self.storage.register_worker(self.worker_id, self.concurrency, self.graph_ids)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="threadloom-claim"),
            asyncio.create_task(self._lease_loop(), name="threadloom-lease"),
        ]

    async def stop(self) -> None:
        """Stop claiming; stop the runs in progress and put them back in the queue at
        once, for any worker to take over from their last checkpoints (a deploy or a
        scale-down does not leave them waiting for their leases to run out). A run whose
        end is being written finishes first."""
        self._stopping = True
        # first: no run is meant for this worker any more
        with contextlib.suppress(Exception):
            await self.storage.unregister_worker(self.worker_id)
        for task in self._tasks:
            task.cancel()
        held = list(self._running.items())
        for _, (task, hold) in held:
            if not hold.ending:
                task.cancel()
        for task in [*self._tasks, *(task for _, (task, _) in held)]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # (the tasks are done: their graphs let go of the threads' run locks)
        for run_id, (_, hold) in held:
            if not (hold.ending or hold.lost):
                try:
                    await self.storage.release_run(run_id, self.worker_id, 0.0)
                except Exception:  # the database is away: the lease hands it on
                    log.warning("run %s: not put back in the queue (its lease will "
                                "hand it on)", run_id, exc_info=True)

    def _on_cancel(self, run_id: str, action: str) -> None:
        held = self._running.get(run_id)
        if held is None:  # maybe claimed here a moment ago: remembered for _claim_loop
            self._early[run_id] = action
            while len(self._early) > 1000:
                self._early.popitem(last=False)
            return
        task, hold = held
        if hold.ending or hold.lost:  # its end is being written, or it is not ours
            return
        hold.action = hold.action or action
        task.cancel()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._running)
            if free <= 0:  # every slot taken: claim again when a run ends
                self._freed.clear()
                await self._freed.wait()
                continue
            try:  # as many as there are free slots, in one round trip
                runs = await self.storage.claim_runs(self.worker_id, self.lease_seconds, free,
                                                     self.graph_ids)
            except Exception as exc:  # the database is away: try again shortly
                log_failure(self.storage, "claiming a run", exc)
                await asyncio.sleep(1.0)
                continue
            for run in runs:
                self._start(run)
            if len(runs) < free:  # nothing more to take now: until a run is queued
                await self.storage.wait_for_work(timeout=1.0)

    def _start(self, run: dict[str, Any]) -> None:
        held = self._running.get(run["run_id"])
        if held is not None and not held[1].lost:
            # its lease ran out and this worker claimed it back while still executing
            # it: that execution goes on, holding the run again
            return
        hold = RunHold(worker_id=self.worker_id)
        task = asyncio.create_task(self._execute(run, hold), name=f"run-{run['run_id']}")
        self._running[run["run_id"]] = (task, hold)
        # a cancel asked of the worker that held it before (and died), or one that
        # arrived here just before this claim returned
        early = self._early.pop(run["run_id"], None) or run.get("cancel_reason")
        if early is not None:  # once the task has started (a task cancelled before
            # its first step would skip execute_run's own handling)
            asyncio.get_running_loop().call_soon(self._on_cancel, run["run_id"], early)

    async def _execute(self, run: dict[str, Any], hold: RunHold) -> None:
        run_id = run["run_id"]
        try:
            await execute_run(self.threads, run, hold)
        except asyncio.CancelledError:
            if hold.lost:
                log.warning(
                    "run %s: this worker did not renew its lease for %s s (its event loop "
                    "blocked, or the database out of reach) and another worker may have "
                    "taken it over: stopped here, recorded by whoever holds it now",
                    run_id, self.lease_seconds)
            elif not self._stopping:
                log.warning("run %s was cancelled without a cancel request", run_id)
        except Exception as exc:
            if self.storage.unavailable(exc):
                log.warning("run %s could not be recorded nor put back in the queue: the "
                            "database is out of reach (%s: %s); once its lease runs out "
                            "it goes on from its last checkpoint", run_id,
                            type(exc).__name__, str(exc).strip())
            else:
                log.exception("run %s could not be recorded", run_id)
        finally:
            if self._running.get(run_id, (None, None))[1] is hold:  # (not a later claim's)
                del self._running[run_id]
            self._freed.set()

    async def _lease_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self._renew_leases()
                await self.storage.requeue_expired()
            except Exception as exc:
                log_failure(self.storage, "renewing leases", exc)

    async def _renew_leases(self) -> None:
        """Renew the leases of the runs held here; let go of those lost."""
        asked = dict(self._running)
        if not asked:
            return
        held = await self.storage.renew_leases(list(asked), self.worker_id,
                                               self.lease_seconds)
        for run_id, (task, hold) in asked.items():
            if run_id in held or hold.ending or self._running.get(run_id) != (task, hold):
                continue  # held, or ending (its end is what took it), or started again
            hold.lost = True
            task.cancel()
