"""Calling a user's node: plain functions, coroutines and langchain Runnables alike.

Which extra arguments a function wants (``config``, ``runtime``, ``writer``, ``store``) is
decided once, when the graph is built, so each call is a plain function call.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable
from typing import Any

from threadloom.engine.subgraphs import node_subgraph
from threadloom.engine.worker_threads import run_in_thread

_INJECTABLE = ("config", "runtime", "writer", "store")


def _signature_target(fn: Any) -> Any:
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn):
        return fn
    if hasattr(fn, "func") and callable(fn.func):  # functools.partial
        return fn
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects
    return call if call is not None else fn


def _is_async(fn: Any) -> bool:
    target = _signature_target(fn)
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn)


def warn_if_config_mistyped(fn: Any) -> None:
    """Warn (``UserWarning``) when ``fn``'s ``config`` parameter is annotated as anything
    but ``RunnableConfig`` or ``RunnableConfig | None``: the run's config is passed to it
    all the same, but its annotation misleads type checkers and readers. An unannotated
    parameter, or one whose annotation cannot be resolved, is left alone."""
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        return
    try:
        param = inspect.signature(fn).parameters.get("config")
    except (TypeError, ValueError):
        return
    if param is None or param.annotation is inspect.Parameter.empty:
        return
    annotation = param.annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(fn).get("config", annotation)
        except Exception:  # noqa: BLE001 - a name only the type checker knows
            return
        if isinstance(annotation, str):
            return
    from langchain_core.runnables import RunnableConfig

    allowed = (RunnableConfig, typing.Optional[RunnableConfig], RunnableConfig | None)  # noqa: UP045
    if annotation in allowed:
        return
    import warnings

    shown = getattr(annotation, "__name__", None) or repr(annotation)
    warnings.warn(
        f"The 'config' parameter should be typed as 'RunnableConfig' or "
        f"'RunnableConfig | None', not '{shown}'. Node '{getattr(fn, '__name__', fn)}' "
        "receives the run's config either way; only its annotation is wrong.",
        UserWarning,
        stacklevel=3,
    )


def _is_runnable(obj: Any) -> bool:
    from langchain_core.runnables import Runnable

    if isinstance(obj, Runnable):
        return True
    # duck-typed runnables; a plain callable (a function, a mock) is called, not invoked
    return (
        hasattr(obj, "invoke") and hasattr(obj, "ainvoke") and not callable(obj)
    )


class NodeCallable:
    """A node's function with its injection plan worked out ahead of time.

    ``inline`` marks a function of the library's own that never blocks (the input node's
    pass-through): an async run calls it on the event loop. Any other sync function runs
    in a worker thread under an async run, so that a node that blocks never stalls the
    loop; each such call costs two thread handoffs, which the input node of every run
    would otherwise pay for nothing."""

    __slots__ = ("name", "target", "func", "afunc", "runnable", "wants", "is_subgraph",
                 "subgraph", "inline")

    def __init__(self, name: str, fn: Any, *, inline: bool = False) -> None:
        self.name = name
        self.inline = inline
        self.target = fn  # what the node was built from (a function, runnable or graph)
        self.runnable = _is_runnable(fn)
        # the graph this node runs: the node itself, or one its function calls
        self.subgraph: Any = node_subgraph(fn)
        self.is_subgraph = self.subgraph is not None
        self.wants: tuple[str, ...] = ()
        if self.runnable:
            self.func: Callable[..., Any] | None = fn.invoke
            self.afunc: Callable[..., Any] | None = fn.ainvoke
            return
        try:
            params = inspect.signature(_signature_target(fn)).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        self.wants = tuple(
            n
            for n in _INJECTABLE
            if n in params and params[n].kind not in (inspect.Parameter.POSITIONAL_ONLY,)
        )
        if _is_async(fn):
            self.func = None
            self.afunc = fn
        else:
            self.func = fn
            self.afunc = None

    def _kwargs(self, task: Any) -> dict[str, Any]:
        return {name: getattr(task, name) for name in self.wants}

    def call(self, value: Any, task: Any) -> Any:
        if self.runnable:
            return self.func(value, task.config)  # type: ignore[misc]
        if self.func is None:
            raise TypeError(
                f'No synchronous function provided to "{self.name}": it is an async '
                "function. Run the graph with ainvoke()/astream(), or give the node a sync "
                "function."
            )
        if self.wants:
            return self.func(value, **self._kwargs(task))
        return self.func(value)

    async def acall(self, value: Any, task: Any) -> Any:
        if self.runnable:
            return await self.afunc(value, task.config)  # type: ignore[misc]
        if self.afunc is None:
            if self.inline:
                return self.call(value, task)
            # Sync node under an async run: a worker thread keeps the event loop free.
            ctx = task.context_copy()
            return await run_in_thread(asyncio.get_running_loop(), ctx.run, self.call, value, task)
        if self.wants:
            return await self.afunc(value, **self._kwargs(task))
        return await self.afunc(value)

    @property
    def is_async_only(self) -> bool:
        return self.func is None
