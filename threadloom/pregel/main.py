"""``Pregel``: a graph built directly from channels and nodes, without ``StateGraph``.

Each node subscribes to channels (a write to one of them wakes it in the next
superstep), reads channels to build its input, runs its function(s) and writes the
result to channels. ``NodeBuilder`` assembles such a node::

    node = NodeBuilder().subscribe_only("input").do(add_one).write_to("output")
    app = Pregel(nodes={"one": node},
                 channels={"input": LastValue(int), "output": LastValue(int)},
                 input_channels="input", output_channels="output")
    app.invoke(2)  # 3

A ``Pregel`` runs on the same engine as a compiled ``StateGraph`` (it *is* one to the
engine: a ``Program`` of nodes and channels), so checkpointers, streaming, interrupts
and ``get_state``/``update_state`` work the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import Runnable

from threadloom.channels import MISSING, BaseChannel, EphemeralValue, Topic
from threadloom.constants import START, TASKS
from threadloom.engine.node import NodeCallable
from threadloom.engine.program import PregelNode, Program
from threadloom.engine.runnable import RunnableCallable, RunnableSeq
from threadloom.engine.timeouts import runs_async, sync_timeout_error
from threadloom.graph.compiled import CompiledStateGraph
from threadloom.graph.state import values_of
from threadloom.stream.mux import normalize_factories
from threadloom.types import Command, RetryPolicy, Send, TimeoutPolicy
from threadloom.typing import ContextT, InputT, OutputT, StateT
from threadloom.warnings import LangGraphDeprecatedSinceV10, warn_config_schema_method

__all__ = ["NodeBuilder", "Pregel"]

# LangGraph's private name for ``threadloom.stream.mux.normalize_factories``, importable
# from here for the code that uses that name.
_normalize_stream_transformer_factories = normalize_factories


# -- building nodes --------------------------------------------------------------------


@dataclass
class _NodeSpec:
    """What ``NodeBuilder.build()`` returns: a node in channel terms."""

    triggers: list[str]
    channels: str | list[str]  # one channel: its value is the input; a list: a dict
    steps: list[Any]
    writers: list[tuple[str, Any]]  # (channel, how): how is _SELF, a callable or a value
    retry_policy: list[RetryPolicy] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    timeout: TimeoutPolicy | None = None


class _Self:
    def __repr__(self) -> str:
        return "<node output>"


_SELF = _Self()


class NodeBuilder:
    """Fluent builder of a ``Pregel`` node: what wakes it, what it reads, what it runs,
    where its output goes."""

    def __init__(self) -> None:
        self._triggers: list[str] = []
        self._channels: str | list[str] = []
        self._steps: list[Any] = []
        self._writers: list[tuple[str, Any]] = []
        self._retry: list[RetryPolicy] = []
        self._metadata: dict[str, Any] = {}
        self._tags: list[str] = []
        self._timeout: TimeoutPolicy | None = None

    def subscribe_only(self, channel: str) -> NodeBuilder:
        """Wake on ``channel`` and take its value (not a dict) as the node's input."""
        if self._channels:
            raise ValueError(
                "subscribe_only() must be the only channel the node reads: call it "
                "before read_from() and instead of subscribe_to()."
            )
        self._channels = channel
        self._triggers.append(channel)
        return self

    def subscribe_to(self, *channels: str, read: bool = True) -> NodeBuilder:
        """Wake on any of ``channels``; with ``read`` they are keys of the input dict."""
        if isinstance(self._channels, str):
            raise ValueError("subscribe_to() cannot follow subscribe_only().")
        for ch in channels:
            if ch not in self._triggers:
                self._triggers.append(ch)
            if read and ch not in self._channels:
                self._channels.append(ch)
        return self

    def read_from(self, *channels: str) -> NodeBuilder:
        """Also read ``channels`` into the input dict (without being woken by them)."""
        if isinstance(self._channels, str):
            raise ValueError("read_from() cannot follow subscribe_only(): use subscribe_to().")
        for ch in channels:
            if ch not in self._channels:
                self._channels.append(ch)
        return self

    def do(self, action: Any) -> NodeBuilder:
        """Run ``action`` (a function or Runnable) on the input; several ``do`` chain."""
        self._steps.append(action)
        return self

    def write_to(self, *channels: str, **mapped: Any) -> NodeBuilder:
        """Write the output to ``channels``; ``name=value`` writes a fixed value, or
        ``name=fn`` writes ``fn(output)``."""
        for ch in channels:
            self._writers.append((ch, _SELF))
        for ch, how in mapped.items():
            self._writers.append((ch, how))
        return self

    def meta(self, *tags: str, **metadata: Any) -> NodeBuilder:
        self._tags.extend(tags)
        self._metadata.update(metadata)
        return self

    def add_retry_policies(self, *policies: RetryPolicy) -> NodeBuilder:
        self._retry.extend(policies)
        return self

    def set_timeout(self, timeout: Any) -> NodeBuilder:
        """Limit each attempt of the node (a ``TimeoutPolicy``, or seconds of run time);
        async nodes only."""
        self._timeout = TimeoutPolicy.coerce(timeout)
        return self

    def build(self) -> _NodeSpec:
        if not self._triggers:
            raise ValueError("A node must subscribe to at least one channel.")
        return _NodeSpec(
            triggers=list(self._triggers),
            channels=self._channels if isinstance(self._channels, str)
            else list(self._channels),
            steps=list(self._steps),
            writers=list(self._writers),
            retry_policy=list(self._retry),
            metadata=dict(self._metadata),
            tags=list(self._tags),
            timeout=self._timeout,
        )


