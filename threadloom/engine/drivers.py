"""The two drivers of ``Loop.run()``: one with plain calls and threads, one with asyncio.

A driver performs the loop's I/O requests and runs its tasks. A lone task runs inline on
the caller's thread (no pool hand-off) unless the caller streams tokens or custom events
live; several tasks run in parallel (a thread pool for sync nodes, the event loop for
async ones). Writes are applied by the loop, in task order, after all tasks end.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from threadloom._context import current_task
from threadloom.constants import CONFIG_KEY_TIMED_ATTEMPT_OBSERVER, TASKS
from threadloom.engine.calls import AsyncCalls, SyncCalls
from threadloom.engine.loop import Loop
from threadloom.engine.requests import RunTasks, aperform, perform
from threadloom.engine.task import PAUSED_AT_BREAKPOINT, Task
from threadloom.engine.timeouts import (
    ObservedAttempt,
    TimedAttemptContext,
    now_utc,
    run_timed,
    with_progress_callbacks,
)
from threadloom.engine.tracing import run_tree_context, start_policy_run
from threadloom.errors import (
    GraphBubbleUp,
    GraphDrained,
    GraphInterrupt,
    NodeCancelledError,
    ParentCommand,
)
from threadloom.types import Command, RetryPolicy, Send

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(thread_name_prefix="threadloom")
    return _pool


# -- retries -----------------------------------------------------------------------


def should_retry_on(policy: RetryPolicy, exc: Exception) -> bool:
    """Whether ``policy.retry_on`` (an exception class, a sequence of them, or a
    predicate) accepts ``exc``."""
    retry_on = policy.retry_on
    if isinstance(retry_on, type) and issubclass(retry_on, BaseException):
        return isinstance(exc, retry_on)
    if isinstance(retry_on, Sequence) and not isinstance(retry_on, str):
        return isinstance(exc, tuple(retry_on))
    if callable(retry_on):
        # mypy narrows a class that is no exception to type[object]; such a class is
        # called like a predicate, as LangGraph does
        return bool(retry_on(exc))  # type: ignore[call-arg]
    raise TypeError(
        "retry_on must be an Exception class, a list or tuple of Exception classes, or a "
        f"callable that takes an exception and returns a bool; got {retry_on!r}."
    )


def _matching_policy(policies: Iterable[RetryPolicy], exc: Exception) -> RetryPolicy | None:
    for policy in policies:
        if should_retry_on(policy, exc):
            return policy
    return None


def _retry_delay(policy: RetryPolicy, attempt: int) -> float:
    backoff = policy.initial_interval * policy.backoff_factor ** (attempt - 1)
    delay = min(policy.max_interval, backoff)
    return delay + (random.uniform(0, 1) if policy.jitter else 0)


def _fail(task: Task, exc: BaseException) -> None:
    """Record the task's final failure, or hand it to the node's error handler: the task
    then ends with one write, a ``Send`` of the failure to the handler node."""
    handler = task.node.error_handler
    if handler is None:
        task.error = exc
        return
    error = exc
    if type(error).__module__ != "builtins":  # the Send is checkpointed: keep it storable
        error = RuntimeError(f"{type(exc).__name__}: {exc}")
    payload = {"node": task.name, "error": error, "task_id": task.id}
    task.writes = [(TASKS, Send(handler, payload))]


def _finish(task: Task, result: Any) -> None:
    # LangChain semantics: a returned Runnable is run (a dict or None, the usual results,
    # are not looked at further)
    if type(result) is not dict and result is not None and _returned_runnable(result):
        result = result.invoke(task.input, task.config)
    task.result = result
    task.writes = task.node.write(task, result)
    if task.pushed:
        task.writes = [*task.pushed, *task.writes]


def _returned_runnable(result: Any) -> bool:
    # (a node's usual result, a dict or None, skips the ABC's isinstance check)
    return (type(result) is not dict and result is not None and isinstance(result, Runnable)
            and not getattr(result, "_threadloom_graph", False))


async def _afinish(task: Task, result: Any) -> None:
    if _returned_runnable(result):
        result = await result.ainvoke(task.input, task.config)
    task.result = result
    write = task.node.write
    if getattr(write, "is_async", False):
        task.writes = await write.acall(task, result)
    else:
        task.writes = write(task, result)
    if task.pushed:
        task.writes = [*task.pushed, *task.writes]


def _runnable_config(task: Task) -> RunnableConfig:
    """``task``'s config as LangChain's context variable holds it: the engine's configs
    are plain dicts with RunnableConfig's keys (``RunnableConfig`` is a ``TypedDict``; no
    ``typing.cast`` call: this runs for every task)."""
    config: RunnableConfig = task.config  # type: ignore[assignment]
    return config


def _on_done(put: Callable[[Task], object], task: Task) -> Callable[[object], None]:
    """A future's done-callback that puts ``task`` on the run's wake-up queue."""

    def done(_future: object) -> None:
        put(task)

    return done


def _child_command(exc: ParentCommand) -> Command[Any]:
    cmd = exc.command
    return Command(update=cmd.update, goto=cmd.goto)


def _start_node_run(task: Task) -> Any:
    """Report the node as a chain run to the caller's callbacks (only if there are some).

    This is what makes ``astream_events`` show each node; without callbacks nothing is done.
    """
    callbacks = task.config.get("callbacks")
    if callbacks is None or task.node.hidden:
        return None
    manager = callbacks.copy()
    manager.add_metadata(task.config.get("metadata") or {}, inherit=False)
    shown = getattr(task.node.bound, "traced_input", None)  # a called task: its arguments
    inputs = shown(task.input) if shown is not None else task.input
    if not isinstance(inputs, dict):
        inputs = {"input": inputs}
    policy = task.node.trace_policy
    if policy is None:
        run = manager.on_chain_start(None, inputs, name=task.name)
    else:
        run = start_policy_run(manager, inputs, name=task.name, policy=policy)
    task.config = {**task.config, "callbacks": run.get_child()}
    return run


def _end_node_run(run: Any, task: Task) -> None:
    if run is None:
        return
    if task.error is not None:
        run.on_chain_error(task.error)
    else:
        run.on_chain_end(task.result if isinstance(task.result, dict) else {"output": task.result})


def run_task(task: Task) -> None:
    """Run one task to its end state: writes, interrupts or error (never raises)."""
    if task.config.get("callbacks") is None:  # no callbacks: no node run to report
        _run_task(task)
        return
    node_run = _start_node_run(task)
    try:
        if node_run is None:
            _run_task(task)
        else:
            with run_tree_context(task.config):
                _run_task(task)
    finally:
        _end_node_run(node_run, task)


async def arun_task(task: Task) -> None:
    """The async twin of ``run_task``."""
    node_run = _start_node_run(task)
    try:
        if node_run is None:
            await _arun_task(task)
        else:
            with run_tree_context(task.config):
                await _arun_task(task)
    finally:
        _end_node_run(node_run, task)


def _run_task(task: Task) -> None:
    token = current_task.set(task)
    config: RunnableConfig = task.config  # type: ignore[assignment]  # (_runnable_config)
    lc_token = var_child_runnable_config.set(config)
    node = task.node
    attempt = 0
    try:
        while True:
            attempt += 1
            task.interrupt_count = 0  # a retry asks its questions (and takes answers) anew
            task.start_attempt(attempt)
            try:
                try:
                    result = node.bound.call(task.input, task)
                except ParentCommand as exc:  # a subgraph's Command(graph=PARENT)
                    result = _child_command(exc)
                _finish(task, result)
                return
            except GraphInterrupt as exc:
                task.interrupts = exc.interrupts or PAUSED_AT_BREAKPOINT
                task.paused = True
                return
            except (GraphBubbleUp, GraphDrained) as exc:  # never retried
                task.error = exc
                return
            except Exception as exc:  # noqa: BLE001 - recorded, re-raised by the loop
                policy = _matching_policy(node.retry_policy, exc)
                if policy is None or attempt >= policy.max_attempts:
                    _fail(task, exc)
                    return
                time.sleep(_retry_delay(policy, attempt))
    finally:
        var_child_runnable_config.reset(lc_token)
        current_task.reset(token)


async def _arun_task(task: Task) -> None:
    token = current_task.set(task)
    lc_token = var_child_runnable_config.set(_runnable_config(task))
    node = task.node
    attempt = 0
    try:
        while True:
            attempt += 1
            task.interrupt_count = 0  # a retry asks its questions (and takes answers) anew
            task.start_attempt(attempt)
            try:
                try:
                    timeout = task.timeout or node.timeout
                    if timeout is None:
                        result = await node.bound.acall(task.input, task)
                    else:
                        result = await _acall_timed(task, timeout)
                except ParentCommand as exc:
                    result = _child_command(exc)
                await _afinish(task, result)
                return
            except GraphInterrupt as exc:
                task.interrupts = exc.interrupts or PAUSED_AT_BREAKPOINT
                task.paused = True
                return
            except (GraphBubbleUp, GraphDrained) as exc:  # never retried
                task.error = exc
                return
            except asyncio.CancelledError as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the run itself is being cancelled
                # the node raised it: a failure of the node, not a quiet stop of the run
                error = NodeCancelledError(task.name, "the node raised CancelledError")
                error.__cause__ = exc
                task.error = error
                return
            except Exception as exc:  # noqa: BLE001 - recorded, re-raised by the loop
                policy = _matching_policy(node.retry_policy, exc)
                if policy is None or attempt >= policy.max_attempts:
                    _fail(task, exc)
                    return
                await asyncio.sleep(_retry_delay(policy, attempt))
    finally:
        var_child_runnable_config.reset(lc_token)
        current_task.reset(token)


async def _acall_timed(task: Task, timeout: Any) -> Any:
    """Call the node under ``timeout``; LLM/chain callback events count as progress."""
    config = task.config
    observer = (config.get("configurable") or {}).get(CONFIG_KEY_TIMED_ATTEMPT_OBSERVER)
    context = None
    if observer is not None:
        context = TimedAttemptContext(
            task_name=task.name, task_id=task.id, attempt=task.attempt[0],
            started_at=now_utc(), run_timeout_secs=timeout.run_timeout,
            idle_timeout_secs=timeout.idle_timeout,
        )
    clock = ObservedAttempt(timeout, observer, context)
    task.config = {**config, "callbacks": with_progress_callbacks(
        config.get("callbacks"), clock, manager=True)}

    async def attempt() -> Any:
        var_child_runnable_config.set(_runnable_config(task))  # in the attempt's own context
        return await task.node.bound.acall(task.input, task)

    try:
        result = await run_timed(attempt, clock, task.name)
    except BaseException as exc:
        clock.finish(exc)  # reported before any retry or error handler starts
        raise
    finally:
        task.config = config
    clock.finish(None)
    return result


# -- sync driver -------------------------------------------------------------------


def drive(loop: Loop, saver: Any, events: queue.SimpleQueue[Any] | None) -> Iterator[Any]:
    """Run ``loop`` with plain calls; yield the stream events as they happen.

    Stream events land in ``loop.out``; when the caller streams live, ``events`` is the
    queue the sink pokes (with None) so events from running tasks are forwarded at once.
    """
    gen = loop.run()
    reply: Any = None
    out = loop.out
    calls = loop.scope.calls = SyncCalls(loop, saver, run_task, _executor())
    try:
        while True:
            try:
                request = gen.send(reply)
            except StopIteration:
                raise
            except Exception:
                while out:  # what the loop streamed before it failed (e.g. the checkpoint
                    yield out.popleft()  # saved before the recursion limit) still arrives
                raise
            reply = None
            while out:  # what the loop emitted so far reaches the caller before more runs
                yield out.popleft()
            if isinstance(request, RunTasks):
                tasks = request.tasks
                if len(tasks) == 1 and loop.step_timeout is None and not (
                        events is not None and loop.scope.live):
                    _run_alone(loop, tasks[0], saver)  # (no generator for the usual step)
                else:
                    yield from _run_tasks(loop, tasks, saver, events)
                if calls.running:  # calls no one waited for end with the step
                    calls.wait()
            else:
                reply = perform(saver, request, loop.scope.cache)
            while out:
                yield out.popleft()
    except StopIteration:
        pass
    finally:
        loop.scope.calls = None  # the scope outlives the run (its tasks keep it)
        held = loop.take_held_put()
        if held is not None:  # the run stopped here while its input task ran
            perform(saver, held)
    while out:
        yield out.popleft()


def _run_alone(loop: Loop, task: Task, saver: Any) -> None:
    """Run the only task of a step on this thread (nothing to stream while it runs, no
    step timeout), then what its failure started (its error handler)."""
    run_task(task)
    for request in loop.task_done(task, 1):
        perform(saver, request)
    while loop.spawned:  # it failed into its error handler: that runs next
        handler = loop.spawned.pop(0)
        loop.task_started(handler)
        run_task(handler)
        for request in loop.task_done(handler, 1):
            perform(saver, request)


def _run_tasks(
    loop: Loop, tasks: list[Task], saver: Any, events: queue.SimpleQueue[Any] | None
) -> Iterator[Any]:
    n = len(tasks)
    deadline = None if loop.step_timeout is None else _deadline(loop)
    if n == 1 and not (loop.scope.live and events is not None) and deadline is None:
        _run_alone(loop, tasks[0], saver)
        return
    done: queue.SimpleQueue[Any] = events if events is not None else queue.SimpleQueue()
    pool = _executor()

    def start(task: Task) -> None:
        if task.node.bound.is_async_only:
            raise TypeError(
                f'No synchronous function provided to "{task.name}": it is an async function. '
                "Run the graph with ainvoke()/astream(), or give the node a sync function."
            )
        future = pool.submit(copy_context().run, run_task, task)
        future.add_done_callback(_on_done(done.put, task))

    waiting = deque(tasks)
    for _ in range(_window(loop, n)):
        start(waiting.popleft())
    remaining = n
    while remaining:
        if deadline is None:
            item = done.get()
        else:
            try:
                item = done.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:  # (threads cannot be stopped: they finish unheeded)
                raise _step_timed_out(loop, tasks) from None
        if item is not None:  # None only wakes us to forward live stream events
            remaining -= 1
            if waiting:
                start(waiting.popleft())
            for request in loop.task_done(item, n):
                perform(saver, request)
            while loop.spawned:  # a failed task's error handler starts at once
                handler = loop.spawned.pop(0)
                loop.task_started(handler)
                start(handler)
                remaining += 1
                n += 1
        while loop.out:
            yield loop.out.popleft()


def _deadline(loop: Loop) -> float | None:
    """When the step now starting must be done (``time.monotonic``), if the graph has a
    ``step_timeout``."""
    timeout = loop.step_timeout
    return None if timeout is None else time.monotonic() + timeout


def _step_timed_out(loop: Loop, tasks: list[Task]) -> TimeoutError:
    running = [t.name for t in tasks if not t.done]
    return TimeoutError(
        f"Graph step {loop.step + 1} took longer than step_timeout={loop.step_timeout} s; "
        f"still running: {', '.join(running) or '(none)'}"
    )


def _window(loop: Loop, n: int) -> int:
    """How many of a step's ``n`` tasks run at once: the run's ``max_concurrency``
    (config key) when set, else all of them; the others start as running ones end."""
    limit = loop.config.get("max_concurrency")
    if limit is None:
        return n
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(
            f"max_concurrency must be a positive integer (or None for no limit), got {limit!r}"
        )
    return min(limit, n)


# -- async driver ------------------------------------------------------------------


async def adrive(
    loop: Loop, saver: Any, events: asyncio.Queue[Any] | None
) -> AsyncGenerator[Any, None]:
    """Run ``loop`` on asyncio; the saver's async methods do the I/O."""
    gen = loop.run()
    reply: Any = None
    out = loop.out
    calls = loop.scope.calls = AsyncCalls(loop, saver, arun_task)
    try:
        while True:
            try:
                request = gen.send(reply)
            except StopIteration:
                raise
            except Exception:
                while out:  # as in drive: what was streamed before the failure arrives
                    yield out.popleft()
                raise
            reply = None
            while out:
                yield out.popleft()
            try:
                if isinstance(request, RunTasks):
                    # closed at once when the stream is (its running tasks cancelled)
                    async with contextlib.aclosing(
                        _arun_tasks(loop, request.tasks, saver, events)
                    ) as step:
                        async for item in step:
                            yield item
                    await calls.wait()
                else:
                    reply = await aperform(saver, request, loop.scope.cache)
            except asyncio.CancelledError as exc:
                await _aunwind(loop, saver, gen, exc)
                raise
            while out:
                yield out.popleft()
    except StopIteration:
        pass
    finally:
        loop.scope.calls = None
        held = loop.take_held_put()
        if held is not None:  # the run stopped here while its input task ran
            await aperform(saver, held)
    while out:
        yield out.popleft()


