"""The functional API: write a workflow as a plain function, with ``@entrypoint`` and ``@task``.

``@entrypoint(checkpointer=...)`` turns a function of one input into a graph with one
node (named after the function): it runs, streams, pauses and resumes like a compiled
``StateGraph``. ``@task`` marks functions the entrypoint calls; calling one returns a
future at once (``.result()``, or ``await`` it in async code), so several tasks run in
parallel. Each task's result is saved as it finishes: when the entrypoint pauses
(``interrupt()``, in its body or inside a task) and is resumed, it runs again from its
top, and every task call that already finished returns its saved result instead of
running again.

    from threadloom.checkpoint.memory import InMemorySaver
    from threadloom.func import entrypoint, task
    from threadloom.types import Command, interrupt

    @task
    def draft(topic: str) -> str:
        return f"A post about {topic}"

    @task
    def review(text: str) -> str:
        return interrupt({"please review": text})

    @entrypoint(checkpointer=InMemorySaver())
    def write(topic: str) -> dict:
        text = draft(topic).result()
        return {"text": text, "verdict": review(text).result()}

    config = {"configurable": {"thread_id": "1"}}
    write.invoke("otters", config)                    # pauses in review
    write.invoke(Command(resume="approved"), config)  # draft is not run again

Parameters an entrypoint may declare besides its input: ``previous`` (what the last run
on this thread returned, or saved with ``entrypoint.final(value=..., save=...)``),
``config``, ``writer``, ``store`` and ``runtime``. Tasks may declare ``config``,
``writer``, ``store`` and ``runtime`` too; a value passed by the caller wins.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, get_args, get_origin, get_type_hints

from threadloom._context import current_task
from threadloom.channels import MISSING, EphemeralValue, LastValue
from threadloom.constants import _PREVIOUS as PREVIOUS  # (public name deprecated)
from threadloom.constants import END, RETURN, START
from threadloom.engine.node import NodeCallable
from threadloom.engine.node_cache import node_namespace
from threadloom.engine.program import PregelNode, Program
from threadloom.engine.timeouts import runs_async, sync_timeout_error
from threadloom.graph.compiled import CompiledStateGraph
from threadloom.graph.state import NodeSpec
from threadloom.types import CachePolicy, Command, RetryPolicy, TimeoutPolicy
from threadloom.warnings import (
    LangGraphDeprecatedSinceV05,
    LangGraphDeprecatedSinceV10,
    pop_deprecated_argument,
    warn_config_schema_method,
)

__all__ = ["entrypoint", "task"]

R = TypeVar("R")
ValueT = TypeVar("ValueT")  # entrypoint.final's (its class is inside the generic entrypoint)
SaveT = TypeVar("SaveT")

_INJECTABLE = ("config", "writer", "store", "runtime")


def _policies(retry_policy: Any) -> tuple[RetryPolicy, ...]:
    if retry_policy is None:
        return ()
    if isinstance(retry_policy, RetryPolicy):
        return (retry_policy,)
    return tuple(retry_policy)


def _deprecated_retry(kwargs: dict[str, Any], retry_policy: Any, what: str) -> Any:
    retry = pop_deprecated_argument(
        kwargs, "retry", "retry_policy", LangGraphDeprecatedSinceV05, stacklevel=4)
    if retry_policy is None:
        retry_policy = retry
    if kwargs:
        raise TypeError(f"{what}() got unexpected arguments: {sorted(kwargs)}")
    return retry_policy


def _callable_name(fn: Any) -> str:
    if isinstance(fn, functools.partial):
        return _callable_name(fn.func)
    name = getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__name__
    return name


def _is_async(fn: Any) -> bool:
    if isinstance(fn, functools.partial):
        return _is_async(fn.func)
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and inspect.iscoroutinefunction(call)


# -- @task ------------------------------------------------------------------------------


class _TaskBody:
    """A task's function as the engine calls it: its input is ``(args, kwargs)``.

    Declared ``config``/``writer``/``store``/``runtime`` parameters the caller did not pass
    are filled from the running task.
    """

    runnable = False
    is_subgraph = False

    def __init__(self, name: str, fn: Any) -> None:
        self.name = name
        self.fn = fn
        self.is_async = _is_async(fn)
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            params = []
        self.injectable = tuple(
            (i, p.name) for i, p in enumerate(params)
            if p.name in _INJECTABLE and p.kind is not inspect.Parameter.POSITIONAL_ONLY
        )

    def traced_input(self, value: Any) -> Any:
        """The call's arguments by parameter name, as a traced run shows its inputs."""
        args, kwargs = value
        try:
            return dict(inspect.signature(self.fn).bind_partial(*args, **kwargs).arguments)
        except (TypeError, ValueError):
            return {"args": args, **kwargs}

    def _arguments(self, value: Any, task: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = value
        if self.injectable:
            extra = {name: getattr(task, name) for pos, name in self.injectable
                     if name not in kwargs and pos >= len(args)}
            if extra:
                kwargs = {**kwargs, **extra}
        return args, kwargs

    def call(self, value: Any, task: Any) -> Any:
        if self.is_async:
            raise TypeError(
                f'No synchronous function provided to "{self.name}": it is an async task. '
                "Call it from an async entrypoint run with ainvoke()/astream(), or make it a "
                "sync function."
            )
        args, kwargs = self._arguments(value, task)
        return self.fn(*args, **kwargs)

    async def acall(self, value: Any, task: Any) -> Any:
        if not self.is_async:
            loop = asyncio.get_running_loop()
            ctx = task.context_copy()
            return await loop.run_in_executor(None, ctx.run, self.call, value, task)
        args, kwargs = self._arguments(value, task)
        return await self.fn(*args, **kwargs)

    @property
    def is_async_only(self) -> bool:
        return self.is_async


def _write_return(task: Any, result: Any) -> list[tuple[str, Any]]:
    return [(RETURN, result)]


def _checked_timeout(timeout: Any, fn: Any, name: str) -> TimeoutPolicy | None:
    policy = TimeoutPolicy.coerce(timeout)
    if policy is not None and not runs_async(fn):
        raise sync_timeout_error(name)
    return policy


def _no_read(channels: Any, managed: Any) -> Any:
    return None


class _TaskFunction:
    """A function decorated with ``@task``: calling it inside a run returns a future."""

    def __init__(self, fn: Any, *, name: str | None, retry_policy: Any,
                 cache_policy: CachePolicy[Any] | None, timeout: Any = None) -> None:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise NotImplementedError(
                f"@task does not support generator functions ({_callable_name(fn)}): "
                "return a value instead of yielding."
            )
        self.func = fn
        self.name = name or _callable_name(fn)
        self.retry_policy = _policies(retry_policy)
        self.cache_policy = cache_policy
        self.timeout = _checked_timeout(timeout, fn, self.name)
        self.node = PregelNode(
            name=self.name,
            triggers=(),
            bound=_TaskBody(self.name, fn),  # type: ignore[arg-type]
            read=_no_read,
            write=_write_return,
            retry_policy=self.retry_policy,
            cache_policy=cache_policy,
            cache_ns=node_namespace(self.name, fn),
            timeout=self.timeout,
        )
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        parent = current_task.get()
        calls = parent.scope.calls if parent is not None else None
        if calls is None:
            raise RuntimeError(
                f"Task '{self.name}' was called outside of a running graph: call @task "
                "functions from inside an @entrypoint (or a graph node) while it runs."
            )
        return calls.call(parent, self.node, args, kwargs)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return _TaskFunction(functools.partial(self.func, instance), name=self.name,
                             retry_policy=self.retry_policy, cache_policy=self.cache_policy,
                             timeout=self.timeout)

    def clear_cache(self, cache: Any) -> None:
        """Forget this task's cached results in ``cache`` (a ``BaseCache``)."""
        cache.clear([self.node.cache_ns])

    async def aclear_cache(self, cache: Any) -> None:
        await cache.aclear([self.node.cache_ns])

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def task(
    __func_or_none__: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
    cache_policy: CachePolicy[Any] | None = None,
    timeout: Any = None,
    **kwargs: Any,
) -> Any:
    """Mark a function as a task of the functional API.

    Called inside an ``@entrypoint`` (or any graph node) while it runs, the task starts at
    once and the call returns a future: ``.result()`` waits for it; in async code the
    future is awaited. Its result is saved, so a resumed entrypoint does not run a
    finished task again. ``retry_policy`` retries it on failure, like a node's.
    """
    retry_policy = _deprecated_retry(kwargs, retry_policy, "task")
    timeout = TimeoutPolicy.coerce(timeout)  # a bad value fails here, not at first call

    def decorate(fn: Callable[..., Any]) -> _TaskFunction:
        return _TaskFunction(fn, name=name, retry_policy=retry_policy,
                             cache_policy=cache_policy, timeout=timeout)

    if __func_or_none__ is not None:
        return decorate(__func_or_none__)
    return decorate


# -- @entrypoint ------------------------------------------------------------------------


class _EntrypointBody(NodeCallable):
    """The entrypoint's function: its input, plus ``previous`` and the usual injections."""

    def __init__(self, name: str, fn: Any) -> None:
        super().__init__(name, fn)
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        if "previous" in params:
            self.wants = (*self.wants, "previous")

    def _kwargs(self, task: Any) -> dict[str, Any]:
        out = {}
        for name in self.wants:
            if name == "previous":
                out[name] = _previous(task)
            elif name == "runtime":
                out[name] = dataclasses.replace(task.runtime, previous=_previous(task))
            else:
                out[name] = getattr(task, name)
        return out


def _previous(task: Any) -> Any:
    chan = task.channels.get(PREVIOUS) if task.channels is not None else None
    if chan is None or chan.value is MISSING:
        return None
    return chan.value


class _EntrypointWriter:
    """The entrypoint's return value -> its output and the value saved for next time."""

    def __call__(self, task: Any, result: Any) -> list[tuple[str, Any]]:
        if isinstance(result, entrypoint.final):
            return [(END, result.value), (PREVIOUS, result.save)]
        return [(END, result), (PREVIOUS, result)]

    def command_input(self, command: Command[Any]) -> list[tuple[str, Any]]:
        if command.update is not None:
            return self(None, command.update)
        return []


class _EntrypointSpec:
    """What a compiled graph asks of its builder, for a one-node functional graph."""

    def __init__(self, name: str, fn: Any, input_schema: Any, output_schema: Any,
                 context_schema: Any) -> None:
        self.nodes = {name: NodeSpec(action=fn, input_schema=input_schema)}
        self.edges = {(START, name), (name, END)}
        self.waiting_edges: set[Any] = set()
        self.branches: dict[str, Any] = {}
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.state_schema = output_schema
        self.context_schema = context_schema
        self.channels: dict[str, Any] = {}
        self.managed: dict[str, Any] = {}


class EntrypointGraph(CompiledStateGraph):
    """The graph ``@entrypoint`` makes: run it like any compiled graph.

    ``invoke``/``stream`` (default stream mode "updates": one chunk per finished task,
    then ``{entrypoint_name: returned_value}``), their async twins, ``get_state``
    (``values`` is the last returned value), ``get_state_history`` and ``update_state``
    (sets what the next run receives as ``previous``).
    """

    _live_updates = True

    def _input_writes(self, command: Command[Any]) -> list[tuple[str, Any]]:
        writer: _EntrypointWriter = self.program.nodes[self.entry].write
        return writer.command_input(command)

    @property
    def entry(self) -> str:
        return next(iter(self.builder.nodes))

    def _result(self, run: Any, output_keys: Any, version: str) -> Any:
        loop = run.loop
        if version == "v2" or not loop.interrupts or isinstance(loop.output(), dict):
            return super()._result(run, output_keys, version)
        loop.raise_if_nested_pause()
        return {"__interrupt__": list(loop.interrupts)}

    def update_state(self, config: dict[str, Any], values: Any, as_node: str | None = None,
                     task_id: str | None = None) -> dict[str, Any]:
        return super().update_state(config, values, as_node or self.entry, task_id)

    async def aupdate_state(self, config: dict[str, Any], values: Any,
                            as_node: str | None = None,
                            task_id: str | None = None) -> dict[str, Any]:
        return await super().aupdate_state(config, values, as_node or self.entry, task_id)

    def get_context_jsonschema(self, config: Any = None) -> dict[str, Any] | None:
        schema = self.builder.context_schema
        if schema is None:
            return None
        from pydantic import TypeAdapter

        return TypeAdapter(schema).json_schema()

    def config_schema(self, *, include: Any = None) -> Any:
        warn_config_schema_method()
        return super().config_schema(include=include)

    @property
    def context_schema(self) -> Any:
        return self.builder.context_schema


def _first_param_type(fn: Any) -> Any:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return Any
    if not params:
        return Any
    try:
        hints = get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: no schema, not an error
        hints = {}
    return hints.get(params[0].name, Any)


def _return_type(fn: Any) -> Any:
    try:
        hints = get_type_hints(fn)
    except Exception:  # noqa: BLE001
        hints = getattr(fn, "__annotations__", {}) or {}
    out = hints.get("return", Any)
    if out is entrypoint.final:
        return Any
    if get_origin(out) is entrypoint.final:
        return get_args(out)[0]
    return out


class entrypoint(Generic[R]):  # noqa: N801 - LangGraph's public name
    """Turn a function of one input into a graph: ``@entrypoint(checkpointer=...)``.

    The function may declare ``previous`` (the value the last run on this thread
    returned, or saved with ``entrypoint.final``), ``config``, ``writer``, ``store`` and
    ``runtime``. It may call ``@task`` functions and ``interrupt()``.
    """

    def __init__(
        self,
        checkpointer: Any = None,
        store: Any = None,
        cache: Any = None,
        context_schema: Any = None,
        cache_policy: CachePolicy[Any] | None = None,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> None:
        config_schema = pop_deprecated_argument(
            kwargs, "config_schema", "context_schema", LangGraphDeprecatedSinceV10)
        context_schema = context_schema or config_schema
        self.checkpointer = checkpointer
        self.store = store
        self.cache = cache
        self.context_schema = context_schema
        self.cache_policy = cache_policy
        self.retry_policy = _deprecated_retry(kwargs, retry_policy, "entrypoint")
        self.timeout = TimeoutPolicy.coerce(timeout)

    @dataclasses.dataclass
    class final(Generic[ValueT, SaveT]):  # noqa: N801 - LangGraph's public name
        """Return ``value`` to the caller but save ``save`` as the next run's ``previous``."""

        value: ValueT
        save: SaveT

    def __call__(self, func: Callable[..., Any]) -> EntrypointGraph:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise NotImplementedError(
                f"@entrypoint does not support generator functions ({_callable_name(func)}): "
                "return a value instead of yielding (stream with get_stream_writer())."
            )
        name = _callable_name(func)
        node = PregelNode(
            name=name,
            triggers=(START,),
            bound=_EntrypointBody(name, func),
            read=_read_input,
            write=_EntrypointWriter(),
            retry_policy=_policies(self.retry_policy),
            timeout=_checked_timeout(self.timeout, func, name),
        )
        program = Program(
            nodes={name: node},
            channels={
                START: EphemeralValue(Any, key=START),
                END: LastValue(Any, key=END),
                PREVIOUS: LastValue(Any, key=PREVIOUS),
            },
            output_channels=END,
            state_keys=frozenset({END}),
            managed={},
        )
        spec = _EntrypointSpec(name, func, _first_param_type(func), _return_type(func),
                               self.context_schema)
        graph = EntrypointGraph(
            builder=spec,  # type: ignore[arg-type]
            program=program,
            checkpointer=self.checkpointer,
            store=self.store,
            interrupt_before=(),
            interrupt_after=(),
            name="LangGraph",
            cache=self.cache,
        )
        return graph


def _read_input(channels: Any, managed: Any) -> Any:
    return channels[START].value
