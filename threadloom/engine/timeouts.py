"""Timeouts of one node attempt: a run deadline, an idle deadline refreshed by progress.

A ``TimedAttempt`` is the clock of one attempt. The node's outputs (writes, stream events,
stream-writer calls, callback events) pass through its guards: each counts as progress
(unless the policy refreshes on heartbeats only) and is dropped once the attempt has been
abandoned, so a timed-out attempt that keeps running in the background can change nothing.
``runtime.heartbeat()`` reaches the running attempt through a context variable.

``run_timed`` runs one async attempt under its policy and raises ``NodeTimeoutError``
when a deadline passes; the attempt's task is cancelled and not waited for.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from threadloom._context import current_attempt
from threadloom.errors import GraphBubbleUp, NodeTimeoutError, ParentCommand
from threadloom.types import TimeoutPolicy

SYNC_TIMEOUT_MESSAGE = (
    "timeout is only supported for async nodes: node {name!r} runs synchronous code. "
    "Make it an `async def` function (or an async Runnable), or drop the timeout."
)


def sync_timeout_error(name: str) -> ValueError:
    return ValueError(SYNC_TIMEOUT_MESSAGE.format(name=name))


def heartbeat() -> None:
    """Mark progress of the running timed attempt (no-op outside one)."""
    attempt = current_attempt.get()
    if attempt is not None:
        attempt.touch(heartbeat=True)


class TimedAttempt:
    """The clock of one attempt; see the module docstring."""

    def __init__(self, policy: TimeoutPolicy | None = None) -> None:
        self._lock = threading.Lock()
        self.policy = policy or TimeoutPolicy()
        self.started = time.monotonic()
        self.last_progress = self.started
        self.abandoned = False

    # -- progress ------------------------------------------------------------------

    def touch(self, *, heartbeat: bool = False) -> None:
        if self.abandoned or (not heartbeat and self.policy.refresh_on == "heartbeat"):
            return
        now = time.monotonic()
        with self._lock:
            self.last_progress = now

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True

    def deadline(self) -> tuple[float, str] | None:
        """The earliest ``(monotonic time, kind)`` at which the attempt times out."""
        policy = self.policy
        with self._lock:
            candidates = []
            if policy.run_timeout is not None:
                candidates.append((self.started + policy.run_timeout, "run"))
            if policy.idle_timeout is not None:
                candidates.append((self.last_progress + policy.idle_timeout, "idle"))
        return min(candidates) if candidates else None

    def error(self, node: str, kind: str) -> NodeTimeoutError:
        return NodeTimeoutError(
            node,
            time.monotonic() - self.started,
            kind=kind,
            run_timeout=self.policy.run_timeout,
            idle_timeout=self.policy.idle_timeout,
        )

    # -- guards (the lock is never held while the wrapped callable runs) -------------

    def _guard_call(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` that counts as progress and does nothing once the attempt is abandoned."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.abandoned:
                return None
            self.touch()
            return fn(*args, **kwargs)

        return guarded

    def _guard_stream(self, stream: Any) -> Any:
        """A guarded copy of a ``StreamProtocol`` (same class, same modes)."""
        return type(stream)(self._guard_call(stream), stream.modes)

    def _guard_stream_writer(self, writer: Callable[[Any], None]) -> Callable[[Any], None]:
        return self._guard_call(writer)

    def callback_handler(self) -> BaseCallbackHandler:
        """A callback handler for which any LLM/chain/tool event counts as progress."""
        return _ProgressHandler(self)


# -- the attempt observer ----------------------------------------------------------


@dataclass(frozen=True)
class TimedAttemptContext:
    task_name: str
    task_id: str | None
    attempt: int
    started_at: datetime
    run_timeout_secs: float | None
    idle_timeout_secs: float | None


@dataclass(frozen=True)
class TimedAttemptEvent:
    """What ``configurable[CONFIG_KEY_TIMED_ATTEMPT_OBSERVER]`` receives for a timed
    attempt: ``event`` is ``"start"``, ``"progress"`` (rate-limited heartbeats) or
    ``"finish"`` (with ``status`` ``"success"``/``"error"``)."""

    event: str
    context: TimedAttemptContext
    status: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    finished_at: datetime | None = None
    progress_at: datetime | None = None


def now_utc() -> datetime:
    return datetime.now(UTC)


class ObservedAttempt(TimedAttempt):
    """A ``TimedAttempt`` that reports start, progress and finish to an observer."""

    def __init__(
        self, policy: TimeoutPolicy, observer: Callable[[Any], None] | None,
        context: TimedAttemptContext | None,
    ) -> None:
        super().__init__(policy)
        self.observer = observer
        self.context = context
        self._last_report = 0.0
        self._finished = False
        if observer is not None and context is not None:
            observer(TimedAttemptEvent("start", context))

    def touch(self, *, heartbeat: bool = False) -> None:
        super().touch(heartbeat=heartbeat)
        if self.observer is None or self.context is None or self.abandoned:
            return
        now = time.monotonic()
        interval = (self.policy.idle_timeout or self.policy.run_timeout or 0) / 4
        if now - self._last_report >= interval:
            self._last_report = now
            self.observer(TimedAttemptEvent("progress", self.context, progress_at=now_utc()))

    def finish(self, error: BaseException | None) -> None:
        if self._finished or self.observer is None or self.context is None:
            return
        self._finished = True
        failed = error is not None and not isinstance(error, (GraphBubbleUp, ParentCommand))
        self.observer(TimedAttemptEvent(
            "finish", self.context,
            status="error" if failed else "success",
            error_type=type(error).__name__ if failed else None,
            error_message=str(error) if failed else None,
            finished_at=now_utc(),
        ))



class _ProgressHandler(BaseCallbackHandler):
    run_inline = True

    def __init__(self, attempt: TimedAttempt) -> None:
        self.attempt = attempt

    def _progress(self, *args: Any, **kwargs: Any) -> None:
        self.attempt.touch()

    on_llm_start = on_chat_model_start = on_llm_new_token = on_llm_end = _progress
    on_chain_start = on_chain_end = on_tool_start = on_tool_end = _progress
    on_retriever_start = on_retriever_end = on_custom_event = on_text = _progress


def with_progress_callbacks(
    callbacks: Any, attempt: TimedAttempt, *, manager: bool = False
) -> Any:
    """``callbacks`` (None, a list of handlers or a manager) plus the attempt's handler;
    with ``manager`` the result is always a callback manager."""
    handler = attempt.callback_handler()
    if manager and (callbacks is None or isinstance(callbacks, list)):
        from langchain_core.callbacks import CallbackManager

        handlers = [*(callbacks or ()), handler]
        return CallbackManager(handlers=handlers, inheritable_handlers=handlers)
    if callbacks is None:
        return [handler]
    if isinstance(callbacks, list):
        return [*callbacks, handler]
    copied = callbacks.copy()
    copied.add_handler(handler, inherit=True)
    return copied


async def run_timed(
    start: Callable[[], Awaitable[Any]], attempt: TimedAttempt, node: str
) -> Any:
    """Await ``start()`` under ``attempt``'s deadlines (see the module docstring)."""
    token = current_attempt.set(attempt)
    try:
        fut = asyncio.ensure_future(start())  # the task copies the context: heartbeats work
    finally:
        current_attempt.reset(token)
    try:
        while True:
            due = attempt.deadline()
            if due is None:
                return await fut
            when, kind = due
            remaining = when - time.monotonic()
            if remaining > 0:
                await asyncio.wait((fut,), timeout=remaining)
            if fut.done():
                return fut.result()
            due = attempt.deadline()
            if due is not None and due[0] <= time.monotonic():
                attempt.abandon()
                fut.add_done_callback(_consume)
                fut.cancel()
                raise attempt.error(node, due[1])
    except asyncio.CancelledError:
        if not fut.done():
            attempt.abandon()
            fut.add_done_callback(_consume)
            fut.cancel()
        raise


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved, so asyncio does not log it


def runs_async(action: Any) -> bool:
    """Whether ``action`` (a function or Runnable) has async code of its own, so that a
    timeout can cancel it (sync code run in a worker thread cannot be stopped)."""
    import inspect

    from langchain_core.runnables import (
        RunnableBinding,
        RunnableLambda,
        RunnableParallel,
        RunnableSequence,
    )

    if isinstance(action, RunnableBinding):
        return runs_async(action.bound)
    if isinstance(action, RunnableSequence):
        return all(runs_async(step) for step in action.steps)
    if isinstance(action, RunnableParallel):
        return all(runs_async(step) for step in action.steps__.values())
    if isinstance(action, RunnableLambda):
        return getattr(action, "afunc", None) is not None or inspect.iscoroutinefunction(
            getattr(action, "func", None)
        )
    afunc = getattr(action, "afunc", None)
    if afunc is not None:  # RunnableCallable and the like: a sync and an async function
        return True
    if hasattr(action, "ainvoke") and not callable(action):
        return True
    if getattr(action, "_threadloom_graph", False):
        return True
    target = getattr(action, "__call__", None) if not inspect.isroutine(action) else action  # noqa: B004
    return inspect.iscoroutinefunction(action) or inspect.iscoroutinefunction(target)
