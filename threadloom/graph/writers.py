"""Between the user's functions and the channels: reading a node's input, and turning
what it returned (a dict, a state object, a ``Command``, ``None``) into channel writes
plus the triggers of the nodes that run next."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from threadloom._fields import state_object_to_dict
from threadloom._schema import ROOT, make_coercer
from threadloom.channels import MISSING
from threadloom.constants import END, START
from threadloom.engine.task import FreshChannels
from threadloom.errors import (
    ErrorCode,
    InvalidUpdateError,
    ParentCommand,
    create_error_message,
)
from threadloom.graph.branch import Branch, branch_channel, route_writes
from threadloom.types import Command

if TYPE_CHECKING:
    from threadloom.graph.state import StateGraph


def state_reader(graph: StateGraph[Any], schema: Any) -> Callable[[Any, Any], Any]:
    """A function building a node's input (of type ``schema``) from the channels."""
    keys = tuple(graph.schemas[schema])
    if keys == (ROOT,):
        return lambda channels, managed: channels[ROOT].value
    coerce = make_coercer(schema)
    managed_keys = frozenset(k for k in keys if k in graph.managed)

    def read(channels: dict[str, Any], managed: dict[str, Any] | None) -> Any:
        values = {}
        for key in keys:
            chan = channels.get(key)
            if chan is not None:
                value = chan.value
                if value is not MISSING:
                    values[key] = value
        if managed and managed_keys:
            for key in managed_keys:
                values[key] = managed[key]
        return coerce(values)

    return read


def input_reader(graph: StateGraph[Any]) -> Callable[[Any, Any], Any]:
    return lambda channels, managed: channels[START].value


