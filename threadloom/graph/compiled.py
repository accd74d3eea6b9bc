"""``CompiledStateGraph``: run a graph, stream it, and read or edit a thread's state.

It is a langchain_core ``Runnable`` (``batch``, ``with_config``, ``astream_events`` and
composition work), but runs the engine directly: callbacks are only called when the
caller passed some, and the per-step work never goes through the Runnable machinery.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import queue
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Generic, Literal, Self, cast

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import merge_configs

from threadloom._context import current_task
from threadloom._schema import io_model, is_schema_class, is_typeddict, make_coercer
from threadloom.callbacks import GraphInterruptEvent, GraphResumeEvent, adispatch, dispatch
from threadloom.checkpoint.base import BaseCheckpointSaver
from threadloom.constants import (
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_SCOPE,
    CONFIG_KEY_TASK,
    INTERRUPT,
)
from threadloom.engine.drivers import WakeQueue, adrive, drive, thread_safe_put
from threadloom.engine.loop import Loop
from threadloom.engine.message_stream import (
    CONFIG_KEY_STREAM_MESSAGES_V2,
    StreamMessagesHandler,
    StreamMessagesHandlerV2,
)
from threadloom.engine.scope import LIVE_MODES, Scope, ns_tuple
from threadloom.engine.subgraphs import node_subgraph
from threadloom.engine.task import ResumeBox
from threadloom.engine.tools import StreamToolCallHandler
from threadloom.graph import thread_state as state_ops
from threadloom.graph.draw import draw_graph
from threadloom.graph.state import StateGraph, values_of
from threadloom.runtime import server_info_from
from threadloom.stream.runner import open_run_stream
from threadloom.types import Command, GraphOutput, StateSnapshot
from threadloom.typing import ContextT, InputT, OutputT, StateT
from threadloom.warnings import LangGraphDeprecatedSinceV10, warn_config_schema_method

DEFAULT_RECURSION_LIMIT = int(os.environ.get("THREADLOOM_DEFAULT_RECURSION_LIMIT", "10007"))
_MODES = frozenset(
    {"values", "updates", "custom", "messages", "debug", "tasks", "checkpoints", "tools"}
)


class _Run:
    """Everything one invocation set up: the loop, its saver, how to report the end."""

    __slots__ = ("loop", "saver", "manager", "single", "subgraphs", "coerce_values", "root_ns",
                 "modes", "printed")

    def __init__(self, loop: Loop, saver: Any, manager: Any) -> None:
        self.loop = loop
        self.saver = saver
        self.manager = manager
        self.single: str | None = None
        self.subgraphs = False
        # print_mode / debug=True: the modes printed; then only ``modes`` are yielded
        self.printed: frozenset[str] = frozenset()
        self.modes: frozenset[str] = frozenset()
        # set for stream(version="v2"): parts are dicts, values coerced by this function
        self.coerce_values: Any = None
        # the namespace the run's own events carry (a config's checkpoint_ns, usually '')
        self.root_ns = ns_tuple(getattr(loop, "ns", "") or "")

    def format(self, event: tuple[tuple[str, ...], str, Any]) -> Any:
        ns, mode, payload = event
        if self.coerce_values is not None:
            return _stream_part(ns, mode, payload, self.coerce_values)
        if self.single is not None:
            return (ns, payload) if self.subgraphs else payload
        return (ns, mode, payload) if self.subgraphs else (mode, payload)

    def keep(self, event: tuple[tuple[str, ...], str, Any]) -> bool:
        # without subgraphs=True, events of subgraphs (messages included) stay out
        if not (self.subgraphs or not event[0] or event[0] == self.root_ns):
            return False
        if self.printed:
            if event[1] in self.printed:
                _print_event(event, self.subgraphs)
            return event[1] in self.modes
        return True

    def finish(self, error: BaseException | None = None) -> None:
        if self.manager is None:
            return
        if error is not None:
            self.manager.on_chain_error(error)
        else:
            self.manager.on_chain_end(self.loop.output())


class CompiledStateGraph(Runnable[Any, Any], Generic[StateT, ContextT, InputT, OutputT]):
    """A ``StateGraph`` ready to run. Create it with ``StateGraph.compile()``.

    Its type parameters (state, context, input, output) serve annotations only, as in
    ``CompiledStateGraph[MyState, MyContext, Any, Any]``; ``Pregel[MyState]`` likewise.
    """

    _threadloom_graph = True
    stream_mode = "updates"
    # Stream events of running tasks reach the caller at once, not when the step ends
    # (the functional API's entrypoint: its called tasks finish while it runs).
    _live_updates = False
    # compile(transformers=...): stream transformers of every v3 event stream of this graph
    stream_transformers: tuple[Any, ...] = ()
    name: str  # (Runnable's may be None; a compiled graph always has one)
    # Default run config set by ``with_config``; the caller's config is merged over it.
    config: dict[str, Any] | None = None
    # Seconds a superstep may take (set it on the compiled graph, as in LangGraph): when its
    # tasks are not all done by then the run raises TimeoutError (async runs cancel them).
    step_timeout: float | None = None

    def __init__(
        self,
        *,
        builder: StateGraph[Any],
        program: Any,
        checkpointer: Any,
        store: Any,
        interrupt_before: Any,
        interrupt_after: Any,
        name: str,
        debug: bool = False,
        cache: Any = None,
        hooks: tuple[Any, ...] = (),
    ) -> None:
        self.builder = builder
        self.program = program
        self.checkpointer = checkpointer
        self.store = store
        self.cache = cache
        self.interrupt_before_nodes = interrupt_before
        self.interrupt_after_nodes = interrupt_after
        self.name = name
        self.debug = debug
        # Higher layers attached to this graph (threadloom.graph.graph_hooks); () for most.
        self.hooks = tuple(hooks)
        self.nodes = program.nodes
        self.channels = program.channels
        self._output_keys = program.output_channels
        # get_state(...).values shows the whole state (every state key, in schema order),
        # whatever the output schema keeps
        state = [k for k in program.channels if k in program.state_keys
                 and k not in program.managed]
        self._snapshot_keys: Any = (
            state[0] if len(state) == 1 and state[0] == program.output_channels else state)

    # -- Runnable plumbing ----------------------------------------------------------

    def copy(self, **updates: Any) -> Self:
        """A shallow copy of this compiled graph with ``updates`` applied to its attributes
        (``name``, ``config``, ``checkpointer``, ...); the original is left unchanged."""
        clone = copy.copy(self)
        for attr, value in updates.items():
            if not hasattr(self, attr):
                raise TypeError(f"copy(): {type(self).__name__} has no attribute {attr!r}")
            setattr(clone, attr, value)
        return clone

    def with_config(
        self, config: RunnableConfig | dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        """A copy of this graph (same class, same ``name``) whose runs start from ``config``
        (and ``kwargs``) merged into its default config; a run's own config wins."""
        return self.copy(config=merge_configs(_config(self.config), _config(config),
                                              _config(kwargs)))

    def _with_defaults(
        self, config: RunnableConfig | dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The config a run uses: this graph's default config (``with_config``) under the
        caller's. ``None`` stays ``None`` (inherit the enclosing task's config) when there is
        no default. Called from inside a task without a config of its own, the default
        goes over the enclosing task's config: a graph bound to ``lc_agent_name`` (LangChain's
        ``create_agent(name=...)``) keeps its own name when another agent's tool runs it."""
        if not self.config:
            return _run_config(config)
        if config is None:
            task = current_task.get()
            outer = task.config if task is not None else None
            return _run_config(merge_configs(_config(outer), _config(self.config)))
        return _run_config(merge_configs(_config(self.config), _config(config)))

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        base = name or self.name
        return f"{base}{suffix}" if suffix else base

    @property
    def context_schema(self) -> Any:
        """The run-scoped context's schema the builder was given (or None)."""
        return self.builder.context_schema

    def get_context_jsonschema(self, config: Any = None) -> dict[str, Any] | None:
        """The context schema as JSON Schema (None when the graph has none)."""
        schema = self.builder.context_schema
        if schema is None:
            return None
        from pydantic import TypeAdapter

        return TypeAdapter(schema).json_schema()

    def config_schema(self, *, include: Any = None) -> Any:
        warn_config_schema_method()
        return super().config_schema(include=include)

    def get_config_jsonschema(self, *, include: Any = None) -> dict[str, Any]:
        warnings.warn(
            "`get_config_jsonschema` is deprecated. Use `get_context_jsonschema` instead.",
            LangGraphDeprecatedSinceV10,
            stacklevel=2,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
            schema: dict[str, Any] = self.config_schema(include=include).model_json_schema()
            return schema

    @property
    def InputType(self) -> Any:  # noqa: N802 - Runnable API
        return self.builder.input_schema

    @property
    def OutputType(self) -> Any:  # noqa: N802 - Runnable API
        return self.builder.output_schema

    def get_input_schema(self, config: Any = None) -> Any:
        """The input schema as a pydantic model (``get_input_jsonschema()`` reads it)."""
        model = io_model(self.builder.input_schema, self.builder.managed)
        return model if model is not None else super().get_input_schema(config)

    def get_output_schema(self, config: Any = None) -> Any:
        model = io_model(self.builder.output_schema, self.builder.managed)
        return model if model is not None else super().get_output_schema(config)

    def get_graph(self, config: Any = None, *, xray: int | bool = False) -> Any:
        """The graph as a langchain_core ``Graph`` (``.draw_mermaid()``, ``.draw_ascii()``)."""
        return draw_graph(self.builder, xray=xray, interrupt_before=self.interrupt_before_nodes,
                          interrupt_after=self.interrupt_after_nodes)

    # -- the node cache -------------------------------------------------------------

    def _cache_namespaces(self, nodes: Sequence[str] | None) -> list[tuple[str, ...]]:
        if self.cache is None:
            raise ValueError(
                "No cache is set for this graph, so there is nothing to clear: compile it "
                "with a cache, e.g. builder.compile(cache=InMemoryCache())."
            )
        if nodes is not None:
            unknown = sorted(set(nodes) - set(self.program.nodes))
            if unknown:
                raise ValueError(f"clear_cache(): unknown nodes {unknown}.")
        return [
            node.cache_ns
            for name, node in self.program.nodes.items()
            if node.cache_ns is not None and (nodes is None or name in nodes)
        ]

    def clear_cache(self, nodes: Sequence[str] | None = None) -> None:
        """Forget the cached results of ``nodes`` (all nodes with a ``CachePolicy`` when
        ``None``), so they run again the next time they are reached."""
        namespaces = self._cache_namespaces(nodes)
        if namespaces:
            self.cache.clear(namespaces)

    async def aclear_cache(self, nodes: Sequence[str] | None = None) -> None:
        """The async twin of :meth:`clear_cache`."""
        namespaces = self._cache_namespaces(nodes)
        if namespaces:
            await self.cache.aclear(namespaces)

    # -- setting up a run -----------------------------------------------------------

    def _migrate_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rename, in place, the trigger channels of a checkpoint written by LangGraph
        before its 0.4 format to the ``branch:to:<node>`` channels this graph uses (see
        ``threadloom.graph.migrate``)."""
        if self.program.migrate is not None:
            self.program.migrate(checkpoint)

    def _saver_for(self, config: dict[str, Any]) -> tuple[Any, bool]:
        """(the saver to use, whether this graph keeps its own persistent namespace)."""
        cp = self.checkpointer
        if isinstance(cp, BaseCheckpointSaver):
            return cp, False
        parent = (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
        if cp is False:
            return None, False
        return parent, cp is True

    def _lock_target(self, config: dict[str, Any] | None) -> tuple[Any, str] | None:
        """(saver, thread id) of a root run that must hold its thread, else None."""
        if config is None:
            task = current_task.get()
            config = task.config if task is not None else {}
        conf = config.get("configurable") or {}
        if conf.get(CONFIG_KEY_TASK) is not None:  # a subgraph: the parent holds it
            return None
        saver, _ = self._saver_for(config)
        thread_id = conf.get("thread_id")
        if saver is None or thread_id is None:
            return None
        return saver, str(thread_id)

    def _thread_lock(self, config: dict[str, Any] | None) -> Any:
        """One run (or state edit) per thread at a time; see ``lock_thread``."""
        target = self._lock_target(config)
        if target is None:
            return contextlib.nullcontext()
        lock = getattr(target[0], "lock_thread", None)
        return lock(target[1]) if lock is not None else contextlib.nullcontext()

    def _athread_lock(self, config: dict[str, Any] | None) -> Any:
        target = self._lock_target(config)
        if target is None:
            return contextlib.nullcontext()
        lock = getattr(target[0], "alock_thread", None)
        return lock(target[1]) if lock is not None else contextlib.nullcontext()

    def _prepare(
        self,
        input: Any,
        config: dict[str, Any] | None,
        *,
        modes: frozenset[str],
        sink: Any,
        context: Any,
        interrupt_before: Any,
        interrupt_after: Any,
        durability: str | None,
        control: Any = None,
        output_keys: Any = None,
    ) -> _Run:
        output_keys = self._checked_output_keys(output_keys)
        if config is None:
            task = current_task.get()
            config = dict(task.config) if task is not None else {}
        conf = config.get("configurable") or {}
        parent_scope: Scope | None = conf.get(CONFIG_KEY_SCOPE)
        nested = conf.get(CONFIG_KEY_TASK) is not None and parent_scope is not None
        saver, own_ns = self._saver_for(config)
        if conf.get("thread_id") is not None and not isinstance(conf["thread_id"], str):
            config = {**config, "configurable": {**conf, "thread_id": str(conf["thread_id"])}}
            conf = config["configurable"]
        persistent_ns = None
        # several graphs invoked by one task: the first runs in the task's namespace,
        # later ones in "<ns>|1", "<ns>|2"... (call order), so each has its own
        position = 0
        caller = current_task.get() if nested else None
        if caller is not None and caller.ns == conf.get("checkpoint_ns"):
            position = caller.stateful_calls
            caller.stateful_calls += 1
        if nested and own_ns:
            # a checkpointer=True graph: the stable namespace (without task ids)
            persistent_ns = "|".join(
                part.split(":", 1)[0] for part in conf.get("checkpoint_ns", "").split("|")
            )
            if position:
                persistent_ns = f"{persistent_ns}|{position}"
        elif position:
            conf = {**conf, "checkpoint_ns": f"{conf['checkpoint_ns']}|{position}"}
            config = {**config, "configurable": conf}
        outer = conf.get(CONFIG_KEY_RUNTIME)  # a runtime (or look-alike) set by the caller
        if control is None:
            control = getattr(outer, "control", None)
        if nested:
            assert parent_scope is not None
            # a node streaming this graph (rather than invoking it) gets its events too
            own = sink is not None and bool(modes)
            both, own_sink = _nested_sinks(parent_scope, conf, persistent_ns, modes, sink)
            scope = Scope(
                modes=parent_scope.modes | modes if own else parent_scope.modes,
                sink=both if own else parent_scope.sink,
                resume_box=parent_scope.resume_box,
                store=self.store if self.store is not None else parent_scope.store,
                context=parent_scope.context if context is None else context,
                checkpointer=saver,
                ns=persistent_ns if persistent_ns is not None else conf.get("checkpoint_ns", ""),
                nested=True,
                cache=self.cache if self.cache is not None else parent_scope.cache,
                control=control if control is not None else parent_scope.control,
                server_info=parent_scope.server_info,
            )
            scope.callbacks = parent_scope.callbacks
            # one run, one set of streamed message ids: a parent does not stream again
            # the messages its subgraph already streamed
            scope.message_ids = parent_scope.message_ids
            scope.replay = parent_scope.replay
            scope.durability = parent_scope.durability
            scope.resuming = parent_scope.resuming
            manager = None
            if own and modes & {"messages", "tools"}:
                manager = self._callbacks(config, scope, input, sink=both)
        else:
            resume = input.resume if isinstance(input, Command) else None
            scope = Scope(
                modes=modes,
                sink=sink,
                resume_box=ResumeBox(resume, has_value=resume is not None),
                store=self.store if self.store is not None else getattr(outer, "store", None),
                context=self._coerce_context(
                    getattr(outer, "context", None) if context is None else context
                ),
                checkpointer=saver,
                ns="",
                nested=False,
                cache=self.cache,
                control=control,
                server_info=server_info_from(conf),
            )
            manager = self._callbacks(config, scope, input)
            scope.live = scope.live or self._live_updates
            scope.durability = durability
        limit = config.get("recursion_limit", DEFAULT_RECURSION_LIMIT)
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"recursion_limit must be a positive integer, got {limit!r}.")
        before = self.interrupt_before_nodes if interrupt_before is None else interrupt_before
        after = self.interrupt_after_nodes if interrupt_after is None else interrupt_after
        loop = Loop(
            self.program,
            input,
            config,
            scope,
            checkpointer=saver,
            interrupt_before=_node_list(before),
            interrupt_after=_node_list(after),
            durability=durability or scope.durability or "async",
            recursion_limit=limit,
            input_writes=self._input_writes,
            output=self._output,
            graph_name=self.name,
            out=deque(),
            persistent_ns=persistent_ns,
        )
        loop.step_timeout = self.step_timeout
        loop.values_keys, loop.values_fn = self._values_stream()
        if output_keys is not None:
            # values events show these keys, after the steps that wrote one of them;
            # updates show the writes to them
            loop.values_keys = loop.update_keys = output_keys
            loop.values_fn = lambda channels: self._output(channels, output_keys)
        return _Run(loop, saver, manager)

    def _checked_output_keys(self, keys: Any) -> Any:
        """``output_keys`` as given (a channel name or names), once each is known."""
        if keys is None:
            return None
        names = [keys] if isinstance(keys, str) else list(keys)
        for name in names:
            if not isinstance(name, str) or name not in self.program.channels:
                known = [c for c in self.program.channels if not c.startswith("__")
                         and ":" not in c and c not in self.program.managed]
                raise ValueError(
                    f"Key {name!r} not in channels: output_keys names the state keys to "
                    f"return and stream, among {known}."
                )
        return keys if isinstance(keys, str) else tuple(names)

    def _print_modes(self, print_mode: Any, debug: bool | None) -> frozenset[str]:
        """The stream modes a run prints as they happen (without yielding them unless
        asked for): ``print_mode``, or updates and values with ``debug=True`` or a graph
        compiled with ``debug=True``."""
        if debug or self.debug:
            return frozenset({"updates", "values"})
        if not print_mode:
            return frozenset()
        return self._modes(print_mode)[0]

    def _values_stream(self) -> tuple[Any, Any]:
        """What the ``values`` stream shows, when not the output: (channels whose writes
        emit it, function of the channels); (None, None) here: the output."""
        return None, None

    def _input_writes(self, command: Command[Any]) -> list[tuple[str, Any]]:
        """The writes of a ``Command`` given as input (its update and goto)."""
        writes: list[tuple[str, Any]] = self.program.nodes["__start__"].write.command_input(
            command
        )
        return writes

    def _output(self, channels: dict[str, Any], keys: Any = None) -> Any:
        """The values of ``keys`` (the output channels by default): one channel's value
        when ``keys`` is a channel name, else a dict."""
        keys = self._output_keys if keys is None else keys
        if isinstance(keys, str):
            chan = channels[keys]
            return chan.value if chan.is_available() else None
        return values_of(channels, keys)

    def _snapshot_values(self, channels: dict[str, Any]) -> Any:
        """What ``get_state(...).values`` shows: every state key (a Pregel: its stream
        channels), not only those of the output schema."""
        return self._output(channels, self._snapshot_keys)

    def _coerce_context(self, context: Any) -> Any:
        """A dict given for a dataclass / pydantic ``context_schema`` becomes an instance
        of it; a TypedDict schema is a plain dict at run time, so it passes as is."""
        schema = self.builder.context_schema
        if context is None or schema is None or not isinstance(schema, type):
            return context
        if is_typeddict(schema) or isinstance(context, schema):
            return context
        if isinstance(context, dict):
            return schema(**context)
        return context

    def _callbacks(
        self, config: dict[str, Any], scope: Scope, input: Any, sink: Any = None
    ) -> Any:
        """Start a callback run only when someone listens (callbacks given or messages).

        The messages and tools events of the run's callbacks go to ``sink`` when given
        (a subgraph its node streams: to that node alone), else to the scope."""

        def send(mode: str, payload: Any, ns: str | None = None) -> None:
            if sink is None:
                scope.emit(mode, payload, ns=ns)
            else:
                sink(ns_tuple(scope.ns if ns is None else ns), mode, payload)

        callbacks = config.get("callbacks")
        if callbacks is None:
            # a graph a node runs on its own thread reports to the node's callbacks, as
            # any runnable the node calls does (the caller's message/tool streams see it)
            task = current_task.get()
            if task is not None:
                callbacks = task.config.get("callbacks")
        if not callbacks and not scope.modes & {"messages", "tools"} and not _tracing_enabled():
            return None
        from langchain_core.callbacks import CallbackManager

        manager = CallbackManager.configure(
            inheritable_callbacks=callbacks,
            inheritable_tags=config.get("tags"),
            inheritable_metadata=config.get("metadata"),
        )
        # the stream modes this run streams itself are its own: a caller streaming the
        # same modes (the node running this graph) does not get its events too

        taken: tuple[type, ...] = ()
        if "messages" in scope.modes:
            taken += (StreamMessagesHandler, StreamMessagesHandlerV2)
        if "tools" in scope.modes:
            taken += (StreamToolCallHandler,)
        for handler in list(manager.handlers) if taken else ():
            if isinstance(handler, taken):
                manager.remove_handler(handler)
        if "messages" in scope.modes:

            def emit(message: Any, meta: dict[str, Any]) -> None:
                if message.id is not None:
                    scope.message_ids.add(message.id)
                ns = meta.get("langgraph_checkpoint_ns", "")
                send("messages", (message, meta), ns="|".join(ns.split("|")[:-1]))

            # v2 protocol events for the run a v3 run stream started; a graph a node
            # streams itself (sink given) keeps the message chunks its caller asked for
            if sink is None and (config.get("configurable") or {}).get(
                CONFIG_KEY_STREAM_MESSAGES_V2
            ):

                def emit_v2(item: tuple[tuple[str, ...], str, Any]) -> None:
                    ns, mode, data = item
                    send(mode, data, ns="|".join(ns))

                manager.add_handler(
                    StreamMessagesHandlerV2(emit_v2, seen=scope.message_ids), inherit=True
                )
            else:
                manager.add_handler(StreamMessagesHandler(emit), inherit=True)
        if "tools" in scope.modes:

            def emit_tool(ns: tuple[str, ...] | None, payload: dict[str, Any]) -> None:
                send("tools", payload, ns=None if ns is None else "|".join(ns))

            manager.add_handler(StreamToolCallHandler(emit_tool), inherit=True)
        run = manager.on_chain_start(
            None, input if isinstance(input, dict) else {"input": input},
            name=config.get("run_name") or self.get_name(), run_id=config.get("run_id"),
        )
        scope.callbacks = run.get_child()
        return run

    def _modes(self, stream_mode: Any) -> tuple[frozenset[str], str | None]:
        if stream_mode is None:
            stream_mode = self.stream_mode
        if isinstance(stream_mode, str):
            requested = [stream_mode]
            single = stream_mode
        else:
            requested = list(stream_mode)
            single = None
        for mode in requested:
            if mode not in _MODES:
                raise ValueError(
                    f"Unknown stream_mode {mode!r}: use one or a list of {sorted(_MODES)}."
                )
        return frozenset(requested), single

    # -- running --------------------------------------------------------------------

    def invoke(
        self,
        input: Any,
        config: RunnableConfig | dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = "values",
        print_mode: Any = (),
        output_keys: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        durability: str | None = None,
        version: str = "v1",
        control: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Run until the graph ends or pauses; return the final state (or stream chunks)."""
        durability = _durability(durability, kwargs)
        if stream_mode != "values":
            return list(
                self.stream(input, config, context=context, stream_mode=stream_mode,
                            print_mode=print_mode, output_keys=output_keys,
                            interrupt_before=interrupt_before, interrupt_after=interrupt_after,
                            durability=durability, control=control, version=version,
                            **kwargs)
            )
        printed = self._print_modes(print_mode, None)
        out: deque[Any] = deque()
        config = self._with_defaults(config)
        with self._thread_lock(config):
            input, config = _before_run(self, input, config)
            run = self._prepare(input, config, modes=printed,
                                sink=(lambda *event: out.append(event)) if printed else None,
                                context=context, interrupt_before=interrupt_before,
                                interrupt_after=interrupt_after, durability=durability,
                                control=control, output_keys=output_keys)
            run.printed = printed
            run.loop.out = out
            _lifecycle(config, input, run.loop, None)
            try:
                for event in drive(run.loop, run.saver, None):
                    run.keep(event)  # (prints what print_mode asks for)
            except BaseException as exc:
                run.finish(exc)
                raise
            run.finish()
            _lifecycle(config, None, run.loop, run.loop.interrupts)
        return self._result(run, output_keys, version)

    async def ainvoke(
        self,
        input: Any,
        config: RunnableConfig | dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = "values",
        print_mode: Any = (),
        output_keys: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        durability: str | None = None,
        version: str = "v1",
        control: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Async ``invoke``: async nodes run on the event loop, sync ones in threads."""
        durability = _durability(durability, kwargs)
        if stream_mode != "values":
            return [
                chunk
                async for chunk in self.astream(
                    input, config, context=context, stream_mode=stream_mode,
                    print_mode=print_mode, output_keys=output_keys,
                    interrupt_before=interrupt_before, interrupt_after=interrupt_after,
                    durability=durability, control=control, version=version, **kwargs)
            ]
        printed = self._print_modes(print_mode, None)
        out: deque[Any] = deque()
        config = self._with_defaults(config)
        async with self._athread_lock(config):
            input, config = await _abefore_run(self, input, config)
            run = self._prepare(input, config, modes=printed,
                                sink=(lambda *event: out.append(event)) if printed else None,
                                context=context, interrupt_before=interrupt_before,
                                interrupt_after=interrupt_after, durability=durability,
                                control=control, output_keys=output_keys)
            run.printed = printed
            run.loop.out = out
            await _alifecycle(config, input, run.loop, None)
            try:
                async with contextlib.aclosing(adrive(run.loop, run.saver, None)) as events:
                    async for event in events:
                        run.keep(event)  # (prints what print_mode asks for)
            except BaseException as exc:
                run.finish(exc)
                raise
            run.finish()
            await _alifecycle(config, None, run.loop, run.loop.interrupts)
        return self._result(run, output_keys, version)

    def _v2_values(self, value: Any) -> Any:
        """A "values" part's data in a v2 stream: the output schema's type when it is a
        class (pydantic model, dataclass), else the dict."""
        if isinstance(value, dict) and is_schema_class(self.builder.output_schema):
            return make_coercer(self.builder.output_schema)(value)
        return value

    def _result(self, run: _Run, output_keys: Any, version: str) -> Any:
        loop = run.loop
        loop.raise_if_nested_pause()
        # a Pregel whose output channels this run never wrote returns None
        value = None if loop.program.values_on_write and not loop.wrote_values else loop.output()
        if output_keys is not None:
            value = self._output(loop.view if loop.view is not None else loop.channels,
                                 self._checked_output_keys(output_keys))
        if version == "v2":
            if (output_keys is None and isinstance(value, dict)
                    and is_schema_class(self.builder.output_schema)):
                value = make_coercer(self.builder.output_schema)(value)
            return GraphOutput(value=value, interrupts=tuple(loop.interrupts))
        if loop.interrupts:
            value = {**(value if isinstance(value, dict) else {}),
                     INTERRUPT: list(loop.interrupts)}
        return value

    # (stream and astream narrow Runnable's ``**kwargs: Any | None``: ``subgraphs`` and
    # ``version`` take no None, as in LangGraph's signatures)
    def stream(  # type: ignore[override]
        self,
        input: Any,
        config: RunnableConfig | dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = None,
        print_mode: Any = (),
        output_keys: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        durability: str | None = None,
        subgraphs: bool = False,
        debug: bool | None = None,
        version: str = "v1",
        control: Any = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Run the graph, yielding what ``stream_mode`` asks for as it happens.

        ``output_keys`` (a key or keys) narrows values and updates to those keys;
        ``print_mode`` prints the events of those modes; ``debug=True`` (or a graph
        compiled with ``debug=True``) prints updates and values."""
        durability = _durability(durability, kwargs)
        modes, single = self._modes(stream_mode)
        printed = self._print_modes(print_mode, debug)
        out: deque[Any] = deque()
        wake: queue.SimpleQueue[Any] | None = None
        if (modes | printed) & LIVE_MODES or self._live_updates:
            wake = queue.SimpleQueue()

        def sink(ns: tuple[str, ...], mode: str, payload: Any) -> None:
            out.append((ns, mode, payload))
            if wake is not None:
                wake.put(None)

        config = self._with_defaults(config)
        with self._thread_lock(config):
            input, config = _before_run(self, input, config)
            run = self._prepare(input, config, modes=modes | printed, sink=sink,
                                context=context, interrupt_before=interrupt_before,
                                interrupt_after=interrupt_after, durability=durability,
                                control=control, output_keys=output_keys)
            run.loop.out = out
            run.single = single
            run.subgraphs = subgraphs
            run.printed, run.modes = printed, modes
            if version == "v2":
                # (the output schema's type holds the whole state, not some keys)
                run.coerce_values = self._v2_values if output_keys is None else _same
            try:
                for event in drive(run.loop, run.saver, wake):
                    if run.keep(event):
                        yield run.format(event)
            except BaseException as exc:
                run.finish(exc)
                raise
            run.finish()
        run.loop.raise_if_nested_pause()

    async def astream(  # type: ignore[override]
        self,
        input: Any,
        config: RunnableConfig | dict[str, Any] | None = None,
        *,
        context: Any = None,
        stream_mode: Any = None,
        print_mode: Any = (),
        output_keys: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        durability: str | None = None,
        subgraphs: bool = False,
        debug: bool | None = None,
        version: str = "v1",
        control: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """Async ``stream``."""
        durability = _durability(durability, kwargs)
        modes, single = self._modes(stream_mode)
        printed = self._print_modes(print_mode, debug)
        out: deque[Any] = deque()
        wake: asyncio.Queue[Any] | None = None
        poke: Any = None
        if (modes | printed) & LIVE_MODES or self._live_updates:
            wake = WakeQueue()
            poke = thread_safe_put(wake)

        def sink(ns: tuple[str, ...], mode: str, payload: Any) -> None:
            out.append((ns, mode, payload))
            if poke is not None:
                poke(None)

        config = self._with_defaults(config)
        async with self._athread_lock(config):
            input, config = await _abefore_run(self, input, config)
            run = self._prepare(input, config, modes=modes | printed, sink=sink,
                                context=context, interrupt_before=interrupt_before,
                                interrupt_after=interrupt_after, durability=durability,
                                control=control, output_keys=output_keys)
            run.loop.out = out
            run.single = single
            run.subgraphs = subgraphs
            run.printed, run.modes = printed, modes
            if version == "v2":
                # (the output schema's type holds the whole state, not some keys)
                run.coerce_values = self._v2_values if output_keys is None else _same
            try:
                # closed with the stream: a consumer that stops early cancels the tasks
                # still running before its aclose() returns
                async with contextlib.aclosing(adrive(run.loop, run.saver, wake)) as events:
                    async for event in events:
                        if run.keep(event):
                            yield run.format(event)
            except BaseException as exc:
                run.finish(exc)
                raise
            run.finish()
        run.loop.raise_if_nested_pause()

    # -- state ----------------------------------------------------------------------

    def stream_events(
        self,
        input: Any,
        config: RunnableConfig | dict[str, Any] | None = None,
        *,
        version: str = "v3",
        transformers: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A typed run stream (``version="v3"``): see ``threadloom.stream``."""
        if version != "v3":
            raise ValueError(
                f"stream_events supports version='v3' only, got {version!r}; "
                "astream_events(version='v2') gives LangChain callback events"
            )

        return open_run_stream(self, input, _run_config(config), transformers=transformers,
                               is_async=False, **kwargs)

    def astream_events(
        self,
        input: Any,
        config: RunnableConfig | dict[str, Any] | None = None,
        *,
        version: str = "v2",
        transformers: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``version="v3"``: awaitable async run stream; v1/v2: LangChain's callback events."""
        if version == "v3":
            return self._astream_events_v3(input, config, transformers, kwargs)
        if transformers is not None:
            raise TypeError("transformers= is only accepted with version='v3'")
        # (another version string reaches langchain_core, which refuses it)
        events_version = cast('Literal["v1", "v2"]', version)
        return super().astream_events(input, _config(config), version=events_version, **kwargs)

    async def _astream_events_v3(
        self, input: Any, config: Any, transformers: Any, kwargs: dict[str, Any]
    ) -> Any:
        return open_run_stream(self, input, config, transformers=transformers,
                               is_async=True, **kwargs)

    def _require_saver(self, config: dict[str, Any]) -> Any:
        saver, _ = self._saver_for(config)
        if saver is None and self.checkpointer is True:
            raise RuntimeError(
                "checkpointer=True cannot be used for root graphs: it means 'keep this "
                "subgraph's checkpoints in its parent's checkpointer'. Read the state through "
                "the parent graph, or compile this graph with a checkpointer instance."
            )
        if saver is None:
            raise ValueError(
                "No checkpointer set: compile the graph with a checkpointer, e.g. "
                "builder.compile(checkpointer=MemorySaver()), to read or edit thread state."
            )
        return saver

    def _graph_for_ns(
        self, config: dict[str, Any], *, for_update: bool = True
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The (sub)graph whose checkpoints live at ``config``'s ``checkpoint_ns``.

        A node counts as a subgraph node when it is a graph or its function reaches one
        (``node_subgraph``: a graph it calls by a closure or global name). A segment
        naming a node that reaches no graph (one built inside the node, or reached
        through ``self``) is read with the graph holding that node
        (``for_update=False``); an update there raises, since that graph's nodes and
        channels would write the wrong state into the namespace.
        A first segment that names no node of this graph at all is this graph's own
        namespace: it ran there as a subgraph (called from inside another graph's node).
        """
        ns = (config.get("configurable") or {}).get("checkpoint_ns") or ""
        graph: CompiledStateGraph[Any, Any, Any, Any] = self
        for part in ns.split("|") if ns else ():
            name = part.split(":", 1)[0]
            spec = graph.builder.nodes.get(name)
            if spec is None and graph is self:
                return self
            child = node_subgraph(spec.action) if spec is not None else None
            if child is None:
                if not for_update:
                    return graph
                plain = "|".join(p.split(":", 1)[0] for p in ns.split("|"))
                raise ValueError(
                    f"Subgraph {plain} not found: checkpoint_ns {ns!r} names '{name}', "
                    f"which is not a subgraph node of graph '{graph.name}'."
                )
            graph = child
        return graph

    def _state_target(
        self, config: dict[str, Any], *, for_update: bool = True
    ) -> tuple[CompiledStateGraph, dict[str, Any]]:
        """The (sub)graph ``config`` points to and the config its checkpoints are read
        with: a subgraph compiled with ``checkpointer=True`` keeps one namespace per
        thread (node names without task ids), whichever task's config points to it.
        ``for_update``: see ``_graph_for_ns``."""
        graph = self._graph_for_ns(config, for_update=for_update)
        return graph, graph._own_ns_config(config)

    def _own_ns_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` (pointing to this graph as a subgraph) with the namespace its
        checkpoints live at: for ``checkpointer=True``, node names without task ids."""
        conf = config.get("configurable") or {}
        ns = conf.get("checkpoint_ns") or ""
        if ns and self.checkpointer is True:
            persistent = "|".join(part.split(":", 1)[0] for part in ns.split("|"))
            if persistent != ns:
                config = {**config, "configurable": {**conf, "checkpoint_ns": persistent}}
        return config

    def _graph_for_history(self, config: dict[str, Any]) -> CompiledStateGraph:
        """The subgraph a history config points into (see ``_graph_for_ns``)."""
        return self._graph_for_ns(config, for_update=False)

    def get_subgraphs(
        self, *, namespace: str | None = None, recurse: bool = False
    ) -> Iterator[tuple[str, CompiledStateGraph]]:
        """``(namespace, graph)`` for each subgraph node (``"a|b"`` for nested ones with
        ``recurse=True``). With ``namespace``, only the subgraph at exactly that
        namespace (matched a whole ``|`` segment at a time; task ids are ignored)."""
        head, rest = None, ""
        if namespace is not None:
            head, _, rest = namespace.partition("|")
            head = head.split(":", 1)[0]
        for name, spec in self.builder.nodes.items():
            child = node_subgraph(spec.action)
            if child is None:
                continue
            if head is not None and name != head:
                continue
            if head is None or not rest:
                yield name, child
            if recurse and (head is None or rest):
                for sub_name, sub in child.get_subgraphs(
                    namespace=rest or None, recurse=True
                ):
                    yield f"{name}|{sub_name}", sub
            if head is not None:
                return

    async def aget_subgraphs(
        self, *, namespace: str | None = None, recurse: bool = False
    ) -> AsyncIterator[tuple[str, CompiledStateGraph]]:
        for item in self.get_subgraphs(namespace=namespace, recurse=recurse):
            yield item

    def get_state(self, config: dict[str, Any], *, subgraphs: bool = False) -> StateSnapshot:
        """The thread's state: values, what runs next, pending tasks and interrupts.

        A config whose ``checkpoint_ns`` points into a subgraph (as ``tasks[i].state``
        does) reads that subgraph's state.
        """
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        graph, config = self._state_target(config, for_update=False)
        snapshot: StateSnapshot = state_ops.run_sync(
            state_ops.get_state(graph, saver, config, subgraphs), saver
        )
        return snapshot

    async def aget_state(
        self, config: dict[str, Any], *, subgraphs: bool = False
    ) -> StateSnapshot:
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        graph, config = self._state_target(config, for_update=False)
        snapshot: StateSnapshot = await state_ops.run_async(
            state_ops.get_state(graph, saver, config, subgraphs), saver
        )
        return snapshot

    def get_state_history(
        self,
        config: dict[str, Any],
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[StateSnapshot]:
        """The thread's checkpoints, newest first (a subgraph's, read with the subgraph,
        for a config whose ``checkpoint_ns`` points into one)."""
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        graph = self._graph_for_history(config)
        config = graph._own_ns_config(config)
        index = state_ops.ChildIndex()
        for tup in saver.list(state_ops.history_config(config), filter=filter, before=before,
                              limit=limit):
            histories = state_ops.run_sync(state_ops.delta_histories(graph.program, tup), saver)
            yield state_ops.snapshot(graph, tup, live=False, histories=histories,
                                     child=index.see(tup))

    async def aget_state_history(
        self,
        config: dict[str, Any],
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[StateSnapshot]:
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        graph = self._graph_for_history(config)
        config = graph._own_ns_config(config)
        index = state_ops.ChildIndex()
        async for tup in saver.alist(state_ops.history_config(config), filter=filter,
                                     before=before, limit=limit):
            histories = await state_ops.run_async(
                state_ops.delta_histories(graph.program, tup), saver
            )
            yield state_ops.snapshot(graph, tup, live=False, histories=histories,
                                     child=index.see(tup))

    def update_state(
        self,
        config: dict[str, Any],
        values: Any,
        as_node: str | None = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        """Write ``values`` as if node ``as_node`` returned them; return the new config."""
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        graph, config = self._state_target(config)  # tasks[i].state points into one
        with self._thread_lock(config):
            updated: dict[str, Any] = _recorded_update(
                graph, saver, config, [state_ops.Update(values, as_node, task_id)]
            )
            return updated

    async def aupdate_state(
        self,
        config: dict[str, Any],
        values: Any,
        as_node: str | None = None,
        task_id: str | None = None,
    ) -> dict[str, Any]:
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        graph, config = self._state_target(config)
        async with self._athread_lock(config):
            updated: dict[str, Any] = await _arecorded_update(
                graph, saver, config, [state_ops.Update(values, as_node, task_id)]
            )
            return updated

    def bulk_update_state(
        self, config: dict[str, Any], supersteps: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        """Apply several supersteps of ``StateUpdate``s, one checkpoint each."""
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        with self._thread_lock(config):
            for updates in _check_supersteps(supersteps):
                config = _recorded_update(self, saver, config, updates)
        return config

    async def abulk_update_state(
        self, config: dict[str, Any], supersteps: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        async with self._athread_lock(config):
            for updates in _check_supersteps(supersteps):
                config = await _arecorded_update(self, saver, config, updates)
        return config

    def get_audit_log(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        """The thread's audit log, oldest first: every resume, approval decision (who,
        when, which request and digest, what an edit changed), refusal and state update.
        See ``threadloom.hitl.audit`` for the record format."""
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        thread_id = state_ops.history_config(config)["configurable"]["thread_id"]
        records: list[dict[str, Any]] = saver.list_audit(thread_id)
        return records

    async def aget_audit_log(self, config: dict[str, Any]) -> list[dict[str, Any]]:
        config = self._with_defaults(config) or {}
        saver = self._require_saver(config)
        thread_id = state_ops.history_config(config)["configurable"]["thread_id"]
        records: list[dict[str, Any]] = await saver.alist_audit(thread_id)
        return records


def _lifecycle_event(config: Any, input: Any, loop: Loop, interrupts: Any) -> Any:
    """The graph-callback event of a root run starting a resume or ending paused."""
    if loop.scope.nested or not config or not config.get("callbacks"):
        return None

    if interrupts:
        return "on_interrupt", GraphInterruptEvent(tuple(interrupts), (), config)
    if isinstance(input, Command) and input.resume is not None:
        return "on_resume", GraphResumeEvent(input.resume, (), config)
    return None


def _lifecycle(config: Any, input: Any, loop: Loop, interrupts: Any) -> None:
    event = _lifecycle_event(config, input, loop, interrupts)
    if event is not None:
        dispatch(config["callbacks"], *event)


async def _alifecycle(config: Any, input: Any, loop: Loop, interrupts: Any) -> None:
    event = _lifecycle_event(config, input, loop, interrupts)
    if event is not None:
        await adispatch(config["callbacks"], *event)


def _check_supersteps(supersteps: Sequence[Sequence[Any]]) -> list[list[state_ops.Update]]:
    if not supersteps:
        raise ValueError(
            "No supersteps provided: bulk_update_state needs at least one superstep of updates."
        )
    out = []
    for updates in supersteps:
        if not updates:
            raise ValueError(
                "No updates provided: each superstep of bulk_update_state needs at least one "
                "update."
            )
        out.append([state_ops.Update(u.values, u.as_node, getattr(u, "task_id", None))
                    for u in updates])
    return out


# -- hooks attached to this graph (threadloom.graph.graph_hooks): answers checked, updates audited


def _nested_sinks(parent: Scope, conf: dict[str, Any], persistent_ns: str | None,
                  modes: frozenset[str], sink: Any) -> tuple[Any, Any]:
    """Where the events of a subgraph run that its node streams go, as two sinks.

    The first takes the run's own events: the modes the node asked for go to the node's
    stream (namespaces relative to the subgraph), the caller's modes to the caller's
    stream as from any subgraph, except tool events, which are the node's alone. The
    second takes the events of the run's callbacks (model tokens, tool calls): the node
    streams them, so they are the node's alone.
    """
    # the subgraph's namespace, with task ids (callback events) and as its run has it
    prefixes = {ns_tuple(conf.get("checkpoint_ns", "")), ns_tuple(persistent_ns or "")}
    prefixes.discard(())
    parent_sink = parent.sink
    parent_modes = parent.modes

    def own(ns: tuple[str, ...], mode: str, payload: Any) -> None:
        if mode not in modes:
            return
        for prefix in prefixes:
            if ns[:len(prefix)] == prefix:
                ns = ns[len(prefix):]
                break
        sink(ns, mode, payload)

    def both(ns: tuple[str, ...], mode: str, payload: Any) -> None:
        own(ns, mode, payload)
        if mode == "tools" and mode in modes:
            return
        if parent_sink is not None and mode in parent_modes:
            parent_sink(ns, mode, payload)

    return both, own


def _before_run(
    graph: CompiledStateGraph[Any, Any, Any, Any], input: Any, config: dict[str, Any] | None
) -> tuple[Any, dict[str, Any] | None]:
    """The graph's hooks may check (and stamp) the input and add to the run's config."""
    for hook in graph.hooks:
        input, config = hook.before_run(graph, input, config)
    return input, config


async def _abefore_run(
    graph: CompiledStateGraph[Any, Any, Any, Any], input: Any, config: dict[str, Any] | None
) -> tuple[Any, dict[str, Any] | None]:
    for hook in graph.hooks:
        input, config = await hook.abefore_run(graph, input, config)
    return input, config


def _recorded_update(
    graph: CompiledStateGraph[Any, Any, Any, Any], saver: Any, config: Any, updates: Any
) -> Any:
    """One ``update_state`` superstep, recorded by the graph's hooks (the audit log)."""
    # a config into a subgraph (checkpoint_ns) edits that subgraph's checkpoints
    target = graph._graph_for_ns(config)
    if not graph.hooks:
        return state_ops.run_sync(state_ops.update_state(target, saver, config, updates), saver)
    before = [hook.before_update(graph, saver, config) for hook in graph.hooks]
    new_config = state_ops.run_sync(state_ops.update_state(target, saver, config, updates),
                                    saver)
    for hook, seen in zip(graph.hooks, before, strict=True):
        hook.after_update(saver, config, updates, seen, new_config)
    return new_config


async def _arecorded_update(
    graph: CompiledStateGraph[Any, Any, Any, Any], saver: Any, config: Any, updates: Any
) -> Any:
    if not graph.hooks:
        return await state_ops.run_async(
            state_ops.update_state(graph._graph_for_ns(config), saver, config, updates), saver
        )
    before = [await hook.abefore_update(graph, saver, config) for hook in graph.hooks]
    new_config = await state_ops.run_async(
        state_ops.update_state(graph._graph_for_ns(config), saver, config, updates), saver
    )
    for hook, seen in zip(graph.hooks, before, strict=True):
        await hook.aafter_update(saver, config, updates, seen, new_config)
    return new_config

def _stream_part(ns: tuple[str, ...], mode: str, payload: Any, coerce: Any) -> dict[str, Any]:
    """One ``stream(..., version="v2")`` part: ``{"type", "ns", "data"}``; a "values" part
    also has the pending ``interrupts`` (taken out of the data). State values (of "values"
    and of checkpoint payloads) are given as the output schema's type by ``coerce``."""
    if mode == "checkpoints" and isinstance(payload, dict) and "values" in payload:
        payload = {**payload, "values": _try_coerce(coerce, payload["values"])}
    elif mode == "debug" and isinstance(payload, dict) and payload.get("type") == "checkpoint":
        inner = payload.get("payload")
        if isinstance(inner, dict) and "values" in inner:
            payload = {**payload,
                       "payload": {**inner, "values": _try_coerce(coerce, inner["values"])}}
    if mode != "values":
        return {"type": mode, "ns": ns, "data": payload}
    interrupts: tuple[Any, ...] = ()
    if isinstance(payload, dict) and INTERRUPT in payload:
        payload = dict(payload)
        interrupts = tuple(payload.pop(INTERRUPT))
    return {"type": mode, "ns": ns, "data": coerce(payload), "interrupts": interrupts}


def _same(value: Any) -> Any:
    return value


def _print_event(event: tuple[tuple[str, ...], str, Any], subgraphs: bool) -> None:
    """Print one streamed event as LangGraph's ``print_mode`` does: ``[mode]`` in bold, a
    subgraph's namespace in yellow, then the payload's repr."""
    ns, mode, payload = event
    parts = [f"\033[1m[{mode}]\033[0m"]
    if subgraphs and ns:
        parts.append(f"\033[1;30;33m[graph={ns}]\033[0m")
    parts.append(repr(payload))
    print(" ".join(parts))


def _try_coerce(coerce: Any, values: Any) -> Any:
    # a checkpoint taken before every required key is set stays a dict
    try:
        return coerce(values)
    except Exception:  # noqa: BLE001
        return values


def _run_config(config: RunnableConfig | dict[str, Any] | None) -> dict[str, Any] | None:
    """A config as this module passes it on (a plain dict)."""
    return cast("dict[str, Any] | None", config)


def _config(config: RunnableConfig | dict[str, Any] | None) -> RunnableConfig | None:
    """A config as langchain_core's helpers type it (a run's config is a plain dict here:
    keys of its own ride along)."""
    return cast("RunnableConfig | None", config)


def _durability(durability: str | None, kwargs: dict[str, Any]) -> str | None:
    """``durability``, or what the deprecated ``checkpoint_during=`` asked for (True: save
    while running, "async"; False: only at the end, "exit")."""
    if "checkpoint_during" not in kwargs:
        return durability
    during = kwargs.pop("checkpoint_during")
    import warnings


    warnings.warn(
        "`checkpoint_during` is deprecated and will be removed. Please use `durability` "
        "instead.", LangGraphDeprecatedSinceV10, stacklevel=3,
    )
    if durability is not None or during is None:
        return durability
    return "async" if during else "exit"


_tracing_check: Callable[[], Any] | None = None  # langchain_core's, loaded at first use


def _tracing_enabled() -> bool:
    """LangSmith tracing is on (env ``LANGSMITH_TRACING`` or ``tracing_context``): the
    run then reports itself (and its nodes) to the tracer langchain_core adds. (Its
    module is loaded by the first run, not by importing this one, and looked up once.)"""
    global _tracing_check
    if _tracing_check is None:
        from langchain_core.tracers.context import _tracing_v2_is_enabled

        _tracing_check = _tracing_v2_is_enabled
    return bool(_tracing_check())


def _node_list(value: Any) -> Any:
    if value is None:
        return ()
    if value == "*":
        return "*"
    if isinstance(value, str):
        return (value,)
    return tuple(value)
