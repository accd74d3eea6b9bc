"""Worker threads that run sync code for an event loop, with a light hand-off.

Under ``ainvoke``/``astream`` a node written as a plain function runs in a worker thread,
so a node that blocks never stalls the event loop (LangGraph does the same, through the
loop's default executor); the server's SQLite storage runs its statements in one thread
the same way. Every such call pays a hand-off to the thread and back; with
``loop.run_in_executor`` that is a ``concurrent.futures`` future chained to an asyncio
one, the executor's idle semaphore and two cross-thread wake-ups. ``WorkerThreads`` keeps
only the wake-ups: the job goes on a ``SimpleQueue`` with the asyncio future it settles,
and the worker settles it with one ``call_soon_threadsafe``. On a 2-vCPU VM a hand-off
took ~40 us against ~87 us through ``run_in_executor``.

Semantics follow ``run_in_executor``: the call runs in the context it is given (a caller
that needs its context passes ``contextvars.Context.run``), its exception is raised at
the ``await``, a job whose future was cancelled before a worker took it does not run, and
a running one finishes unheeded. Threads are started as jobs find none idle, up to
``max_threads`` (by default ``min(32, cpu_count + 4)``, ``ThreadPoolExecutor``'s); more
jobs wait their turn. At interpreter exit the process's node threads finish their jobs
and stop; a forked child starts its own. A default executor the program gave its loop
(``loop.set_default_executor``) runs nodes instead, as LangGraph uses it
(``run_in_thread``).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue
from typing import Any

__all__ = ["WorkerThreads", "node_threads", "run_in_thread"]

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class WorkerThreads:
    """Daemon worker threads that run calls and settle asyncio futures with their
    outcome (see the module doc)."""

    def __init__(self, max_threads: int | None = None, name: str = "threadloom-worker") -> None:
        if max_threads is not None and max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads!r}")
        self.max_threads = max_threads or min(32, (os.cpu_count() or 1) + 4)
        self.name = name
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers that finished a job and wait for the next
        self._threads: list[threading.Thread] = []
        self._closed = False

    def run(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        """Call ``fn(*args)`` in a worker thread; the returned future (of ``loop``)
        settles with its result or exception."""
        future = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name} is closed: it runs no more calls")
            self._jobs.put((loop, future, fn, args))
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def close(self) -> None:
        """Let every worker finish its job and stop; wait for them."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            if not job[1].cancelled():  # (read across threads: at worst it runs anyway)
                _call(*job)
            del job  # (nothing of the job outlives it in this thread)
            with self._lock:
                self._idle += 1


def _call(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    try:
        result = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - raised at the caller's await
        _settle_later(loop, future, None, exc)
    else:
        _settle_later(loop, future, result, None)


def _settle_later(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any,
    exc: BaseException | None,
) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, result, exc)
    except RuntimeError:  # the loop is closed: nobody awaits the future any more
        pass


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled while the job ran
        return
    if exc is None:
        future.set_result(result)
    elif isinstance(exc, StopIteration):  # a future cannot carry it (asyncio's rule)
        future.set_exception(RuntimeError(f"StopIteration raised by node code: {exc!r}"))
    else:
        future.set_exception(exc)


def run_in_thread(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any
) -> asyncio.Future[Any]:
    """Call ``fn(*args)`` in a worker thread for ``loop``: in the loop's default executor
    when its program set one (``loop.set_default_executor``), else in ``node_threads()``."""
    executor = getattr(loop, "_default_executor", None)  # (asyncio's; uvloop hides it)
    if executor is not None and not (
        type(executor) is ThreadPoolExecutor
        and getattr(executor, "_thread_name_prefix", None) == "asyncio"
    ):  # set by the program, not made by asyncio at its first run_in_executor(None)
        return loop.run_in_executor(None, fn, *args)
    return node_threads().run(loop, fn, *args)


_pool: WorkerThreads | None = None
_pool_lock = threading.Lock()


def node_threads() -> WorkerThreads:
    """The process's threads for sync nodes, made at first use (a forked child makes
    its own)."""
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            pool = _pool
            if pool is None:
                if not _hooks_installed:
                    _install_hooks()
                pool = _pool = WorkerThreads(name="threadloom-node")
    return pool


_hooks_installed = False


def _install_hooks() -> None:
    global _hooks_installed
    _hooks_installed = True
    atexit.register(_close_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_forget_in_child)


def _close_at_exit() -> None:
    pool = _pool
    if pool is not None:
        pool.close()


def _forget_in_child() -> None:
    global _pool, _pool_lock
    _pool = None  # the parent's workers do not exist here
    _pool_lock = threading.Lock()