class NodeWriter:
    """Maps one node's return value to writes: state updates, edges, branches, gotos."""

    def __init__(
        self,
        name: str,
        *,
        graph: StateGraph[Any],
        state_keys: frozenset[str],
        joins: dict[str, list[tuple[str, str]]],
        edges_from: dict[str, list[str]],
    ) -> None:
        self.name = name
        self.graph = graph
        self.state_keys = state_keys
        self.root = state_keys == frozenset({ROOT})
        # a dict result maps straight to its state keys' writes (``_values``)
        self.plain_dict = not self.root and name != START
        self.input_keys = frozenset(graph.schemas[graph.input_schema])
        self.static: list[tuple[str, Any]] = [
            (branch_channel(dst), None) for dst in edges_from.get(name, ()) if dst != END
        ]
        self.static += [(join, src) for join, src in joins.get(name, ())]
        self.branches: list[Branch] = list(graph.branches.get(name, {}).values())
        self.is_async = any(b.is_async for b in self.branches)
        # Routing functions see the state as their source node does (its input schema).
        spec = graph.nodes.get(name)
        schema = spec.input_schema if spec is not None else graph.state_schema
        self.coerce_state = make_coercer(schema)
        self.state_keys_order = tuple(graph.schemas[schema])
        # ...unless a routing function annotates the state it wants
        self.branch_views: list[tuple[Branch, tuple[str, ...], Any]] = [
            (b, tuple(graph.schemas[b.input_schema]), make_coercer(b.input_schema))
            if b.input_schema is not None and b.input_schema in graph.schemas
            else (b, self.state_keys_order, self.coerce_state)
            for b in self.branches
        ]

    # -- the value a node returned -> (updates, gotos) -------------------------------

    def updates(self, result: Any) -> tuple[list[tuple[str, Any]], list[Any]]:
        if type(result) is dict and self.plain_dict:  # (the usual result, at once)
            keys = self.state_keys
            return [(k, v) for k, v in result.items() if k in keys], []
        if result is None:
            return [], []
        if isinstance(result, Command):
            if result.graph == Command.PARENT:
                raise ParentCommand(result)
            gotos = result.goto
            gotos = list(gotos) if isinstance(gotos, (list, tuple)) else [gotos]
            return self._values(result.update, allow_none=True), [g for g in gotos if g != ()]
        if self.name == START:
            return self._input(result), []
        if isinstance(result, (list, tuple)) and any(isinstance(r, Command) for r in result):
            updates: list[tuple[str, Any]] = []
            gotos_all: list[Any] = []
            for item in result:
                u, g = self.updates(item)
                updates += u
                gotos_all += g
            return updates, gotos_all
        return self._values(result), []

    def _values(self, value: Any, allow_none: bool = False) -> list[tuple[str, Any]]:
        if value is None and allow_none:
            return []
        if self.root:
            return [(ROOT, value)]
        if isinstance(value, dict):
            return [(k, v) for k, v in value.items() if k in self.state_keys]
        if isinstance(value, (list, tuple)) and all(
            isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], str) for t in value
        ) and allow_none:
            return [(k, v) for k, v in value if k in self.state_keys]
        as_dict = state_object_to_dict(value)
        if as_dict is not None:
            return [(k, v) for k, v in as_dict.items() if k in self.state_keys]
        raise InvalidUpdateError(
            create_error_message(
                message=(
                    f"Expected dict, got {value!r}: node '{self.name}' must return a dict of "
                    "state keys to update (or None, a Command, or a state object)."
                ),
                error_code=ErrorCode.INVALID_GRAPH_NODE_RETURN_VALUE,
            )
        )

    def _input(self, value: Any) -> list[tuple[str, Any]]:
        if self.root:
            return [(ROOT, value)]
        as_dict = state_object_to_dict(value)
        if as_dict is None:
            raise InvalidUpdateError(
                f"Expected the graph input to be a dict (or state object), got {value!r}."
            )
        return [(k, v) for k, v in as_dict.items() if k in self.input_keys]

    # -- writes ------------------------------------------------------------------------

    def __call__(self, task: Any, result: Any) -> list[tuple[str, Any]]:
        updates, gotos = self.updates(result)
        writes = updates + self.static
        if self.branches:
            for branch, keys, coerce in self.branch_views:
                state = self.branch_state(task, result, updates, branch, keys, coerce)
                writes += route_writes(branch.route(state, task.config, task), self.graph.nodes,
                                       self.name)
        if gotos:
            writes += route_writes(gotos, self.graph.nodes, self.name)
        return writes

    async def acall(self, task: Any, result: Any) -> list[tuple[str, Any]]:
        updates, gotos = self.updates(result)
        writes = updates + self.static
        if self.branches:
            for branch, keys, coerce in self.branch_views:
                state = self.branch_state(task, result, updates, branch, keys, coerce)
                writes += route_writes(await branch.aroute(state, task.config, task),
                                       self.graph.nodes, self.name)
        if gotos:
            writes += route_writes(gotos, self.graph.nodes, self.name)
        return writes

    def branch_state(
        self, task: Any, result: Any, updates: list[tuple[str, Any]], branch: Branch,
        keys: Any, coerce: Any,
    ) -> Any:
        """What a routing function of this node sees: the fresh state, plus, for dict
        states and a routing function that names no schema of its own, the keys the
        node returned that are not state keys (passed to the edge, never saved)."""
        state = self.fresh_state(task, updates, keys, coerce)
        if (
            branch.input_schema is None
            and isinstance(result, dict)
            and isinstance(state, dict)
            and not result.keys() <= self.state_keys
        ):
            extra = {k: v for k, v in result.items() if k not in self.state_keys}
            return {**extra, **state}
        return state

    def fresh_state(
        self, task: Any, updates: list[tuple[str, Any]], keys: Any = None, coerce: Any = None
    ) -> Any:
        """The state with this node's own writes applied, but not its siblings'."""
        channels = task.channels
        fresh = task.fresh
        if fresh is not None and fresh.updates is updates:  # (another routing function)
            touched = fresh.channels
        else:
            touched = {}
            grouped: dict[str, list[Any]] = {}
            for key, value in updates:
                grouped.setdefault(key, []).append(value)
            changed: dict[str, bool] = {}
            for key, values in grouped.items():
                base = channels[key]
                chan = base.copy()
                changed[key] = chan.update(values)
                touched[key] = chan
            # the step's apply may take these channels instead of updating the same again
            task.fresh = FreshChannels(updates, grouped, touched, changed,
                                       {k: channels[k] for k in grouped})
        if self.root:
            chan = touched.get(ROOT) or channels[ROOT]
            return chan.value
        state: dict[str, Any] = {}
        managed = task.managed
        for key in self.state_keys_order if keys is None else keys:
            chan = touched.get(key) or channels.get(key)
            if chan is not None:
                if chan.value is not MISSING:
                    state[key] = chan.value
            elif managed and key in managed:
                state[key] = managed[key]
        return (self.coerce_state if coerce is None else coerce)(state)

    def command_input(self, command: Command[Any]) -> list[tuple[str, Any]]:
        """Writes for a ``Command`` given as graph input: its update and goto."""
        updates = self._values(command.update, allow_none=True)
        gotos = command.goto
        gotos = list(gotos) if isinstance(gotos, (list, tuple)) else [gotos]
        return updates + route_writes([g for g in gotos if g != ()], self.graph.nodes, START)
