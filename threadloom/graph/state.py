"""``StateGraph``: declare a state schema, nodes and edges, then ``compile()`` it.

The builder only records what the user said; ``compile()`` checks it (naming the node at
fault) and turns it into the engine's ``Program``: one channel per state key, a trigger
channel per node, and for each node a reader (state -> input) and a writer (return value
-> channel writes, including the routes to the next nodes).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Generic, Self, get_args, get_origin

from threadloom._schema import (
    ROOT,
    channel_for,
    first_param_schema,
    is_schema_class,
    schema_hints,
)
from threadloom.cache.base import BaseCache
from threadloom.channels import (
    MISSING,
    BaseChannel,
    EphemeralValue,
    LastValue,
    NamedBarrierValue,
    Topic,
    TriggerFlag,
)
from threadloom.checkpoint.base import BaseCheckpointSaver
from threadloom.checkpoint.serde.allowlist import allow_graph_classes
from threadloom.constants import END, RESERVED_CHARS, START, TASKS
from threadloom.engine.node import NodeCallable, _is_runnable, warn_if_config_mistyped
from threadloom.engine.node_cache import node_namespace
from threadloom.engine.program import PregelNode, Program
from threadloom.engine.runnable import RunnableCallable
from threadloom.engine.timeouts import runs_async, sync_timeout_error
from threadloom.graph.branch import Branch, branch_channel
from threadloom.graph.error_handlers import DEFAULT_HANDLER, handler_body, handler_name
from threadloom.graph.migrate import TriggerRenames
from threadloom.stream.mux import normalize_factories
from threadloom.types import CachePolicy, RetryPolicy, TimeoutPolicy, TracePolicy
from threadloom.typing import StateT
from threadloom.warnings import (
    LangGraphDeprecatedSinceV05,
    LangGraphDeprecatedSinceV10,
    pop_deprecated_argument,
)

__all__ = ["StateGraph"]

logger = logging.getLogger("threadloom")


@dataclass
class NodeSpec:
    """A node as declared: its callable and options.

    ``action`` is what ``add_node`` was given (a function, callable object, runnable or
    graph); ``runnable`` is that as a ``Runnable`` (a plain callable wrapped in a
    ``RunnableCallable``, whose ``.func`` is the callable), as LangGraph exposes it."""

    action: Any
    input_schema: Any
    retry_policy: Sequence[RetryPolicy] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    destinations: Any = None
    defer: bool = False
    cache_policy: CachePolicy[Any] | None = None
    trace_policy: TracePolicy | None = None
    timeout: TimeoutPolicy | None = None
    error_handler: Any = None  # runs after the node's final failure (error_handlers.py)

    @cached_property
    def runnable(self) -> Any:
        if _is_runnable(self.action):
            return self.action
        return RunnableCallable(self.action, name=_node_name_or_none(self.action))


class StateGraph(Generic[StateT]):
    """A graph whose nodes read and update a shared state.

    ``state_schema`` is a TypedDict, a dataclass or a pydantic model; each key becomes a
    channel (``Annotated[T, reducer]`` keys combine writes with the reducer, plain keys
    keep the last write). Nodes are functions of the state returning a partial update.
    """

    def __init__(
        self,
        state_schema: type[StateT] | None = None,
        context_schema: Any = None,
        *,
        input_schema: Any = None,
        output_schema: Any = None,
        **kwargs: Any,
    ) -> None:
        context_schema = context_schema or pop_deprecated_argument(
            kwargs, "config_schema", "context_schema", LangGraphDeprecatedSinceV10)
        input_schema = input_schema or pop_deprecated_argument(
            kwargs, "input", "input_schema", LangGraphDeprecatedSinceV05)
        output_schema = output_schema or pop_deprecated_argument(
            kwargs, "output", "output_schema", LangGraphDeprecatedSinceV05)
        if kwargs:
            raise TypeError(f"StateGraph() got unexpected arguments: {sorted(kwargs)}")
        if state_schema is None:
            if input_schema is None or output_schema is None:
                raise ValueError(
                    "StateGraph needs a state schema: StateGraph(MyState), where MyState is "
                    "a TypedDict, dataclass or pydantic model."
                )
            state_schema = input_schema
        _warn_invalid_state_schema(state_schema)
        self.state_schema = state_schema
        self.context_schema = context_schema
        self.input_schema = input_schema or state_schema
        self.output_schema = output_schema or state_schema
        self.channels: dict[str, BaseChannel] = {}
        self.managed: dict[str, str] = {}
        self.schemas: dict[Any, list[str]] = {}
        self.nodes: dict[str, NodeSpec] = {}
        self.edges: set[tuple[str, str]] = set()
        self.waiting_edges: set[tuple[tuple[str, ...], str]] = set()
        self.branches: dict[str, dict[str, Branch]] = {}
        self.compiled = False
        for schema in (state_schema, self.input_schema, self.output_schema):
            self._add_schema(schema)
        for kind, schema in (("input", input_schema), ("output", output_schema)):
            managed = [k for k in self.schemas.get(schema, ()) if k in self.managed]
            if schema is not None and schema is not state_schema and managed:
                raise ValueError(
                    f"Managed values {managed} are not allowed in the {kind} schema "
                    f"{getattr(schema, '__name__', schema)}: declare them only in the state "
                    "schema (the engine computes them; callers never pass or receive them)."
                )

    # -- schemas --------------------------------------------------------------------

    def _add_schema(self, schema: Any, allow_managed: bool = True) -> list[str]:
        if schema in self.schemas:
            return self.schemas[schema]
        if not is_schema_class(schema):
            chan = channel_for(ROOT, schema)
            if isinstance(chan, str):
                raise ValueError("A managed value cannot be the whole state.")
            self.channels.setdefault(ROOT, chan)
            self.schemas[schema] = [ROOT]
            return [ROOT]
        keys = []
        for key, annotation in schema_hints(schema).items():
            chan = channel_for(key, annotation)
            keys.append(key)
            if isinstance(chan, str):
                self.managed[key] = chan
                continue
            existing = self.channels.get(key)
            if existing is None:
                self.channels[key] = chan
            elif type(existing) is not type(chan) and not isinstance(chan, LastValue):
                if isinstance(existing, LastValue):
                    self.channels[key] = chan
                else:
                    raise ValueError(f"Channel '{key}' already exists with a different type")
        self.schemas[schema] = keys
        return keys

    # -- nodes and edges ------------------------------------------------------------

    def add_node(
        self,
        node: Any,
        action: Any = None,
        *,
        defer: bool = False,
        metadata: dict[str, Any] | None = None,
        input_schema: Any = None,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] | None = None,
        cache_policy: CachePolicy[Any] | None = None,
        destinations: Any = None,
        trace_policy: TracePolicy | None = None,
        timeout: Any = None,
        error_handler: Any = None,
        **kwargs: Any,
    ) -> Self:
        """Add a node: ``add_node("name", fn)`` or ``add_node(fn)`` (named after ``fn``).

        Options not given fall back to ``set_node_defaults``; ``timeout`` (a
        ``TimeoutPolicy``, or seconds for a run timeout) applies to async nodes only.
        """
        timeout = TimeoutPolicy.coerce(timeout)
        retry_policy = retry_policy or pop_deprecated_argument(
            kwargs, "retry", "retry_policy", LangGraphDeprecatedSinceV05)
        input_schema = input_schema or pop_deprecated_argument(
            kwargs, "input", "input_schema", LangGraphDeprecatedSinceV05)
        if kwargs:
            raise TypeError(f"add_node() got unexpected arguments: {sorted(kwargs)}")
        if self.compiled:
            logger.warning("Adding a node to a graph that has already been compiled.")
        if not isinstance(node, str):
            action = node
            try:
                node = _get_node_name(action)
            except TypeError as exc:
                raise ValueError(str(exc)) from None
        if action is None:
            raise ValueError(f"Node `{node}` needs a function: add_node('{node}', fn).")
        if isinstance(action, dict):
            # a dict of runnables runs them all on the state: {key: output, ...}
            from langchain_core.runnables import RunnableParallel

            action = RunnableParallel(action)
        if node in self.nodes:
            raise ValueError(f"Node `{node}` already present.")
        if node in (START, END):
            raise ValueError(f"Node `{node}` is reserved.")
        for char in RESERVED_CHARS:
            if char in node:
                raise ValueError(
                    f"'{char}' is a reserved character and is not allowed in node names "
                    f"(got '{node}')."
                )
        warn_if_config_mistyped(action)
        if input_schema is None and not getattr(action, "_threadloom_graph", False):
            # a subgraph node reads the parent's state (it picks its own keys from it);
            # its private keys never become the parent's
            input_schema = first_param_schema(action)
        if input_schema is not None:
            self._add_schema(input_schema)
        if isinstance(retry_policy, RetryPolicy):
            retry_policy = (retry_policy,)
        if cache_policy is not None and not isinstance(cache_policy, CachePolicy):
            raise TypeError(
                f"cache_policy of node `{node}` must be a CachePolicy, got "
                f"{type(cache_policy).__name__}."
            )
        self.nodes[node] = NodeSpec(
            action=action,
            input_schema=input_schema or self.state_schema,
            retry_policy=tuple(retry_policy or ()),
            metadata=metadata or {},
            destinations=destinations,
            defer=defer,
            cache_policy=cache_policy,
            trace_policy=trace_policy,
            timeout=timeout,
            error_handler=error_handler,
        )
        return self

    def set_node_defaults(
        self, *, retry_policy: Any = None, cache_policy: CachePolicy[Any] | None = None,
        timeout: Any = None, error_handler: Any = None,
    ) -> Self:
        """Options for every node that does not set its own (applied at ``compile()``).

        ``error_handler`` runs after any node without its own handler finally fails (see
        ``threadloom.graph.error_handlers``)."""
        defaults = dict(getattr(self, "_node_defaults", {}))
        if retry_policy is not None:
            defaults["retry_policy"] = (
                (retry_policy,) if isinstance(retry_policy, RetryPolicy) else tuple(retry_policy)
            )
        if cache_policy is not None:
            defaults["cache_policy"] = cache_policy
        if timeout is not None:
            defaults["timeout"] = TimeoutPolicy.coerce(timeout)
        if error_handler is not None:
            defaults["error_handler"] = error_handler
        self._node_defaults = defaults
        return self

    def add_edge(self, start_key: str | list[str], end_key: str) -> Self:
        """Run ``end_key`` after ``start_key``; after *all* of them for a list."""
        if isinstance(start_key, str):
            if start_key == END:
                raise ValueError("END cannot be a start node")
            if end_key == START:
                raise ValueError("START cannot be an end node")
            self.edges.add((start_key, end_key))
            return self
        for start in start_key:
            if start == END:
                raise ValueError("END cannot be a start node")
            if start not in self.nodes and start != START:
                raise ValueError(f"Need to add_node `{start}` first")
        if end_key == START:
            raise ValueError("START cannot be an end node")
        if end_key != END and end_key not in self.nodes:
            raise ValueError(f"Need to add_node `{end_key}` first")
        self.waiting_edges.add((tuple(start_key), end_key))
        return self

    def add_conditional_edges(
        self,
        source: str,
        path: Callable[..., Any],
        path_map: dict[Hashable, str] | list[str] | None = None,
    ) -> Self:
        """After ``source``, run the node(s) that ``path(state)`` names (or ``Send``s)."""
        branch = Branch(path, path_map)
        if not branch.is_runnable:
            # the routing function sees the state its own first parameter asks for
            schema = first_param_schema(path)
            if schema is not None:
                self._add_schema(schema)
                branch.input_schema = schema
        existing = self.branches.setdefault(source, {})
        if branch.name in existing:
            raise ValueError(
                f"Branch with name `{branch.name}` already exists for node `{source}`: give "
                "each routing function of a node its own name."
            )
        existing[branch.name] = branch
        return self

    def add_sequence(self, nodes: Sequence[Any]) -> Self:
        """Add nodes (callables or ``(name, callable)``) and chain them with edges."""
        if not nodes:
            raise ValueError("Sequence requires at least one node.")
        previous: str | None = None
        for item in nodes:
            if isinstance(item, tuple) and len(item) == 2:
                name, action = item
            else:
                action = item
                name = getattr(item, "__name__", None) or (
                    item.get_name() if hasattr(item, "get_name") else None
                )
            if name in self.nodes:
                raise ValueError(
                    f"Node names must be unique: node with the name '{name}' already exists."
                )
            self.add_node(name, action)
            if previous is not None:
                self.add_edge(previous, name)
            previous = name
        return self

    def set_entry_point(self, key: str) -> Self:
        return self.add_edge(START, key)

    def set_conditional_entry_point(
        self, path: Callable[..., Any], path_map: Any = None
    ) -> Self:
        return self.add_conditional_edges(START, path, path_map)

    def set_finish_point(self, key: str) -> Self:
        return self.add_edge(key, END)

    # -- compile --------------------------------------------------------------------

    def validate(self, interrupt: Sequence[str] = ()) -> None:
        """Check the graph's wiring; every error names the node at fault."""
        sources = {src for src, _ in self.edges} | set(self.branches)
        for srcs, _ in self.waiting_edges:
            sources.update(srcs)
        for src in sources:
            if src != START and src not in self.nodes:
                raise ValueError(f"Found edge starting at unknown node '{src}'")
        if START not in sources:
            raise ValueError(
                "Graph must have an entrypoint: add at least one edge from START to another "
                "node, e.g. builder.add_edge(START, 'first_node')."
            )
        for _, dst in self.edges:
            if dst != END and dst not in self.nodes:
                raise ValueError(f"Found edge ending at unknown node `{dst}`")
        for src, branches in self.branches.items():
            for branch in branches.values():
                for dst in (branch.ends or {}).values():
                    if dst != END and dst not in self.nodes:
                        raise ValueError(
                            f"At '{src}' node, '{branch.name}' branch found unknown target "
                            f"'{dst}'"
                        )
        for name in interrupt:
            if name != "*" and name not in self.nodes:
                raise ValueError(
                    f"Interrupt node `{name}` not found: interrupt_before/interrupt_after "
                    f"must name nodes of the graph ({sorted(self.nodes)})."
                )

    def compile(
        self,
        checkpointer: Any = None,
        *,
        cache: Any = None,
        store: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        debug: bool = False,
        name: str | None = None,
        hooks: Any = None,
        transformers: Any = None,
    ) -> Any:
        """Check the graph and freeze it into a runnable ``CompiledStateGraph``.

        ``transformers``: stream transformers (classes or ``scope -> transformer``
        factories) every ``stream_events(..., version="v3")`` run of this graph gets,
        before the ones passed to that call.

        ``hooks`` (threadloom's addition) attaches higher layers to this graph only, e.g.
        ``hooks=[ApprovalHooks(clock=...)]``; nodes may carry their own (see
        ``threadloom.graph.graph_hooks``)."""
        from threadloom.graph.compiled import CompiledStateGraph
        from threadloom.graph.graph_hooks import resolve_hooks

        if checkpointer not in (None, True, False) and not isinstance(
            checkpointer, BaseCheckpointSaver
        ):
            raise TypeError(
                "Invalid checkpointer provided. Expected an instance of `BaseCheckpointSaver`, "
                f"`True`, `False`, or `None`. Received {type(checkpointer).__name__}."
            )
        if cache is not None:
            if not isinstance(cache, BaseCache):
                raise TypeError(
                    "Invalid cache provided. Expected an instance of `BaseCache` (e.g. "
                    f"InMemoryCache(), SqliteCache(path=...)), got {type(cache).__name__}."
                )
        interrupt_before = _as_node_list(interrupt_before)
        interrupt_after = _as_node_list(interrupt_after)
        handlers = self._error_handlers()
        self.validate(
            [n for n in (*(interrupt_before if interrupt_before != "*" else ()),
                         *(interrupt_after if interrupt_after != "*" else ()))
             if n not in handlers]
        )
        graph_hooks = resolve_hooks(
            {name: spec.action for name, spec in self.nodes.items()}, hooks
        )
        if transformers is not None:
            normalize_factories(transformers)  # a wrong item fails here, not at the first run
        if isinstance(checkpointer, BaseCheckpointSaver):
            allow_graph_classes(
                checkpointer,
                [self.state_schema, self.input_schema, self.output_schema, *self.schemas],
                self.channels,
            )
        self.compiled = True
        compiled = CompiledStateGraph(
            builder=self,
            program=self._program(),
            checkpointer=checkpointer,
            store=store,
            cache=cache,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            name=name or "LangGraph",
            debug=debug,
            hooks=graph_hooks,
        )
        if transformers is not None:
            compiled.stream_transformers = tuple(transformers)
        return compiled

    def _error_handlers(self) -> dict[str, Any]:
        """Handler node name -> handler function, and each failing node's handler name."""
        default = getattr(self, "_node_defaults", {}).get("error_handler")
        handlers: dict[str, Any] = {}
        for name, spec in self.nodes.items():
            if spec.error_handler is not None:
                handlers[handler_name(name, default=False)] = spec.error_handler
            elif default is not None:
                handlers[DEFAULT_HANDLER] = default
        for hname in handlers:
            if hname in self.nodes:
                raise ValueError(
                    f"Node `{hname}` is reserved for the graph's error handler: rename that "
                    "node or drop the error_handler."
                )
        return handlers

    def _handler_of(self, name: str) -> str | None:
        if self.nodes[name].error_handler is not None:
            return handler_name(name, default=False)
        if getattr(self, "_node_defaults", {}).get("error_handler") is not None:
            return DEFAULT_HANDLER
        return None

    def _program(self) -> Program:
        from threadloom.graph.writers import NodeWriter, input_reader, state_reader

        channels: dict[str, BaseChannel] = {}
        for key, chan in self.channels.items():
            copy = chan.copy()
            copy.key = key
            channels[key] = copy
        channels[START] = EphemeralValue(Any, key=START)
        channels[TASKS] = Topic(Any, key=TASKS)
        for name, spec in self.nodes.items():
            key = branch_channel(name)
            # A deferred node's trigger must outlive the steps other branches still take.
            channels[key] = (
                TriggerFlag(Any, key=key) if spec.defer else EphemeralValue(Any, guard=False,
                                                                            key=key)
            )
        joins: dict[str, list[tuple[str, str]]] = {}
        triggers: dict[str, list[str]] = {name: [branch_channel(name)] for name in self.nodes}
        for srcs, dst in sorted(self.waiting_edges):
            if dst == END:
                continue
            join = f"join:{'+'.join(srcs)}:{dst}"
            channels[join] = NamedBarrierValue(Any, names=srcs, key=join)
            triggers[dst].append(join)
            for src in srcs:
                joins.setdefault(src, []).append((join, src))
        state_keys = frozenset(self.channels)
        edges_from: dict[str, list[str]] = {}
        for src, dst in sorted(self.edges):
            edges_from.setdefault(src, []).append(dst)

        def writer(name: str) -> NodeWriter:
            return NodeWriter(name, graph=self, state_keys=state_keys, joins=joins,
                              edges_from=edges_from)

        nodes: dict[str, PregelNode] = {
            START: PregelNode(
                name=START,
                triggers=(START,),
                bound=NodeCallable(START, _passthrough, inline=True),
                read=input_reader(self),
                write=writer(START),
                hidden=True,
            )
        }
        defaults = getattr(self, "_node_defaults", {})
        for name, spec in self.nodes.items():
            timeout = spec.timeout or defaults.get("timeout")
            if timeout is not None and not runs_async(spec.action):
                raise sync_timeout_error(name)
            nodes[name] = PregelNode(
                name=name,
                triggers=tuple(triggers[name]),
                bound=NodeCallable(name, spec.action),
                read=state_reader(self, spec.input_schema),
                write=writer(name),
                retry_policy=spec.retry_policy or defaults.get("retry_policy", ()),
                metadata=spec.metadata,
                defer=spec.defer,
                cache_policy=spec.cache_policy or defaults.get("cache_policy"),
                timeout=timeout,
                cache_ns=(node_namespace(name, spec.action)
                          if spec.cache_policy or defaults.get("cache_policy") else None),
                error_handler=self._handler_of(name),
                trace_policy=spec.trace_policy,
            )
        for hname, handler in self._error_handlers().items():
            nodes[hname] = PregelNode(
                name=hname,
                triggers=(),  # runs only through the failed task's Send
                bound=NodeCallable(hname, handler_body(
                    hname, handler, state_reader(self, self.state_schema))),
                read=state_reader(self, self.state_schema),
                write=writer(hname),
            )
        output_keys = self.schemas[self.output_schema]
        return Program(
            nodes=nodes,
            channels=channels,
            output_channels=ROOT if output_keys == [ROOT] else tuple(
                k for k in output_keys if k not in self.managed
            ),
            state_keys=state_keys,
            managed=dict(self.managed),
            migrate=TriggerRenames(self.nodes, self.edges),
        )


