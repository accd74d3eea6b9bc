"""Conditional edges: a routing function whose answer decides which nodes run next."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal, Protocol, TypeGuard, get_args, get_origin, get_type_hints

from threadloom.constants import END, START, TASKS
from threadloom.errors import InvalidUpdateError
from threadloom.types import Send

logger = logging.getLogger("threadloom")

# the arguments a routing function may ask for by name, as a node can
_INJECTABLE = ("config", "runtime", "writer", "store")


def branch_channel(node: str) -> str:
    """The trigger channel whose write schedules ``node`` in the next superstep."""
    return f"branch:to:{node}"


class _Invocable(Protocol):
    """A path given as a runnable (what ``Branch`` calls on it)."""

    def invoke(self, input: Any, config: Any) -> Any: ...

    async def ainvoke(self, input: Any, config: Any) -> Any: ...


def _invocable(path: object) -> TypeGuard[_Invocable]:
    """Whether ``path`` is a runnable rather than a function (it has ``invoke``)."""
    return hasattr(path, "invoke") and not inspect.isfunction(path)


class Branch:
    """A routing function plus its optional ``path_map`` (result -> node name)."""

    def __init__(
        self,
        path: Callable[..., Any],
        path_map: dict[Hashable, str] | list[str] | None = None,
    ) -> None:
        self.path = path
        self.input_schema: Any = None  # the state schema the path asks for, if it says
        self.runnable = path if _invocable(path) else None
        self.is_runnable = self.runnable is not None
        self.is_async = inspect.iscoroutinefunction(path) or inspect.iscoroutinefunction(
            getattr(path, "__call__", None)  # noqa: B004
        )
        # the extra arguments the path asks for by name, as a node can (``store`` ...)
        self.wants: tuple[str, ...] = ()
        if not self.is_runnable:
            try:
                params = inspect.signature(path).parameters
            except (TypeError, ValueError):
                params = {}  # type: ignore[assignment]
            self.wants = tuple(
                name for name in _INJECTABLE
                if name in params
                and params[name].kind is not inspect.Parameter.POSITIONAL_ONLY
            )
        self.wants_config = "config" in self.wants
        if isinstance(path_map, list):
            self.ends: dict[Hashable, str] | None = {name: name for name in path_map}
        elif isinstance(path_map, dict):
            self.ends = dict(path_map)
        else:
            self.ends = _literal_ends(path)

    @property
    def name(self) -> str:
        name = getattr(self.path, "__name__", None) or type(self.path).__name__
        return "condition" if name == "<lambda>" else name

    def _kwargs(self, config: dict[str, Any], task: Any) -> dict[str, Any]:
        return {
            name: config if name == "config" else getattr(task, name, None)
            for name in self.wants
        }

    def route(self, state: Any, config: dict[str, Any], task: Any = None) -> list[Any]:
        """Evaluate the path on ``state``; return node names and ``Send`` packets.

        ``task`` (the running task) supplies ``store``/``runtime``/``writer`` to a path
        that asks for them."""
        if self.runnable is not None:
            result = self.runnable.invoke(state, config)
        elif self.is_async:
            raise TypeError(
                f"Conditional edge '{self.name}' is async: run the graph with "
                "ainvoke()/astream(), or give a sync routing function."
            )
        elif self.wants:
            result = self.path(state, **self._kwargs(config, task))
        else:
            result = self.path(state)
        return self.resolve(result)

    async def aroute(self, state: Any, config: dict[str, Any], task: Any = None) -> list[Any]:
        if self.runnable is not None:
            result = await self.runnable.ainvoke(state, config)
        elif self.wants:
            result = self.path(state, **self._kwargs(config, task))
        else:
            result = self.path(state)
        if inspect.isawaitable(result):
            result = await result
        return self.resolve(result)

    def resolve(self, result: Any) -> list[Any]:
        items = result if isinstance(result, (list, tuple)) else [result]
        out: list[Any] = []
        for item in items:
            if isinstance(item, Send):
                if item.node == END:
                    raise InvalidUpdateError("Cannot send a packet to the END node")
                out.append(item)
                continue
            if self.ends is not None:
                if item not in self.ends:
                    raise KeyError(
                        f"Conditional edge '{self.name}' returned {item!r}, which is not in "
                        f"its path_map (expected one of {list(self.ends)})."
                    )
                item = self.ends[item]
            if item is None or item == START:
                raise ValueError(
                    f"Branch did not return a valid destination: conditional edge "
                    f"'{self.name}' returned {item!r}; return a node name, END or Send."
                )
            out.append(item)
        return out


def route_writes(
    destinations: Sequence[Any], nodes: Any, source: str
) -> list[tuple[str, Any]]:
    """Writes that schedule ``destinations`` (names, ``END`` or ``Send``) from ``source``."""
    writes: list[tuple[str, Any]] = []
    for dest in destinations:
        if isinstance(dest, Send):
            if dest.node == END:
                logger.warning("Task %s sent a packet to END; ignoring it.", source)
                continue
            writes.append((TASKS, dest))
        elif dest == END:
            continue
        elif dest in nodes:
            writes.append((branch_channel(dest), None))
        else:
            logger.warning(
                "Task %s wrote to unknown channel %s, ignoring it.", source, branch_channel(dest)
            )
    return writes


def _literal_ends(path: Any) -> dict[Hashable, str] | None:
    try:
        target = path if inspect.isfunction(path) or inspect.ismethod(path) else path.__call__
        hint = get_type_hints(target).get("return")
    except Exception:  # noqa: BLE001 - no hints: any node may follow
        return None
    if hint is None or get_origin(hint) is not Literal:
        return None
    return {name: name for name in get_args(hint)}
