"""Retrying (and timing) one executable task described in LangGraph's low-level terms.

The engine's own drivers (``threadloom.engine.drivers``) retry threadloom ``Task``s; this
module runs the other shape published code builds by hand: a task with a ``proc``
(``invoke``/``ainvoke``/``astream`` taking ``(input, config)``), its ``config`` (whose
``configurable`` holds the send/stream callables and the ``Runtime``), a ``writes`` deque,
``writers``, ``retry_policy`` and ``timeout``. Retry policies are matched with the same
``should_retry_on`` as the drivers; timeouts use ``threadloom.engine.timeouts``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from threadloom._context import current_attempt
from threadloom.constants import (
    CONF,
    CONFIG_KEY_CHECKPOINT_ID,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_SEND,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_THREAD_ID,
    CONFIG_KEY_TIMED_ATTEMPT_OBSERVER,
)
from threadloom.constants import CONFIG_KEY_TASK as CONFIG_KEY_TASK_ID
from threadloom.engine.drivers import _retry_delay, should_retry_on
from threadloom.engine.timeouts import (
    ObservedAttempt,
    TimedAttemptContext,
    now_utc,
    run_timed,
    sync_timeout_error,
    with_progress_callbacks,
)
from threadloom.errors import GraphBubbleUp, NodeCancelledError, ParentCommand
from threadloom.runtime import ExecutionInfo
from threadloom.types import RetryPolicy, TimeoutPolicy


def parent_namespace(checkpoint_ns: str) -> str:
    """The namespace of the graph that contains the graph running at ``checkpoint_ns``.

    Namespaces are ``|``-joined ``node:task_id`` parts; bare numeric parts are task path
    markers and are dropped from the end along with the last ``node:...`` part.
    """
    parts = checkpoint_ns.split("|") if checkpoint_ns else []
    while parts and ":" not in parts[-1]:
        parts.pop()
    if parts:
        parts.pop()
    while parts and ":" not in parts[-1]:
        parts.pop()
    return "|".join(parts)


def ensure_execution_info(runtime: Any, config: dict[str, Any], task: Any) -> Any:
    """``runtime`` with an ``ExecutionInfo`` built from ``config`` if it has none."""
    if runtime.execution_info is not None:
        return runtime
    conf = config.get(CONF) or {}
    return runtime.override(execution_info=ExecutionInfo(
        checkpoint_id=conf.get(CONFIG_KEY_CHECKPOINT_ID) or "",
        checkpoint_ns=conf.get(CONFIG_KEY_CHECKPOINT_NS) or "",
        task_id=conf.get(CONFIG_KEY_TASK_ID) or getattr(task, "id", None),
        thread_id=conf.get(CONFIG_KEY_THREAD_ID),
        run_id=str(config["run_id"]) if config.get("run_id") is not None else None,
    ))


# -- running ---------------------------------------------------------------------------


def _policies(task: Any, retry_policy: Any) -> Sequence[RetryPolicy]:
    policies = getattr(task, "retry_policy", None) or retry_policy or ()
    if isinstance(policies, RetryPolicy):
        return (policies,)
    return tuple(policies)


def _matching(policies: Sequence[RetryPolicy], exc: Exception) -> RetryPolicy | None:
    for policy in policies:
        if should_retry_on(policy, exc):
            return policy
    return None


def _attempt_config(task: Any, runtime: Any, attempt: int, first: float) -> dict[str, Any]:
    info = runtime.execution_info.patch(node_attempt=attempt, node_first_attempt_time=first)
    config = dict(task.config)
    config[CONF] = {**(config.get(CONF) or {}), CONFIG_KEY_RUNTIME: runtime.override(
        execution_info=info)}
    return config


def _is_sync_only(proc: Any) -> bool:
    return not any(hasattr(proc, m) for m in ("ainvoke", "astream"))


def run_with_retry(
    task: Any, retry_policy: Any = None, configurable: dict[str, Any] | None = None
) -> Any:
    """Run ``task.proc.invoke`` (and its writers), retrying per the task's policies."""
    if getattr(task, "timeout", None) is not None:
        raise sync_timeout_error(task.name)
    policies = _policies(task, retry_policy)
    runtime = ensure_execution_info(task.config[CONF][CONFIG_KEY_RUNTIME], task.config, task)
    first = time.time()
    attempt = 0
    while True:
        attempt += 1
        task.writes.clear()
        config = _attempt_config(task, runtime, attempt, first)
        if configurable:
            config[CONF] = {**config[CONF], **configurable}
        try:
            result = task.proc.invoke(task.input, config)
            for writer in getattr(task, "writers", ()) or ():
                writer.invoke(result, config)
            return result
        except (GraphBubbleUp, ParentCommand):
            raise
        except asyncio.CancelledError as exc:
            raise NodeCancelledError(task.name, "the node raised CancelledError") from exc
        except Exception as exc:
            policy = _matching(policies, exc)
            if policy is None or attempt >= policy.max_attempts:
                raise
            time.sleep(_retry_delay(policy, attempt))


