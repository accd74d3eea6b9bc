"""What the engine runs: nodes with their triggers, readers and writers, and the channels.

The graph layer (``threadloom.graph``) compiles a ``StateGraph`` into a ``Program``; the
engine never looks at edges or schemas, only at which channel writes wake which node, how
a node's input is read and how its return value becomes writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from threadloom.channels import (
    BaseChannel,
    BinaryOperatorAggregate,
    EphemeralValue,
    Topic,
    UntrackedValue,
)
from threadloom.channels.base import copier_of
from threadloom.channels.delta import DeltaChannel
from threadloom.constants import PULL
from threadloom.engine.node import NodeCallable
from threadloom.engine.subgraphs import find_subgraphs
from threadloom.types import CachePolicy, RetryPolicy, TimeoutPolicy, TracePolicy


@dataclass(slots=True)
class PregelNode:
    """One node as the engine sees it.

    ``read(channels, managed)`` builds the node's input from the channels (and the managed
    values of this step, or None);
    ``write(task, result)`` turns the node's return value into ``(channel, value)`` writes
    (state updates plus the triggers of the nodes that run next).
    """

    name: str
    triggers: tuple[str, ...]
    bound: NodeCallable
    read: Callable[[Any, Any], Any]
    write: Callable[[Any, Any], list[tuple[str, Any]]]
    retry_policy: Sequence[RetryPolicy] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    hidden: bool = False
    defer: bool = False
    cache_policy: CachePolicy[Any] | None = None
    cache_ns: tuple[str, ...] | None = None  # where its cached writes live (node_cache)
    trace_policy: TracePolicy | None = None  # what tracers record of its runs
    timeout: TimeoutPolicy | None = None  # of each attempt (async nodes only)
    error_handler: str | None = None  # the node a final failure is sent to, if any

    def copy(self, update: dict[str, Any] | None = None) -> PregelNode:
        """A copy of this node with the attributes in ``update`` replaced (e.g.
        ``{"retry_policy": (...,)}``); the node itself is left unchanged."""
        update = dict(update or {})
        unknown = sorted(set(update) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(
                f"PregelNode.copy() got unknown attribute(s) {unknown}; a node has "
                f"{', '.join(f.name for f in fields(self))}"
            )
        return replace(self, **update)

    @property
    def subgraphs(self) -> list[Any]:
        """The graphs this node runs or may run (see ``engine.subgraphs``)."""
        return find_subgraphs(self.bound.target)

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        """Run the node's own runnable on ``input`` outside a run (no state writes).

        For inspecting a compiled graph's nodes, e.g. ``graph.nodes["tools"].invoke(...)``.
        """
        return self._runnable("invoke").invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        """``invoke`` for async callers."""
        return await self._runnable("ainvoke").ainvoke(input, config, **kwargs)

    def _runnable(self, method: str) -> Any:
        if not self.bound.runnable:
            raise TypeError(
                f"Node {self.name!r} is a plain function, not a Runnable: call the function "
                f"itself instead of graph.nodes[{self.name!r}].{method}()."
            )
        return self.bound.func.__self__  # type: ignore[union-attr]


@dataclass(slots=True)
class Program:
    """A compiled graph in the engine's terms."""

    nodes: dict[str, PregelNode]
    channels: dict[str, BaseChannel]
    output_channels: Sequence[str] | str
    state_keys: frozenset[str]
    managed: dict[str, str]
    trigger_to_nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the node names in the order the planner looks at them (sorted)
    node_order: tuple[str, ...] = ()
    # each node's place in the order the nodes were added (``snapshot_order``)
    node_rank: dict[str, int] = field(default_factory=dict)
    ephemeral: tuple[str, ...] = ()
    ephemeral_set: frozenset[str] = frozenset()
    # (name, channel, its copier) of every channel: what ``new_channels`` copies
    _copiers: tuple[tuple[str, BaseChannel, Callable[[Any], Any]], ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    deferred: frozenset[str] = frozenset()
    # channels stored as deltas (DeltaChannel; see threadloom.engine.delta)
    delta_channels: frozenset[str] = frozenset()
    # channels never stored (UntrackedValue): their keys are also left out of the Send
    # arguments a checkpoint keeps
    untracked_channels: frozenset[str] = frozenset()
    # the reducer channels (delta or plain): the only ones a checkpoint may leave to be
    # rebuilt from the saver's history (see engine.delta.history_channels)
    history_specs: dict[str, BaseChannel] = field(default_factory=dict)
    # emit a "values" event only after steps that wrote an output channel (Pregel graphs)
    values_on_write: bool = False
    # input -> writes applied to the channels in the input checkpoint itself (Pregel
    # graphs, which have no START node for the input to pass through); None: via START
    direct_input: Callable[[Any], list[tuple[str, Any]]] | None = None
    # (checkpoint, pending writes) -> the writes: renames, in place, the channels of a
    # checkpoint saved in an older format to this program's, and those of its pending
    # writes (threadloom.graph.migrate); None: nothing to rename
    migrate: Callable[[dict[str, Any], Any], list[tuple[str, str, Any]]] | None = None

    def __post_init__(self) -> None:
        self.deferred = frozenset(n for n, node in self.nodes.items() if node.defer)
        self.node_order = tuple(sorted(self.nodes))
        self.node_rank = {name: i for i, name in enumerate(self.nodes)}
        index: dict[str, list[str]] = {}
        for name, node in self.nodes.items():
            for channel in node.triggers:
                index.setdefault(channel, []).append(name)
        self.trigger_to_nodes = {k: tuple(sorted(v)) for k, v in index.items()}
        self.ephemeral = tuple(
            k
            for k, c in self.channels.items()
            if isinstance(c, (EphemeralValue, Topic)) and not getattr(c, "accumulate", False)
        )
        self.ephemeral_set = frozenset(self.ephemeral)

        self.delta_channels = frozenset(
            k for k, c in self.channels.items() if isinstance(c, DeltaChannel)
        )
        self.untracked_channels = frozenset(
            k for k, c in self.channels.items() if isinstance(c, UntrackedValue)
        )
        self.history_specs = {
            k: c for k, c in self.channels.items()
            if isinstance(c, (DeltaChannel, BinaryOperatorAggregate))
        }

    def new_channels(self) -> dict[str, BaseChannel]:
        """Fresh copies of the program's channels (empty), one set per run."""
        copiers = self._copiers
        if copiers is None:
            copiers = self._copiers = tuple(
                (k, c, copier_of(type(c))) for k, c in self.channels.items()
            )
        return {k: copy(c) for k, c, copy in copiers}


def snapshot_order(program: Program, tasks: list[Any]) -> list[Any]:
    """``tasks`` (planned tasks, or task views with a ``name`` and a ``path``) in the order
    LangGraph's ``get_state`` lists them: the ``Send`` packets' tasks first, in the order
    they were sent, then the triggered nodes in the order the nodes were added to the graph
    (not by name, the order a run plans them in)."""
    if len(tasks) < 2:
        return list(tasks)
    rank = program.node_rank
    return sorted(tasks, key=lambda t: (1, rank.get(t.name, -1)) if t.path[0] == PULL
                  else (0, 0))