async def _aunwind(loop: Loop, saver: Any, gen: Any, exc: BaseException) -> None:
    """The run is cancelled while its tasks or I/O were pending: let the loop end as a
    failed run does, doing the I/O it still asks for (under durability="exit", saving
    the last checkpoint) before the cancellation goes on."""
    try:
        request = gen.throw(exc)
        while True:
            request = gen.send(await aperform(saver, request, loop.scope.cache))
    except BaseException as end:  # noqa: BLE001 - the loop re-raises what was thrown in
        if end is not exc and not isinstance(end, (StopIteration, asyncio.CancelledError)):
            raise


async def _arun_tasks(
    loop: Loop, tasks: list[Task], saver: Any, events: asyncio.Queue[Any] | None
) -> AsyncGenerator[Any, None]:
    n = len(tasks)
    deadline = _deadline(loop)
    if n == 1 and not (loop.scope.live and events is not None) and deadline is None:
        task = tasks[0]
        await arun_task(task)
        for request in loop.task_done(task, 1):
            await aperform(saver, request)
        while loop.spawned:  # it failed into its error handler: that runs next
            handler = loop.spawned.pop(0)
            loop.task_started(handler)
            await arun_task(handler)
            for request in loop.task_done(handler, 1):
                await aperform(saver, request)
        return
    done: asyncio.Queue[Any] = events if events is not None else WakeQueue()
    running = []

    def start(task: Task) -> None:
        fut = asyncio.ensure_future(arun_task(task))
        fut.add_done_callback(_on_done(done.put_nowait, task))
        running.append(fut)

    waiting = deque(tasks)
    for _ in range(_window(loop, n)):
        start(waiting.popleft())
    remaining = n
    try:
        while remaining:
            item = await _next_done(done, deadline, loop, tasks)
            failed = False
            if item is not None:  # None only wakes us to forward live stream events
                remaining -= 1
                for request in loop.task_done(item, n):
                    await aperform(saver, request)
                while loop.spawned:  # a failed task's error handler starts at once
                    handler = loop.spawned.pop(0)
                    loop.task_started(handler)
                    start(handler)
                    remaining += 1
                    n += 1
                failed = _fails_step(item)
                if waiting and not failed:
                    start(waiting.popleft())
            while loop.out:
                yield loop.out.popleft()
            if failed:
                return  # the step fails: its other tasks are cancelled (below)
    finally:
        # a failed step, a closed stream or a cancelled run: tasks still running are
        # cancelled, and waited for, so none outlives the run
        unfinished = [fut for fut in running if not fut.done()]
        for fut in unfinished:
            fut.cancel()
        if unfinished:
            await asyncio.gather(*unfinished, return_exceptions=True)