def _identity(value: Any) -> Any:
    return value


def _bound(steps: list[Any]) -> Any:
    if not steps:
        return _identity
    if len(steps) == 1:
        return steps[0]
    return RunnableSeq(*[
        s if isinstance(s, Runnable) else RunnableCallable(s, trace=False) for s in steps
    ])


def _reader(channels: str | list[str]) -> Callable[[Any, Any], Any]:
    if isinstance(channels, str):
        key = channels

        def read_one(chans: dict[str, BaseChannel], managed: Any) -> Any:
            value = chans[key].value
            return None if value is MISSING else value

        return read_one
    keys = tuple(channels)

    def read_many(chans: dict[str, BaseChannel], managed: Any) -> Any:
        out = {}
        for k in keys:
            value = chans[k].value
            if value is not MISSING:
                out[k] = value
        return out

    return read_many


class _NodeWriter:
    """A Pregel node's output -> channel writes (``Send``s go to the task channel)."""

    def __init__(self, writers: list[tuple[str, Any]]) -> None:
        self.writers = writers

    def __call__(self, task: Any, result: Any) -> list[tuple[str, Any]]:
        writes: list[tuple[str, Any]] = []
        for ch, how in self.writers:
            if how is _SELF:
                value = result
            elif callable(how):
                value = how(result)
            else:
                value = how
            if isinstance(value, Send):
                writes.append((TASKS, value))
            else:
                writes.append((ch, value))
        return writes


class _InputWriter:
    """The hidden input node: the run's input -> writes to the input channels."""

    def __init__(self, input_channels: str | Sequence[str]) -> None:
        self.input_channels = input_channels

    def _writes(self, value: Any) -> list[tuple[str, Any]]:
        if isinstance(self.input_channels, str):
            return [(self.input_channels, value)]
        if not isinstance(value, Mapping):
            raise TypeError(
                f"Expected the input to be a dict with keys among {list(self.input_channels)}"
                f", got {value!r}."
            )
        return [(k, v) for k, v in value.items() if k in self.input_channels]

    def __call__(self, task: Any, result: Any) -> list[tuple[str, Any]]:
        return self._writes(result)

    def command_input(self, command: Command[Any]) -> list[tuple[str, Any]]:
        if command.update is None:
            return []
        update = command.update
        if isinstance(update, Mapping):
            return list(update.items())
        return [tuple(u) for u in update]


# -- the graph -------------------------------------------------------------------------


@dataclass
class _Spec:
    """The few facts the run machinery asks a builder for."""

    input_schema: Any = None
    output_schema: Any = None
    context_schema: Any = None
    nodes: dict[str, Any] = field(default_factory=dict)


