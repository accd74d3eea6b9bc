"""``RemoteGraph``: a graph deployed on an Agent Server, used like a local graph.

It speaks the server's HTTP API through the official ``langgraph-sdk`` client (an
optional dependency: ``pip install 'threadloom[remote]'``). ``invoke``/``stream`` start
a run (``client.runs.stream``) and turn the server-sent events back into what a local
graph yields; ``get_state``/``get_state_history``/``update_state`` map the thread
endpoints onto ``StateSnapshot``; ``get_graph`` draws the deployed graph.

A ``RemoteGraph`` can be a node of a ``StateGraph``. It then:

* runs on the parent's thread id (the config's ``thread_id`` goes to the server as the
  run's thread, created on first use) and sends only the JSON-safe part of the config
  (see ``_sanitize_config``);
* raises ``GraphInterrupt`` when the remote run pauses, so the parent pauses too, and
  on the parent's resume sends the answer to the server as ``Command(resume=...)``;
* hands the remote run's stream events to the parent's stream under the node's
  namespace (for ``stream(..., subgraphs=True)`` of the parent).

The module never imports the SDK at import time: it is imported when a client is made.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from threadloom.constants import (
    CONFIG_KEY_SCOPE,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_STRICT_RESUME,
    INTERRUPT,
)
from threadloom.errors import GraphInterrupt, RemoteException
from threadloom.pregel.protocol import PregelProtocol
from threadloom.stream.remote import (
    AsyncRemoteRunStream,
    RemoteRunStream,
    translate_command_input,
)
from threadloom.types import Command, Interrupt, PregelTask, Send, StateSnapshot

__all__ = ["RemoteException", "RemoteGraph"]

# What stream_events(version="v3") accepts besides input/config/version.
_V3_SUPPORTED_KWARGS = frozenset({"metadata", "headers"})

# Stream modes a server run can produce (the caller's name; "messages" is requested as
# "messages-tuple" on the wire).
_REMOTE_MODES = frozenset(
    {"values", "updates", "messages", "custom", "debug", "tasks", "checkpoints", "events"}
)

# configurable keys that name a place in the caller's checkpoints, or engine hooks:
# never sent to the server.
_DROP_CONFIGURABLE = frozenset(
    {"checkpoint_map", "checkpoint_id", "checkpoint_ns", CONFIG_KEY_STRICT_RESUME}
)
_ENGINE_KEY_PREFIXES = ("__pregel_", "__threadloom_")

_MISSING = object()


def _require_sdk() -> Any:
    try:
        import langgraph_sdk
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "RemoteGraph needs the langgraph-sdk package to reach an Agent Server: "
            "pip install 'threadloom[remote]' (or pass client=/sync_client= objects)"
        ) from exc
    return langgraph_sdk


def _merge_tracing_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """``headers`` plus the current LangSmith trace's propagation headers, if any."""
    try:
        from langsmith.run_helpers import get_current_run_tree
    except ImportError:  # pragma: no cover - langsmith ships with langchain-core
        return dict(headers) if headers is not None else None
    run_tree = get_current_run_tree()
    if run_tree is None:
        return dict(headers) if headers is not None else None
    merged = dict(headers or {})
    merged.update(run_tree.to_headers())
    return merged


# -- JSON-safe config ------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """``value`` with everything a JSON body cannot carry left out (``_MISSING`` if none)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                continue
            safe = _json_safe(v)
            if safe is not _MISSING:
                out[k] = safe
        return out
    if isinstance(value, (list, tuple)):
        return [s for s in (_json_safe(v) for v in value) if s is not _MISSING]
    return _MISSING


