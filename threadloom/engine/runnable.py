"""``RunnableCallable``: a plain function as a langchain ``Runnable``, with the engine's
argument injection, and ``RunnableSeq``, a chain of runnables run one after another.

A function's extra parameters (``config``, ``runtime``, ``store``, ``writer``,
``previous``) are filled in from the config it is invoked with: the ``Runtime`` a node
runs with sits in ``config["configurable"][CONFIG_KEY_RUNTIME]``. Keyword arguments given
to ``invoke`` take precedence. A required injectable argument with nothing to fill it in
is a ``ValueError`` naming it.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, cast

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import set_config_context

from threadloom.constants import CONFIG_KEY_RUNTIME
from threadloom.engine.runconfig import (
    async_callback_manager_for_config,
    callback_manager_for_config,
    ensure_config,
)

__all__ = [
    "ASYNCIO_ACCEPTS_CONTEXT",
    "RunnableCallable",
    "RunnableSeq",
    "is_async_callable",
    "is_async_generator",
]

ASYNCIO_ACCEPTS_CONTEXT = sys.version_info >= (3, 11)
"""Whether ``asyncio.create_task`` takes ``context=`` (so callbacks nest in async code)."""

# parameter name -> attribute of the Runtime that fills it (None: the config itself)
_INJECTABLE: dict[str, str | None] = {
    "config": None,
    "runtime": "",
    "store": "store",
    "writer": "stream_writer",
    "previous": "previous",
}


def _call_target(fn: Any) -> Any:
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn):
        return fn
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - callable objects
    return call if call is not None and not isinstance(fn, type) else fn


def is_async_callable(fn: Any) -> bool:
    """True for a coroutine function or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(_call_target(fn))


def is_async_generator(fn: Any) -> bool:
    """True for an async generator function or an object whose ``__call__`` is one."""
    return inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(_call_target(fn))


def _optional(param: inspect.Parameter, hints: dict[str, Any]) -> bool:
    if param.default is not inspect.Parameter.empty:
        return True
    ann = hints.get(param.name, param.annotation)
    if ann is inspect.Parameter.empty:
        return False
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(ann)
    return False