async def arun_with_retry(
    task: Any, retry_policy: Any = None, stream: bool = False,
    match_cached_writes: Any = None, configurable: dict[str, Any] | None = None,
) -> Any:
    """The async twin of ``run_with_retry``; applies ``task.timeout`` to each attempt."""
    policies = _policies(task, retry_policy)
    runtime = ensure_execution_info(task.config[CONF][CONFIG_KEY_RUNTIME], task.config, task)
    timeout: TimeoutPolicy | None = getattr(task, "timeout", None)
    first = time.time()
    attempt = 0
    while True:
        attempt += 1
        task.writes.clear()
        config = _attempt_config(task, runtime, attempt, first)
        if configurable:
            config[CONF] = {**config[CONF], **configurable}
        clock: ObservedAttempt | None = None
        try:
            if timeout is None:
                result = await _acall(task, config, stream)
            else:
                clock, config, flush = _timed_config(task, config, timeout, attempt)
                result = await run_timed(partial(_acall, task, config, stream), clock, task.name)
                flush()
            if clock is not None:
                clock.finish(None)
            return result
        except (GraphBubbleUp, ParentCommand) as exc:
            if clock is not None:
                clock.finish(exc)
            raise
        except asyncio.CancelledError as exc:
            if clock is not None:
                clock.finish(exc)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # cancelled from outside: let it through
            raise NodeCancelledError(task.name, "the node raised CancelledError") from exc
        except Exception as exc:
            if clock is not None:
                clock.finish(exc)
            policy = _matching(policies, exc)
            if policy is None or attempt >= policy.max_attempts:
                raise
            await asyncio.sleep(_retry_delay(policy, attempt))


def _for_this_task(task: Any, exc: ParentCommand) -> bool:
    graph = exc.command.graph
    ns = (task.config.get(CONF) or {}).get(CONFIG_KEY_CHECKPOINT_NS)
    return graph is not None and graph in (task.name, ns)


async def _acall(task: Any, config: dict[str, Any], stream: bool) -> Any:
    proc = task.proc
    if stream and hasattr(proc, "astream"):
        result = None
        async for chunk in proc.astream(task.input, config):
            result = chunk
            clock = current_attempt.get()
            if clock is not None:
                clock.touch()  # a yielded chunk is progress
    else:
        try:
            if hasattr(proc, "ainvoke"):
                result = await proc.ainvoke(task.input, config)
            else:
                result = proc.invoke(task.input, config)
        except ParentCommand as exc:
            if not _for_this_task(task, exc):
                raise
            result = exc.command  # a Command addressed to this task: its writers apply it
    for writer in getattr(task, "writers", ()) or ():
        if hasattr(writer, "ainvoke"):
            await writer.ainvoke(result, config)
        else:
            writer.invoke(result, config)
    return result


def _timed_config(
    task: Any, config: dict[str, Any], policy: TimeoutPolicy, attempt: int
) -> tuple[ObservedAttempt, dict[str, Any], Callable[[], None]]:
    """The attempt's clock, and ``config`` with every output guarded by it.

    Writes are held back until the attempt succeeds (``flush``): a timed-out attempt's
    writes, earlier or later ones, never reach the task.
    """
    conf = dict(config[CONF])
    observer = conf.get(CONFIG_KEY_TIMED_ATTEMPT_OBSERVER)
    context = None
    if observer is not None:
        context = TimedAttemptContext(
            task_name=task.name, task_id=getattr(task, "id", None), attempt=attempt,
            started_at=now_utc(), run_timeout_secs=policy.run_timeout,
            idle_timeout_secs=policy.idle_timeout,
        )
    clock = ObservedAttempt(policy, observer, context)
    held: list[Any] = []
    send = conf.get(CONFIG_KEY_SEND)
    conf[CONFIG_KEY_SEND] = clock._guard_call(held.extend)
    if conf.get(CONFIG_KEY_STREAM) is not None:
        conf[CONFIG_KEY_STREAM] = clock._guard_stream(conf[CONFIG_KEY_STREAM])
    runtime = conf.get(CONFIG_KEY_RUNTIME)
    if runtime is not None:
        conf[CONFIG_KEY_RUNTIME] = runtime.override(
            stream_writer=clock._guard_stream_writer(runtime.stream_writer)
        )
    new = {**config, CONF: conf}
    new["callbacks"] = with_progress_callbacks(config.get("callbacks"), clock)

    def flush() -> None:
        clock.abandon()  # nothing late gets through after this point either
        if held and send is not None:
            send(list(held))

    return clock, new, flush