def _merge_configs(*configs: Mapping[str, Any] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for config in configs:
        for key, value in (config or {}).items():
            if key in ("configurable", "metadata") and isinstance(value, Mapping):
                merged[key] = {**(merged.get(key) or {}), **value}
            elif key == "tags" and value is not None:
                merged[key] = list(dict.fromkeys([*(merged.get(key) or []), *value]))
            else:
                merged[key] = value
    return merged


# -- server payloads -> threadloom types -------------------------------------------------


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


def _interrupt(data: Any) -> Interrupt:
    if isinstance(data, Interrupt):
        return data
    if isinstance(data, Mapping):
        iid = data.get("id") or data.get("interrupt_id")
        return Interrupt(value=data.get("value"), id=iid) if iid else Interrupt(data.get("value"))
    return Interrupt(value=data)


def _config_of(checkpoint: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {"configurable": dict(checkpoint)} if checkpoint else None


def _task(data: Mapping[str, Any]) -> PregelTask:
    state = data.get("state")
    if isinstance(state, Mapping) and "values" in state:
        task_state: Any = _snapshot(state)
    elif isinstance(state, Mapping) and "configurable" in state:
        task_state = dict(state)
    else:
        task_state = _config_of(data.get("checkpoint"))
    return PregelTask(
        id=data.get("id", ""),
        name=data.get("name", ""),
        path=_tupled(data.get("path") or []),
        error=data.get("error"),
        interrupts=tuple(_interrupt(i) for i in data.get("interrupts") or ()),
        state=task_state,
        result=data.get("result"),
    )


def _snapshot(state: Mapping[str, Any]) -> StateSnapshot:
    """A server ``ThreadState`` as a ``StateSnapshot``."""
    tasks = tuple(_task(t) for t in state.get("tasks") or ())
    if "interrupts" in state:
        interrupts = tuple(_interrupt(i) for i in state.get("interrupts") or ())
    else:
        interrupts = tuple(i for t in tasks for i in t.interrupts)
    return StateSnapshot(
        values=state.get("values"),
        next=tuple(state.get("next") or ()),
        config=_config_of(state.get("checkpoint")) or {"configurable": {}},
        metadata=state.get("metadata"),
        created_at=state.get("created_at"),
        parent_config=_config_of(state.get("parent_checkpoint")),
        tasks=tasks,
        interrupts=interrupts,
    )


def _drawable(graph: Mapping[str, Any]) -> Any:
    from langchain_core.runnables.graph import Edge, Graph, Node

    nodes = {}
    for node in graph.get("nodes") or ():
        node_id = str(node["id"])
        data = node.get("data")
        name = data.get("name", node_id) if isinstance(data, Mapping) else node_id
        nodes[node_id] = Node(id=node_id, name=name, data=data, metadata=node.get("metadata"))
    edges = [
        Edge(
            source=edge["source"],
            target=edge["target"],
            data=edge.get("data"),
            conditional=bool(edge.get("conditional", False)),
        )
        for edge in graph.get("edges") or ()
    ]
    return Graph(nodes=nodes, edges=edges)


def _command_payload(command: Command[Any]) -> dict[str, Any]:
    """A ``Command`` as the server's ``command`` body."""
    out: dict[str, Any] = {}
    if command.resume is not None:
        out["resume"] = command.resume
    if command.update is not None:
        update = command.update
        if isinstance(update, (list, tuple)):
            update = [list(item) if isinstance(item, tuple) else item for item in update]
        out["update"] = update
    goto = command.goto
    if goto:
        items = goto if isinstance(goto, (list, tuple)) else [goto]
        converted = [
            {"node": g.node, "input": g.arg} if isinstance(g, Send) else g for g in items
        ]
        out["goto"] = converted if isinstance(goto, (list, tuple)) else converted[0]
    return out


def _to_message(data: Any) -> Any:
    """A message dict from the server as a langchain message (for a threadloom parent)."""
    if not isinstance(data, Mapping) or "type" not in data:
        return data
    try:
        from langchain_core import messages as lc

        kind = data["type"]
        fields = {k: v for k, v in data.items() if k != "type"}
        chunk_types = {
            "AIMessageChunk": lc.AIMessageChunk,
            "HumanMessageChunk": lc.HumanMessageChunk,
            "ToolMessageChunk": lc.ToolMessageChunk,
            "SystemMessageChunk": lc.SystemMessageChunk,
        }
        if kind in chunk_types:
            return chunk_types[kind](**fields)
        return lc.convert_to_messages([dict(data)])[0]
    except Exception:  # noqa: BLE001 - an unknown shape is passed on as it came
        return data


# -- where a nested run's events go --------------------------------------------------------


class _ParentStream:
    """The stream of the graph a RemoteGraph node runs in (LangGraph or threadloom style)."""

    __slots__ = ("modes", "_emit", "_objects")

    def __init__(self, modes: Any, emit: Any, objects: bool) -> None:
        self.modes = frozenset(m for m in modes if m in _REMOTE_MODES)
        self._emit = emit
        self._objects = objects

    def send(self, ns: tuple[str, ...], mode: str, payload: Any) -> None:
        if mode not in self.modes:
            return
        if self._objects and mode == "messages" and isinstance(payload, tuple) and payload:
            payload = (_to_message(payload[0]), *payload[1:])
        self._emit(ns, mode, payload)

    @classmethod
    def of(cls, configurable: Mapping[str, Any]) -> _ParentStream | None:
        protocol = configurable.get(CONFIG_KEY_STREAM)
        if protocol is not None and getattr(protocol, "modes", None):
            return cls(protocol.modes, lambda ns, mode, p: protocol((ns, mode, p)), False)
        scope = configurable.get(CONFIG_KEY_SCOPE)
        if scope is not None and getattr(scope, "sink", None) is not None and scope.modes:
            return cls(scope.modes, scope.sink, True)
        return None


class _EventMapper:
    """Turns the server's stream parts of one run into what ``stream()`` yields."""

    def __init__(
        self,
        *,
        modes: list[str],
        single: bool,
        subgraphs: bool,
        caller_ns: tuple[str, ...],
        nested: bool,
        parent: _ParentStream | None,
    ) -> None:
        self.modes = set(modes)
        self.single = single
        self.subgraphs = subgraphs
        self.caller_ns = caller_ns
        self.nested = nested
        self.parent = parent
        self.done = False

    def map(self, part: Any) -> list[Any]:
        event = part.event if hasattr(part, "event") else part[0]
        data = part.data if hasattr(part, "data") else part[1]
        mode, *ns_parts = str(event).split("|")
        if mode == "messages-tuple":
            mode = "messages"
        if mode == "error":
            raise RemoteException(_error_message(data))
        if mode == "end":
            self.done = True
            return []
        if mode not in _REMOTE_MODES:  # metadata, feedback, heartbeats, ...
            return []
        payload = tuple(data) if mode == "messages" and isinstance(data, list) else data
        ns = self.caller_ns + tuple(ns_parts)
        if self.parent is not None:
            self.parent.send(ns, mode, payload)
        if (
            self.nested
            and mode == "updates"
            and not ns_parts
            and isinstance(data, Mapping)
            and data.get(INTERRUPT)
        ):
            raise GraphInterrupt([_interrupt(i) for i in data[INTERRUPT]])
        if mode not in self.modes:
            return []
        if ns_parts and not self.subgraphs and mode != "messages":
            return []  # requested for the parent's stream only
        if self.subgraphs:
            return [(ns, payload) if self.single else (ns, mode, payload)]
        if self.single:
            return [payload]
        replace = getattr(part, "_replace", None)  # keep the SDK's StreamPart type
        if replace is not None:
            return [replace(event=mode, data=payload)]
        return [(mode, payload, None)]


def _error_message(data: Any) -> str:
    if isinstance(data, Mapping):
        name = data.get("error") or "Error"
        message = data.get("message")
        return f"{name}: {message}" if message is not None else str(name)
    return str(data)


class RemoteGraph(PregelProtocol):
    """A graph deployed on an Agent Server, with a local graph's methods.

    Args:
        assistant_id: the assistant (or graph id) to run on the server.
        url: the server's URL; used to make ``client``/``sync_client`` when not given.
        api_key: sent as ``x-api-key`` (default: the SDK reads it from the environment).
        headers: extra headers for every request of the clients made from ``url``.
        client: a ``langgraph_sdk`` async client (``get_client(...)``).
        sync_client: a ``langgraph_sdk`` sync client (``get_sync_client(...)``).
        config: a default ``RunnableConfig`` merged under every call's config.
        name: the name shown for this graph (default: ``assistant_id``).
        distributed_tracing: send the current LangSmith trace with each run.
    """

    def __init__(
        self,
        assistant_id: str,
        /,
        *,
        url: str | None = None,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        client: Any = None,
        sync_client: Any = None,
        config: dict[str, Any] | None = None,
        name: str | None = None,
        distributed_tracing: bool = False,
    ) -> None:
        self.assistant_id = assistant_id
        self.name = name if name is not None else assistant_id
        self.config = config
        self.distributed_tracing = distributed_tracing
        if (client is None or sync_client is None) and url is not None:
            sdk = _require_sdk()
            options: dict[str, Any] = {"url": url, "headers": headers}
            if api_key is not None:
                options["api_key"] = api_key
            if client is None:
                client = sdk.get_client(**options)
            if sync_client is None:
                sync_client = sdk.get_sync_client(**options)
        self.client = client
        self.sync_client = sync_client

    @property
    def graph_id(self) -> str:
        return self.assistant_id

    @graph_id.setter
    def graph_id(self, value: str) -> None:
        self.assistant_id = value

    def __repr__(self) -> str:
        return f"RemoteGraph({self.assistant_id!r})"

    # -- clients --------------------------------------------------------------------------

    def _sync(self) -> Any:
        if self.sync_client is None:
            raise ValueError(
                f"RemoteGraph({self.assistant_id!r}) has no sync client: pass url= or "
                "sync_client=langgraph_sdk.get_sync_client(...) to use the sync methods"
            )
        return self.sync_client

    def _async(self) -> Any:
        if self.client is None:
            raise ValueError(
                f"RemoteGraph({self.assistant_id!r}) has no async client: pass url= or "
                "client=langgraph_sdk.get_client(...) to use the async methods"
            )
        return self.client

    # -- config -----------------------------------------------------------------------------

    def with_config(self, config: dict[str, Any] | None = None, **kwargs: Any) -> RemoteGraph:  # type: ignore[override]  # LangGraph's signature, not Runnable's
        """A copy of this graph whose default config is this one's merged with ``config``."""
        clone = copy.copy(self)
        clone.config = _merge_configs(self.config, config, kwargs)
        return clone

    def _merged(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        return _merge_configs(self.config, config)

    def _sanitize_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The part of ``config`` a server run can take, as plain JSON.

        Keeps ``recursion_limit``, string ``tags``, JSON-safe ``metadata`` and
        ``configurable`` (string keys, JSON-safe values, without the caller's checkpoint
        position and engine hooks); everything else (callbacks, run ids, ...) stays here.
        """
        out: dict[str, Any] = {}
        if "recursion_limit" in config:
            out["recursion_limit"] = config["recursion_limit"]
        if "tags" in config:
            out["tags"] = [t for t in config["tags"] or () if isinstance(t, str)]
        if "metadata" in config:
            out["metadata"] = _json_safe(dict(config["metadata"] or {}))
        if "configurable" in config:
            configurable = {
                k: v
                for k, v in (config["configurable"] or {}).items()
                if isinstance(k, str)
                and k not in _DROP_CONFIGURABLE
                and not k.startswith(_ENGINE_KEY_PREFIXES)
            }
            out["configurable"] = _json_safe(configurable)
        return out

    @staticmethod
    def _thread_id(config: Mapping[str, Any], method: str) -> str:
        thread_id = (config.get("configurable") or {}).get("thread_id")
        if thread_id is None:
            raise ValueError(
                f"RemoteGraph.{method}() needs config={{'configurable': {{'thread_id': ...}}}}"
                " naming the server thread"
            )
        return str(thread_id)

    @staticmethod
    def _checkpoint(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
        conf = (config or {}).get("configurable") or {}
        if not conf.get("checkpoint_id"):
            return None
        checkpoint = {
            "checkpoint_id": conf["checkpoint_id"],
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
        }
        if conf.get("checkpoint_map"):
            checkpoint["checkpoint_map"] = conf["checkpoint_map"]
        return checkpoint

    # -- drawing ------------------------------------------------------------------------

    def get_graph(self, config: Any = None, *, xray: int | bool = False) -> Any:
        """The deployed graph as a drawable ``langchain_core`` graph."""
        graph = self._sync().assistants.get_graph(assistant_id=self.assistant_id, xray=xray)
        return _drawable(graph)

    async def aget_graph(self, config: Any = None, *, xray: int | bool = False) -> Any:
        graph = await self._async().assistants.get_graph(
            assistant_id=self.assistant_id, xray=xray
        )
        return _drawable(graph)

    # -- state --------------------------------------------------------------------------

    def get_state(self, config: dict[str, Any], *, subgraphs: bool = False) -> StateSnapshot:
        """The thread's state (at the config's ``checkpoint_id``, if any)."""
        merged = self._merged(config)
        state = self._sync().threads.get_state(
            thread_id=self._thread_id(merged, "get_state"),
            checkpoint=self._checkpoint(merged),
            subgraphs=subgraphs,
        )
        return _snapshot(state)

    async def aget_state(
        self, config: dict[str, Any], *, subgraphs: bool = False
    ) -> StateSnapshot:
        merged = self._merged(config)
        state = await self._async().threads.get_state(
            thread_id=self._thread_id(merged, "aget_state"),
            checkpoint=self._checkpoint(merged),
            subgraphs=subgraphs,
        )
        return _snapshot(state)

    def _history_kwargs(
        self, config: dict[str, Any], filter: Any, before: Any, limit: Any, method: str
    ) -> dict[str, Any]:
        merged = self._merged(config)
        kwargs: dict[str, Any] = {
            "thread_id": self._thread_id(merged, method),
            "before": self._checkpoint(before),
            "metadata": filter,
            "checkpoint": self._checkpoint(merged),
        }
        if limit is not None:
            kwargs["limit"] = limit
        return kwargs

    def get_state_history(
        self,
        config: dict[str, Any],
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[StateSnapshot]:
        """The thread's checkpoints, newest first."""
        kwargs = self._history_kwargs(config, filter, before, limit, "get_state_history")
        for state in self._sync().threads.get_history(**kwargs):
            yield _snapshot(state)

    async def aget_state_history(
        self,
        config: dict[str, Any],
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[StateSnapshot]:
        kwargs = self._history_kwargs(config, filter, before, limit, "aget_state_history")
        for state in await self._async().threads.get_history(**kwargs):
            yield _snapshot(state)

    def update_state(
        self,
        config: dict[str, Any],
        values: dict[str, Any] | Any | None,
        as_node: str | None = None,
    ) -> dict[str, Any]:
        """Write ``values`` to the thread as if ``as_node`` returned them; the new config."""
        merged = self._merged(config)
        response = self._sync().threads.update_state(
            thread_id=self._thread_id(merged, "update_state"),
            values=values,
            as_node=as_node,
            checkpoint=self._checkpoint(merged),
        )
        return {"configurable": dict(response["checkpoint"])}

    async def aupdate_state(
        self,
        config: dict[str, Any],
        values: dict[str, Any] | Any | None,
        as_node: str | None = None,
    ) -> dict[str, Any]:
        merged = self._merged(config)
        response = await self._async().threads.update_state(
            thread_id=self._thread_id(merged, "aupdate_state"),
            values=values,
            as_node=as_node,
            checkpoint=self._checkpoint(merged),
        )
        return {"configurable": dict(response["checkpoint"])}

    # -- running ------------------------------------------------------------------------

    def _prepare_run(
        self,
        input: Any,
        config: Mapping[str, Any] | None,
        *,
        stream_mode: Any,
        subgraphs: bool,
        interrupt_before: Any,
        interrupt_after: Any,
        headers: Mapping[str, str] | None,
        context: Any,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], _EventMapper]:
        merged = self._merged(config)
        conf = merged.get("configurable") or {}
        caller_ns_str = conf.get("checkpoint_ns") or ""
        nested = bool(caller_ns_str)
        caller_ns = tuple(caller_ns_str.split("|")) if nested else ()

        if stream_mode is None:
            modes, single = ["updates"], True
        elif isinstance(stream_mode, str):
            modes, single = [stream_mode], True
        else:
            modes, single = list(stream_mode), False
        modes = ["messages" if m == "messages-tuple" else m for m in modes]
        unknown = [m for m in modes if m not in _REMOTE_MODES]
        if unknown:
            raise ValueError(
                f"RemoteGraph cannot stream mode(s) {unknown}: a server run streams "
                f"{sorted(_REMOTE_MODES)}"
            )
        parent = _ParentStream.of(conf) if nested else None

        wanted = list(dict.fromkeys([*modes, "updates", *(sorted(parent.modes) if parent else ())]))
        server_modes = ["messages-tuple" if m == "messages" else m for m in wanted]

        sanitized = self._sanitize_config(merged)
        thread_id = None
        if "configurable" in sanitized:
            thread_id = sanitized["configurable"].pop("thread_id", None)
        elif conf.get("thread_id") is not None:
            thread_id = conf["thread_id"]

        command = None
        if isinstance(input, Command):
            command, input = _command_payload(input), None
        elif nested:
            resume = _parent_resume(conf)
            if resume is not _MISSING:
                command, input = {"resume": resume}, None

        if self.distributed_tracing:
            headers = _merge_tracing_headers(headers)

        request: dict[str, Any] = {
            "thread_id": thread_id,
            "assistant_id": self.assistant_id,
            "input": input,
            "command": command,
            "stream_mode": server_modes,
            "stream_subgraphs": subgraphs or parent is not None,
            "config": sanitized,
            "context": context,
            "interrupt_before": interrupt_before,
            "interrupt_after": interrupt_after,
            "headers": dict(headers) if headers is not None else None,
        }
        if thread_id is not None and nested:
            request["if_not_exists"] = "create"  # the parent's thread, new to the server
        if thread_id is not None and not nested and conf.get("checkpoint_id"):
            request["checkpoint_id"] = conf["checkpoint_id"]
        if conf.get(CONFIG_KEY_STRICT_RESUME):
            request["strict_resume"] = True
        request.update(extra)
        mapper = _EventMapper(
            modes=modes,
            single=single,
            subgraphs=subgraphs,
            caller_ns=caller_ns,
            nested=nested,
            parent=parent,
        )
        return request, mapper

    def stream(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        subgraphs: bool = False,
        headers: dict[str, str] | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Run the graph on the server and yield its stream like a local graph's.

        ``stream_mode`` defaults to ``"updates"``; with ``subgraphs=True`` items are
        ``(namespace, chunk)`` (or ``(namespace, mode, chunk)`` for a list of modes).
        Inside a parent graph a pause of the remote run raises ``GraphInterrupt``.
        """
        request, mapper = self._prepare_run(
            input,
            config,
            stream_mode=stream_mode,
            subgraphs=subgraphs,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            headers=headers,
            context=context,
            extra=kwargs,
        )
        for part in self._sync().runs.stream(**request):
            yield from mapper.map(part)
            if mapper.done:
                return

    async def astream(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        subgraphs: bool = False,
        headers: dict[str, str] | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        request, mapper = self._prepare_run(
            input,
            config,
            stream_mode=stream_mode,
            subgraphs=subgraphs,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            headers=headers,
            context=context,
            extra=kwargs,
        )
        async for part in self._async().runs.stream(**request):
            for item in mapper.map(part):
                yield item
            if mapper.done:
                return

    def invoke(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        headers: dict[str, str] | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Run the graph on the server; the final state values."""
        kwargs.pop("stream_mode", None)
        result = None
        for chunk in self.stream(
            input,
            config,
            stream_mode="values",
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            headers=headers,
            context=context,
            **kwargs,
        ):
            result = chunk
        return result

    async def ainvoke(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        headers: dict[str, str] | None = None,
        context: Any = None,
        **kwargs: Any,
    ) -> Any:
        kwargs.pop("stream_mode", None)
        result = None
        async for chunk in self.astream(
            input,
            config,
            stream_mode="values",
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            headers=headers,
            context=context,
            **kwargs,
        ):
            result = chunk
        return result

    # -- v3 event streams ----------------------------------------------------------------

    def _reject_v3_unsupported(
        self,
        *,
        control: Any,
        transformers: Any,
        interrupt_before: Any,
        interrupt_after: Any,
        extra_kwargs: Mapping[str, Any],
    ) -> None:
        given = {
            "control": control,
            "transformers": transformers,
            "interrupt_before": interrupt_before,
            "interrupt_after": interrupt_after,
        }
        for name, value in given.items():
            if value is not None:
                raise NotImplementedError(
                    f"RemoteGraph.stream_events(version='v3') does not support `{name}=`: "
                    "the server's thread stream cannot take it"
                )
        unknown = sorted(set(extra_kwargs) - _V3_SUPPORTED_KWARGS)
        if unknown:
            raise NotImplementedError(
                f"RemoteGraph.stream_events(version='v3') does not support {unknown} "
                f"(supported extra arguments: {sorted(_V3_SUPPORTED_KWARGS)})"
            )

    def _v3_args(self, input: Any, config: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        wire_input = translate_command_input(input)
        sanitized = self._sanitize_config(self._merged(config))
        thread_id = None
        if "configurable" in sanitized:
            thread_id = sanitized["configurable"].pop("thread_id", None)
        headers = kwargs.get("headers")
        if self.distributed_tracing:
            headers = _merge_tracing_headers(headers)
        return {
            "thread_id": thread_id,
            "headers": headers,
            "input": wire_input,
            "config": sanitized,
            "metadata": kwargs.get("metadata"),
        }

    def stream_events(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        version: str = "v2",
        control: Any = None,
        transformers: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        **kwargs: Any,
    ) -> RemoteRunStream:
        """``version="v3"``: a run stream of the server's thread stream (use ``with``)."""
        if version != "v3":
            raise NotImplementedError(
                f"RemoteGraph.stream_events(version={version!r}) is not implemented: "
                "use version='v3', or stream(..., stream_mode=...)"
            )
        self._reject_v3_unsupported(
            control=control,
            transformers=transformers,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            extra_kwargs=kwargs,
        )
        args = self._v3_args(input, config, kwargs)
        client = self._sync()
        sdk_thread = client.threads.stream(
            thread_id=args["thread_id"], assistant_id=self.assistant_id, headers=args["headers"]
        )
        return RemoteRunStream(
            sync_client=client,
            sdk_thread=sdk_thread,
            input=args["input"],
            config=args["config"],
            metadata=args["metadata"],
        )

    async def astream_events(  # type: ignore[override]  # LangGraph's signature, not Runnable's
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        version: str = "v2",
        control: Any = None,
        transformers: Any = None,
        interrupt_before: Any = None,
        interrupt_after: Any = None,
        **kwargs: Any,
    ) -> AsyncRemoteRunStream:
        """``version="v3"``: an async run stream of the server's thread stream."""
        if version != "v3":
            raise NotImplementedError(
                f"RemoteGraph.astream_events(version={version!r}) is not implemented: "
                "use version='v3', or astream(..., stream_mode=...)"
            )
        self._reject_v3_unsupported(
            control=control,
            transformers=transformers,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            extra_kwargs=kwargs,
        )
        args = self._v3_args(input, config, kwargs)
        client = self._async()
        sdk_thread = client.threads.stream(
            thread_id=args["thread_id"], assistant_id=self.assistant_id, headers=args["headers"]
        )
        return AsyncRemoteRunStream(
            client=client,
            sdk_thread=sdk_thread,
            input=args["input"],
            config=args["config"],
            metadata=args["metadata"],
        )


def _parent_resume(configurable: Mapping[str, Any]) -> Any:
    """The answer the parent run holds for this node's pending remote interrupt, if any."""
    scope = configurable.get(CONFIG_KEY_SCOPE)
    box = getattr(scope, "resume_box", None)
    if box is None or not getattr(box, "has_value", False):
        return _MISSING
    found, value = box.take("")
    return value if found else _MISSING