class Pregel(CompiledStateGraph[StateT, ContextT, InputT, OutputT]):
    """A graph of channel-subscribed nodes (see the module docstring)."""

    # its input goes straight to its input channels: no START node that update_state
    # could name as the last writer
    _input_is_node = False

    stream_mode = "values"
    # update_state(as_node="__input__") writes the input channels at once: a Pregel
    # graph has no START step of its own (its START node only stands for the mapping)
    _input_writes_channels = True

    def __init__(
        self,
        *,
        nodes: Mapping[str, Any],
        channels: Mapping[str, BaseChannel] | None = None,
        input_channels: str | Sequence[str],
        output_channels: str | Sequence[str],
        stream_channels: str | Sequence[str] | None = None,
        stream_mode: str = "values",
        interrupt_before_nodes: Any = (),
        interrupt_after_nodes: Any = (),
        checkpointer: Any = None,
        store: Any = None,
        cache: Any = None,
        retry_policy: RetryPolicy | Sequence[RetryPolicy] = (),
        context_schema: Any = None,
        config_type: Any = None,
        name: str = "LangGraph",
        debug: bool = False,
        auto_validate: bool = True,
        **kwargs: Any,
    ) -> None:
        if config_type is not None:
            warnings.warn(
                "`config_type` is deprecated and will be removed. Please use "
                "`context_schema` instead.",
                LangGraphDeprecatedSinceV10,
                stacklevel=2,
            )
            if context_schema is None:
                context_schema = config_type
        specs = {n: (s.build() if isinstance(s, NodeBuilder) else s) for n, s in nodes.items()}
        chans: dict[str, BaseChannel] = {}
        for key, chan in (channels or {}).items():
            copy = chan.copy()
            copy.key = key
            chans[key] = copy
        if auto_validate:
            _validate(specs, chans, input_channels, output_channels)
        for node_name, spec in specs.items():
            if spec.timeout is not None and not all(runs_async(s) for s in spec.steps):
                raise sync_timeout_error(node_name)
        policies = [retry_policy] if isinstance(retry_policy, RetryPolicy) else list(
            retry_policy
        )
        chans[START] = EphemeralValue(Any, key=START)
        chans.setdefault(TASKS, Topic(Any, key=TASKS))
        program_nodes: dict[str, PregelNode] = {
            START: PregelNode(
                name=START,
                triggers=(START,),
                bound=NodeCallable(START, _identity, inline=True),
                read=lambda c, m: c[START].value,
                write=_InputWriter(input_channels),
                hidden=True,
            )
        }
        for node_name, spec in specs.items():
            program_nodes[node_name] = PregelNode(
                name=node_name,
                triggers=tuple(spec.triggers),
                bound=NodeCallable(node_name, _bound(spec.steps)),
                read=_reader(spec.channels),
                write=_NodeWriter(spec.writers),
                retry_policy=spec.retry_policy or policies,
                metadata=spec.metadata,
                timeout=spec.timeout,
            )
        program = Program(
            nodes=program_nodes,
            channels=chans,
            output_channels=output_channels if isinstance(output_channels, str)
            else tuple(output_channels),
            state_keys=frozenset(k for k in chans if k not in (START, TASKS)),
            managed={},
            values_on_write=True,
            direct_input=_InputWriter(input_channels)._writes,
        )
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.stream_channels = stream_channels
        self.stream_mode = stream_mode
        self.cache = cache
        self.retry_policy = policies
        self.specs = specs
        super().__init__(
            builder=_Spec(context_schema=context_schema,
                          nodes={n: _RunnableRef(_bound(s.steps)) for n, s in specs.items()}),
            program=program,
            checkpointer=checkpointer,
            store=store,
            interrupt_before=interrupt_before_nodes,
            interrupt_after=interrupt_after_nodes,
            name=name,
            debug=debug,
        )
        self.nodes = {n: node for n, node in program_nodes.items() if n != START}

    def _values_stream(self) -> tuple[Any, Any]:
        """Named ``stream_channels`` are what the ``values`` stream shows (as a dict, or one
        value for a single channel name), emitted whenever a step writes one of them."""
        keys = self.stream_channels
        if keys is None:
            return None, None
        return keys, lambda channels: self._output(channels, keys)

    def _result(self, run: Any, output_keys: Any, version: str) -> Any:
        if output_keys is None:
            return super()._result(run, None, version)
        channels = run.loop.channels
        if isinstance(output_keys, str):
            chan = channels[output_keys]
            return chan.value if chan.is_available() else None
        return values_of(channels, output_keys)

    def _snapshot_values(self, channels: dict[str, Any]) -> Any:
        """A snapshot shows the stream channels: by default every channel, not only the
        output ones."""
        keys = self.stream_channels
        if isinstance(keys, str):
            chan = channels[keys]
            return chan.value if chan.is_available() else None
        if keys is None:
            keys = [k for k in self.program.channels if not k.startswith("__")]
        return values_of(channels, keys)

    # -- schemas ------------------------------------------------------------------------

    def _channel_type(self, key: str, update: bool) -> Any:
        chan = self.program.channels.get(key)
        if chan is None:
            return Any
        return chan.UpdateType if update else chan.ValueType

    @property
    def InputType(self) -> Any:  # noqa: N802 - Runnable API
        if isinstance(self.input_channels, str):
            return self._channel_type(self.input_channels, update=True)
        return dict

    @property
    def OutputType(self) -> Any:  # noqa: N802 - Runnable API
        if isinstance(self.output_channels, str):
            return self._channel_type(self.output_channels, update=False)
        return dict

    def get_input_schema(self, config: Any = None) -> Any:
        return self._schema("Input", self.input_channels, update=True)

    def get_output_schema(self, config: Any = None) -> Any:
        return self._schema("Output", self.output_channels, update=False)

    def _schema(self, suffix: str, keys: str | Sequence[str], update: bool) -> Any:
        from langchain_core.utils.pydantic import create_model_v2

        if isinstance(keys, str):
            return create_model_v2(self.get_name(suffix),
                                   root=self._channel_type(keys, update))
        return create_model_v2(
            self.get_name(suffix),
            field_definitions={k: (self._channel_type(k, update), None) for k in keys},
        )

    def get_context_jsonschema(self, config: Any = None) -> Any:
        if self.context_schema is None:
            return None
        from pydantic import TypeAdapter

        return TypeAdapter(self.context_schema).json_schema()

    def config_schema(self, *args: Any, **kwargs: Any) -> Any:
        warn_config_schema_method()
        return super().config_schema(*args, **kwargs)

    def get_graph(self, config: Any = None, *, xray: int | bool = False) -> Any:
        """The nodes and the channels between them as a langchain_core ``Graph``."""
        from langchain_core.runnables.graph import Graph

        graph = Graph()
        added = {name: graph.add_node(None, name) for name in self.specs}
        writers = {name: {ch for ch, _ in spec.writers} for name, spec in self.specs.items()}
        for dst, spec in self.specs.items():
            for src, chans in writers.items():
                if chans & set(spec.triggers):
                    graph.add_edge(added[src], added[dst])
        return graph

    def __repr__(self) -> str:
        return f"Pregel(name={self.name!r}, nodes={list(self.specs)!r})"