def _accepts(fn: Any) -> dict[str, bool]:
    """Injectable parameter name -> whether it may be left at None, for ``fn``."""
    if fn is None:
        return {}
    try:
        target = _call_target(fn)
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return {}
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations: no Optional detection
        hints = {}
    return {
        name: _optional(p, hints)
        for name, p in params.items()
        if name in _INJECTABLE
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


class RunnableCallable(Runnable[Any, Any]):
    """A sync and/or async function run as a ``Runnable`` with argument injection."""

    def __init__(
        self,
        func: Callable[..., Any] | None,
        afunc: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        tags: list[str] | None = None,
        trace: bool = True,
        recurse: bool = True,
        explode_args: bool = False,
        trace_policy: Any = None,
        **kwargs: Any,
    ) -> None:
        if func is not None and afunc is None and is_async_callable(func):
            func, afunc = None, func
        if func is None and afunc is None:
            raise ValueError("RunnableCallable needs a function: give func or afunc.")
        self.func = func
        self.afunc = afunc
        fn = func if func is not None else afunc
        self.name: str = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.tags = tags
        self.trace = trace
        self.recurse = recurse
        self.explode_args = explode_args
        self.trace_policy = trace_policy
        self.kwargs = kwargs
        self.func_accepts: dict[str, bool] = _accepts(fn)
        if func is not None and afunc is not None:
            self.afunc_accepts: dict[str, bool] = _accepts(afunc)
        else:
            self.afunc_accepts = self.func_accepts

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        base = name or self.name
        return f"{base}{suffix}" if suffix else base

    def __repr__(self) -> str:
        return f"RunnableCallable({self.name})"

    # -- arguments -------------------------------------------------------------------

    def _arguments(
        self, accepts: dict[str, bool], config: dict[str, Any], given: dict[str, Any]
    ) -> dict[str, Any]:
        kwargs = {**self.kwargs, **given}
        runtime = (config.get("configurable") or {}).get(CONFIG_KEY_RUNTIME)
        for name, optional in accepts.items():
            if name in kwargs:
                continue
            attr = _INJECTABLE[name]
            if attr is None:
                kwargs[name] = config
            elif runtime is not None:
                kwargs[name] = runtime if attr == "" else getattr(runtime, attr, None)
            elif optional:
                kwargs[name] = None
            else:
                raise ValueError(
                    f"Missing required config key '{CONFIG_KEY_RUNTIME}' for "
                    f"'{self.name}': parameter '{name}' can only be injected inside a "
                    "running graph. Pass it explicitly, e.g. .invoke(input, "
                    f"{name}=...), or make it optional ({name}: X | None = None)."
                )
        return kwargs

    def _call_args(self, input: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if self.explode_args:
            args, kwargs = input
            return tuple(args), dict(kwargs)
        return (input,), {}

    # -- running ---------------------------------------------------------------------

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        if self.func is None:
            raise TypeError(
                f'No synchronous function provided to "{self.name}": it is an async '
                "function. Use ainvoke()/astream(), or give a sync function."
            )
        config = ensure_config(config)
        args, extra = self._call_args(input)
        kw = {**extra, **self._arguments(self.func_accepts, config, kwargs)}
        if not self.trace:
            with set_config_context(config) as ctx:
                ret = ctx.run(self.func, *args, **kw)
        else:
            manager = callback_manager_for_config(config)
            run = manager.on_chain_start(
                None, _trace_input(self.trace_policy, input),
                name=config.get("run_name") or self.get_name(), run_id=config.get("run_id"),
            )
            # a copy of the (complete) config with the run's child callbacks
            child = cast(RunnableConfig, {**config, "callbacks": run.get_child()})
            child.pop("run_id", None)
            child.pop("run_name", None)
            try:
                with set_config_context(child) as ctx:
                    ret = ctx.run(self.func, *args, **kw)
            except BaseException as exc:
                run.on_chain_error(exc)
                raise
            run.on_chain_end(_trace_output(self.trace_policy, ret))
        if self.recurse and isinstance(ret, Runnable):
            return ret.invoke(input, config)
        return ret

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        if self.afunc is None:
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.invoke(input, config, **kwargs)
            )
        config = ensure_config(config)
        args, extra = self._call_args(input)
        kw = {**extra, **self._arguments(self.afunc_accepts, config, kwargs)}
        if not self.trace:
            with set_config_context(config) as ctx:
                ret = await _in_context(ctx, self.afunc(*args, **kw))
        else:
            manager = async_callback_manager_for_config(config)
            run = await manager.on_chain_start(
                None, _trace_input(self.trace_policy, input),
                name=config.get("run_name") or self.get_name(), run_id=config.get("run_id"),
            )
            # a copy of the (complete) config with the run's child callbacks
            child = cast(RunnableConfig, {**config, "callbacks": run.get_child()})
            child.pop("run_id", None)
            child.pop("run_name", None)
            try:
                with set_config_context(child) as ctx:
                    ret = await _in_context(ctx, self.afunc(*args, **kw))
            except BaseException as exc:
                await run.on_chain_error(exc)
                raise
            await run.on_chain_end(_trace_output(self.trace_policy, ret))
        if self.recurse and isinstance(ret, Runnable):
            return await ret.ainvoke(input, config)
        return ret


async def _in_context(ctx: Any, coro: Any) -> Any:
    if ASYNCIO_ACCEPTS_CONTEXT:
        return await asyncio.create_task(coro, context=ctx)
    return await coro


def _trace_input(policy: Any, value: Any) -> Any:
    fn = getattr(policy, "process_inputs", None)
    if fn is not None:
        try:
            value = fn(value)
        except Exception:  # noqa: BLE001 - a failing scrubber must not fail the run
            value = {"error": "trace policy process_inputs failed"}
    return value if isinstance(value, dict) else {"input": value}


def _trace_output(policy: Any, value: Any) -> Any:
    fn = getattr(policy, "process_outputs", None)
    if fn is not None:
        try:
            value = fn(value)
        except Exception:  # noqa: BLE001
            value = {"error": "trace policy process_outputs failed"}
    return value if isinstance(value, dict) else {"output": value}


class RunnableSeq(Runnable[Any, Any]):
    """Runnables run one after another, each getting the previous one's output.

    Unlike langchain's ``RunnableSequence`` it accepts any number of steps (one is fine)
    and adds no run of its own unless ``trace_policy`` or a name asks for one.
    """

    def __init__(
        self, *steps: Any, name: str | None = None, trace_inputs: Any = None,
        trace_policy: Any = None,
    ) -> None:
        if not steps:
            raise ValueError("RunnableSeq needs at least one step.")
        from langchain_core.runnables.base import coerce_to_runnable

        self.steps = [
            s if isinstance(s, Runnable) else coerce_to_runnable(s) for s in steps
        ]
        self.name = name
        self.trace_policy = trace_policy
        self.trace_inputs = trace_inputs

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        base = name or self.name or "RunnableSeq"
        return f"{base}{suffix}" if suffix else base

    def __or__(self, other: Any) -> RunnableSeq:  # type: ignore[override]  # LangGraph's signature, not Runnable's
        return RunnableSeq(*self.steps, other, name=self.name)

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        config = ensure_config(config)
        value = input
        for i, step in enumerate(self.steps):
            value = step.invoke(value, config, **(kwargs if i == 0 else {}))
        return value

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        config = ensure_config(config)
        value = input
        for i, step in enumerate(self.steps):
            value = await step.ainvoke(value, config, **(kwargs if i == 0 else {}))
        return value