async def _next_done(
    done: asyncio.Queue[Any], deadline: float | None, loop: Loop, tasks: list[Task]
) -> Any:
    """The next finished task (or ``None``, a wake-up for live events) from ``done``;
    past the step's deadline with nothing there, ``TimeoutError`` (also when the consumer
    held the stream until after it)."""
    if deadline is not None and done.empty():
        left = deadline - time.monotonic()
        try:
            if isinstance(done, WakeQueue):
                await asyncio.wait_for(done.wait(), left)
            else:
                return await asyncio.wait_for(done.get(), left)
        except TimeoutError:
            raise _step_timed_out(loop, tasks) from None
    if isinstance(done, WakeQueue):
        await done.wait()
        return done.get_nowait()
    return await done.get()


def _fails_step(task: Task) -> bool:
    """Whether ``task`` ended in an error that fails its step (not a pause, a command
    for the parent graph or a drain, which end the step otherwise)."""
    return task.error is not None and not isinstance(task.error, (GraphBubbleUp, GraphDrained))


class WakeQueue(asyncio.Queue[Any]):
    """The async run's wake-up queue: finished tasks and live stream events are put here.

    ``wait()`` returns once an item is queued, without taking it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._ready = asyncio.Event()

    def _put(self, item: Any) -> None:
        super()._put(item)
        self._ready.set()

    def _get(self) -> Any:
        item = super()._get()
        if self.empty():
            self._ready.clear()
        return item

    async def wait(self) -> None:
        await self._ready.wait()


def thread_safe_put(aqueue: asyncio.Queue[Any]) -> Callable[[Any], None]:
    """A ``put`` usable from worker threads (sync nodes in an async run) and the loop."""
    aloop = asyncio.get_running_loop()

    def put(item: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is aloop:
            aqueue.put_nowait(item)
        else:
            aloop.call_soon_threadsafe(aqueue.put_nowait, item)

    return put
