"""Tasks called from inside a running task: the functional API's ``@task`` calls.

A call becomes a child ``Task`` of the superstep that is running, pushed while the step
runs (like a ``Send`` packet, but planned by the caller instead of the last step's
writes). Its id is derived from its caller's id and the call's position, so the same
caller re-run after an interrupt makes the same calls with the same ids. The child runs
in parallel with its caller (on the driver's thread pool, or as an asyncio task), streams
like any task, and its return value is saved as a pending write of the checkpoint. A call
whose result is already saved returns it at once, without running again: this is what
lets an interrupted entrypoint re-run from its top without redoing finished tasks.

The driver of a run puts a ``SyncCalls`` or ``AsyncCalls`` on the run's scope; a task
function reaches it through the running task (``current_task``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from contextvars import copy_context
from typing import Any

from threadloom.constants import PUSH, RETURN
from threadloom.engine.loop import Loop
from threadloom.engine.node_cache import cache_key, decode_writes, encode_writes
from threadloom.engine.requests import Request, aperform, perform
from threadloom.engine.task import Task, task_id
from threadloom.errors import GraphInterrupt

_CALL = "__call__"


def returned(writes: list[tuple[str, Any]]) -> Any:
    """What a finished call returned, from its saved writes."""
    for channel, value in writes:
        if channel == RETURN:
            return value
    return None


def _raise_outcome(child: Task) -> Any:
    if child.error is not None:
        raise child.error
    if child.interrupts:
        raise GraphInterrupt(list(child.interrupts))
    return child.result


class Calls:
    """The calls made during one run of a loop: ids, replays and bookkeeping."""

    def __init__(self, loop: Loop, saver: Any) -> None:
        self.loop = loop
        self.saver = saver
        # calls finished in this run (a caller retried in the same run replays them too)
        self.finished: dict[str, list[tuple[str, Any]]] = {}
        self._lock = threading.Lock()

    def child(self, parent: Task, node: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> tuple[Task | None, Any]:
        """(the task to run, None), or (None, saved result) if this call already finished."""
        with self._lock:
            index = parent.call_index
            parent.call_index += 1
        tid = task_id(parent.id, _CALL, index, node.name)
        loop = self.loop
        saved = self.finished.get(tid)
        if saved is None:
            saved = loop.pending.succeeded.get(tid)
        if saved is not None and not loop.scope.modes & {"tasks", "debug"}:
            return None, returned(saved)
        child = loop.new_task(tid, node.name, (PUSH, index, parent.id), (args, kwargs), node,
                              (), loop.step + 1, parent.managed)
        if saved is not None:  # shown as started again, as LangGraph does; not run
            loop.task_started(child)
            return None, returned(saved)
        callbacks = parent.config.get("callbacks")
        if callbacks is not None:  # traced as a child run of its caller
            child.config = {**child.config, "callbacks": callbacks}
        child.load_answers(loop.pending.resumes.get(tid), loop.pending.interrupts.get(tid, ()))
        loop.task_started(child)
        return child, None

    def cache_key(self, child: Task) -> Any:
        """Where the result of ``child`` is cached, if its task has a ``CachePolicy``
        and the run a cache (the key comes from the call's arguments)."""
        policy = child.node.cache_policy
        if policy is None or self.loop.scope.cache is None:
            return None
        args, kwargs = child.input
        return (child.node.cache_ns, cache_key(policy, *args, **kwargs))

    def from_cache(self, child: Task, found: dict[Any, Any], key: Any) -> bool:
        writes = decode_writes(found[key]) if key in found else None
        if writes is None:
            return False
        child.writes = writes
        child.result = returned(writes)
        child.cached = True
        return True

    def to_cache(self, child: Task, key: Any) -> dict[Any, Any] | None:
        if key is None or child.cached or child.error is not None or child.interrupts:
            return None
        return {key: (encode_writes(child.writes), child.node.cache_policy.ttl)}

    def _done(self, child: Task) -> list[Request]:
        if child.interrupts:
            self.loop.call_interrupts.extend(child.interrupts)
        elif child.error is None:
            self.finished[child.id] = child.writes
        # siblings=2: a call's writes are always saved as pending writes, since they never
        # reach the channels (nothing reads them but the caller re-run)
        return self.loop.task_done(child, 2)


class _CallFuture(concurrent.futures.Future[Any]):
    """The future of a call on the sync driver.

    Whoever gets to it first runs the task: a pool thread, or the caller asking for the
    result before any thread was free (so nested calls never wait for a full pool).
    """

    def __init__(self, calls: SyncCalls, child: Task) -> None:
        super().__init__()
        self._calls = calls
        self._child = child
        self._claimed = False
        self._claim_lock = threading.Lock()

    def _claim(self) -> bool:
        with self._claim_lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def run(self) -> None:
        if not self._claim() or not self.set_running_or_notify_cancel():
            return
        child = self._child
        calls = self._calls
        try:
            key = calls.cache_key(child)
            cache = calls.loop.scope.cache
            if key is None or not calls.from_cache(child, cache.get([key]), key):
                calls.run_task(child)
            for request in calls._done(child):
                perform(calls.saver, request)
            store = calls.to_cache(child, key)
            if store:
                cache.set(store)
            value = _raise_outcome(child)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            self.set_exception(exc)
        else:
            self.set_result(value)

    def result(self, timeout: float | None = None) -> Any:
        if not self.done():
            self.run()  # not started yet: run it here rather than wait for a thread
        return super().result(timeout)


class SyncCalls(Calls):
    """Calls on the sync driver: each runs on a thread of ``pool``."""

    def __init__(self, loop: Loop, saver: Any, run_task: Callable[[Task], None],
                 pool: concurrent.futures.Executor) -> None:
        super().__init__(loop, saver)
        self.run_task = run_task
        self.pool = pool
        self.running: list[_CallFuture] = []

    def call(self, parent: Task, node: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> concurrent.futures.Future[Any]:
        child, value = self.child(parent, node, args, kwargs)
        future: concurrent.futures.Future[Any]
        if child is None:
            future = concurrent.futures.Future()
            future.set_result(value)
            return future
        future = _CallFuture(self, child)
        with self._lock:
            self.running.append(future)
        self.pool.submit(copy_context().run, future.run)
        return future

    def wait(self) -> None:
        """Wait for the calls nobody waited for (the step ends when all have)."""
        while self.running:
            with self._lock:
                running, self.running = self.running, []
            concurrent.futures.wait(running)


class AsyncCalls(Calls):
    """Calls on the async driver: each is an asyncio task on the run's event loop."""

    def __init__(self, loop: Loop, saver: Any, arun_task: Callable[[Task], Any]) -> None:
        super().__init__(loop, saver)
        self.arun_task = arun_task
        self.aloop = asyncio.get_running_loop()
        self.running: set[asyncio.Task[Any]] = set()

    async def _run(self, child: Task) -> Any:
        key = self.cache_key(child)
        cache = self.loop.scope.cache
        if key is None or not self.from_cache(child, await cache.aget([key]), key):
            await self.arun_task(child)
        for request in self._done(child):
            await aperform(self.saver, request)
        store = self.to_cache(child, key)
        if store:
            await cache.aset(store)
        return _raise_outcome(child)

    def _start(self, child: Task) -> asyncio.Task[Any]:
        atask = self.aloop.create_task(self._run(child))
        self.running.add(atask)
        atask.add_done_callback(self.running.discard)
        return atask

    def call(self, parent: Task, node: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        child, value = self.child(parent, node, args, kwargs)
        try:
            on_loop = asyncio.get_running_loop() is self.aloop
        except RuntimeError:
            on_loop = False
        if on_loop:
            if child is None:
                done = self.aloop.create_future()
                done.set_result(value)
                return done
            return self._start(child)
        # a sync caller on a worker thread: a blocking future, the task on the event loop
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if child is None:
            future.set_result(value)
            return future
        context = copy_context()

        def start() -> None:
            atask = context.run(self._start, child)
            atask.add_done_callback(lambda t: _settle(future, t))

        self.aloop.call_soon_threadsafe(start)
        return future

    async def wait(self) -> None:
        while self.running:
            await asyncio.wait(list(self.running))


def _settle(future: concurrent.futures.Future[Any], atask: asyncio.Task[Any]) -> None:
    if future.done():
        return
    if atask.cancelled():
        future.cancel()
    elif atask.exception() is not None:
        future.set_exception(atask.exception())
    else:
        future.set_result(atask.result())