@dataclass
class _RunnableRef:
    runnable: Any


def _validate(
    specs: Mapping[str, _NodeSpec],
    channels: Mapping[str, BaseChannel],
    input_channels: str | Sequence[str],
    output_channels: str | Sequence[str],
) -> None:
    """Clear errors for a graph that could never run as written."""
    for name in specs:
        if name in (START, "__end__") or name.startswith("__"):
            raise ValueError(f"Node name '{name}' is reserved.")
    subscribed = {ch for spec in specs.values() for ch in spec.triggers}
    inputs = [input_channels] if isinstance(input_channels, str) else list(input_channels)
    if not any(ch in subscribed for ch in inputs):
        raise ValueError(
            f"Input channel(s) {inputs} are not subscribed to by any node: nothing would "
            "run. Subscribe a node to one of them (NodeBuilder().subscribe_only(...))."
        )
    for name, spec in specs.items():
        wanted = [spec.channels] if isinstance(spec.channels, str) else spec.channels
        for ch in [*spec.triggers, *wanted]:
            if ch not in channels:
                raise ValueError(f"Node '{name}' reads channel '{ch}', which is not defined.")
        for ch, _ in spec.writers:
            if ch not in channels and ch != TASKS:
                raise ValueError(f"Node '{name}' writes channel '{ch}', which is not defined.")
    outputs = [output_channels] if isinstance(output_channels, str) else list(output_channels)
    for ch in [*inputs, *outputs]:
        if ch not in channels:
            raise ValueError(f"Channel '{ch}' is not defined in channels.")