def _node_name_or_none(node: Any) -> str | None:
    try:
        return _get_node_name(node)
    except TypeError:
        return None


def _get_node_name(node: Any) -> str:
    """The name a node gets when added without one: the function's, the runnable's or
    (for a callable object) its class's."""
    name = getattr(node, "name", None) if hasattr(node, "get_name") else None
    if isinstance(name, str) and name:
        return name
    name = getattr(node, "__name__", None)
    if isinstance(name, str):
        return name
    if hasattr(node, "get_name"):
        got: str = node.get_name()
        return got
    if callable(node):
        return type(node).__name__
    raise TypeError(f"Cannot infer a node name from {node!r}: use add_node('name', fn).")


def _is_field_channel(annotation: Any) -> BaseChannel | None:
    """The channel an ``Annotated[T, ...]`` key names (a channel class or instance among
    its extras), else None. A class is instantiated for ``T``; an instance is returned
    as given."""
    if get_origin(annotation) is not Annotated:
        return None
    base, *extras = get_args(annotation)
    for extra in reversed(extras):
        if isinstance(extra, BaseChannel):
            return extra
        if isinstance(extra, type) and issubclass(extra, BaseChannel):
            return extra(base)
    return None


def _warn_invalid_state_schema(schema: Any) -> None:
    """Warn when a state schema is a value (a dict, a list, a model instance) rather than a
    type: each key of the state would then be missed."""
    if isinstance(schema, type) or get_origin(schema) is not None:
        return
    warnings.warn(
        f"Invalid state_schema: {schema!r}. Expected a type or Annotated[type, reducer]. "
        "Please provide a valid schema (a TypedDict, dataclass or pydantic model class) "
        "to ensure correct updates.",
        stacklevel=2,
    )


def _passthrough(value: Any) -> Any:
    return value


def _as_node_list(value: Any) -> Any:
    if value is None:
        return ()
    if value == "*":
        return "*"
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _get_channel(name: str, annotation: Any) -> BaseChannel | str:
    """The channel (or managed value name) a state key's annotation asks for; LangGraph's
    private name, kept for code that builds channels from annotations directly."""
    return channel_for(name, annotation)


def values_of(channels: dict[str, BaseChannel], keys: Sequence[str]) -> dict[str, Any]:
    """The available values of ``keys`` (missing keys are absent, not None)."""
    out = {}
    for key in keys:
        chan = channels.get(key)
        if chan is not None and chan.value is not MISSING:
            out[key] = chan.value
    return out


def __getattr__(name: str) -> Any:
    # ``from langgraph.graph.state import CompiledStateGraph`` (it lives in .compiled,
    # which imports this module)
    if name == "CompiledStateGraph":
        from threadloom.graph.compiled import CompiledStateGraph

        return CompiledStateGraph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
