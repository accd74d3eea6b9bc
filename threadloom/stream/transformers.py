"""The built-in stream transformers of ``stream_events(version="v3")``.

Registered on every run: ``ValuesTransformer`` (``run.values``, the run's output),
``MessagesTransformer`` (``run.messages``: one ``ChatModelStream`` per model call),
``LifecycleTransformer`` (``run.lifecycle``: subgraphs starting and ending) and
``SubgraphTransformer`` (``run.subgraphs``: a handle per direct child subgraph).

Opt in with ``transformers=[...]``: ``CustomTransformer``, ``UpdatesTransformer``,
``CheckpointsTransformer``, ``DebugTransformer``, ``TasksTransformer`` (the raw
payloads of those stream modes, at the run's own namespace).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

from threadloom.errors import GraphInterrupt
from threadloom.stream.base import ProtocolEvent, StreamTransformer
from threadloom.stream.lifecycle_names import TasksLifecycleSurface
from threadloom.stream.stream_channel import StreamChannel

__all__ = [
    "CheckpointsTransformer",
    "CustomTransformer",
    "DebugTransformer",
    "LifecyclePayload",
    "LifecycleTransformer",
    "MessagesTransformer",
    "SubgraphStatus",
    "SubgraphTransformer",
    "TasksTransformer",
    "UpdatesTransformer",
    "ValuesTransformer",
]


SubgraphStatus = Literal["started", "completed", "failed", "interrupted"]
"""Where a subgraph's run stands, as the lifecycle transformers report it."""


def _namespace(event: ProtocolEvent) -> tuple[str, ...]:
    return tuple(event["params"]["namespace"])


# -- raw mode projections -------------------------------------------------------------


class _ModeTransformer(StreamTransformer):
    """Collects the payloads of one stream mode emitted at this transformer's scope."""

    _native: ClassVar[bool] = True
    mode: ClassVar[str]

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Any] = StreamChannel()

    def init(self) -> dict[str, Any]:
        return {self.mode: self._log}

    def process(self, event: ProtocolEvent) -> bool:
        if event["method"] == self.mode and _namespace(event) == self.scope:
            self._log.push(event["params"]["data"])
        return True


class CustomTransformer(_ModeTransformer):
    """``run.custom``: what nodes wrote with their stream writer."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("custom",)
    mode = "custom"


class UpdatesTransformer(_ModeTransformer):
    """``run.updates``: ``{node: update}`` per finished task."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("updates",)
    mode = "updates"


class CheckpointsTransformer(_ModeTransformer):
    """``run.checkpoints``: each saved checkpoint."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("checkpoints",)
    mode = "checkpoints"


class DebugTransformer(_ModeTransformer):
    """``run.debug``: checkpoint, task and task_result debug records."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("debug",)
    mode = "debug"


class TasksTransformer(_ModeTransformer):
    """``run.tasks``: task start and task result payloads."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("tasks",)
    mode = "tasks"


# -- values ---------------------------------------------------------------------------


class ValuesTransformer(StreamTransformer):
    """``run.values``: the state after each step; remembers the last one and interrupts."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("values",)
    _native: ClassVar[bool] = True

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Any] = StreamChannel()
        self._latest: Any = None
        self._has_latest = False
        self._interrupted = False
        self._interrupts: list[Any] = []

    def init(self) -> dict[str, Any]:
        return {"values": self._log}

    def process(self, event: ProtocolEvent) -> bool:
        if event["method"] != "values" or _namespace(event) != self.scope:
            return True
        params = event["params"]
        self._latest = params["data"]
        self._has_latest = True
        interrupts = params.get("interrupts")
        if interrupts:
            self._interrupted = True
            self._interrupts = list(interrupts)
        self._log.push(params["data"])
        return True


# -- messages -------------------------------------------------------------------------


class MessagesTransformer(StreamTransformer):
    """``run.messages``: a ``ChatModelStream`` per AI message produced at this scope.

    ``messages`` events carry ``(protocol_event, metadata)``: a ``message-start`` opens
    a stream (keyed by the model call's ``run_id``), the following events of that run
    are dispatched to it, ``message-finish`` ends it. A whole ``AIMessage`` (a node
    returned it without a streamed model call) becomes a complete stream at once.
    Messages of other roles and legacy ``AIMessageChunk`` tokens are not projected.
    """

    required_stream_modes: ClassVar[tuple[str, ...]] = ("messages",)
    _native: ClassVar[bool] = True

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Any] = StreamChannel()
        self._by_run: dict[Any, Any] = {}
        self._ignored_runs: set[Any] = set()
        self._pump_fn: Callable[[], Any] | None = None

    def init(self) -> dict[str, Any]:
        return {"messages": self._log}

    def _bind_pump(self, pump: Callable[[], Any] | None) -> None:
        self._pump_fn = pump

    def _new_stream(self, message_id: Any, meta: dict[str, Any]) -> Any:
        from langchain_core.language_models.chat_model_stream import (
            AsyncChatModelStream,
            ChatModelStream,
        )

        is_async = bool(self._log._is_async)
        kind = AsyncChatModelStream if is_async else ChatModelStream
        stream = kind(namespace=list(self.scope), node=meta.get("langgraph_node"),
                      message_id=None if message_id is None else str(message_id))
        if self._pump_fn is not None:
            if isinstance(stream, AsyncChatModelStream):
                stream.set_arequest_more(self._pump_fn)
            else:
                stream.set_request_more(self._pump_fn)
        return stream

    def _open(self, message_id: Any, meta: dict[str, Any]) -> Any:
        stream = self._new_stream(message_id, meta)
        if not self._log._closed:
            self._log.push(stream)
        return stream

    def process(self, event: ProtocolEvent) -> bool:
        if event["method"] != "messages" or _namespace(event) != self.scope:
            return True
        data = event["params"]["data"]
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            return True
        payload, meta = data
        meta = meta if isinstance(meta, dict) else {}
        if isinstance(payload, dict) and "event" in payload:
            self._route(payload, meta)
        else:
            self._whole(payload, meta)
        return True

    def _route(self, payload: dict[str, Any], meta: dict[str, Any]) -> None:
        kind = payload["event"]
        key = meta.get("run_id") or payload.get("message_id") or payload.get("id")
        if kind == "message-start":
            if payload.get("role", "ai") != "ai":
                self._ignored_runs.add(key)
                return
            message_id = payload.get("message_id") or payload.get("id") or key
            self._by_run[key] = self._open(message_id, meta)
        if key in self._ignored_runs:
            if kind in ("message-finish", "error"):
                self._ignored_runs.discard(key)
            return
        stream = self._by_run.get(key)
        if stream is None:
            return  # no message-start seen for this run
        stream.dispatch(payload)
        if kind in ("message-finish", "error"):
            self._by_run.pop(key, None)

    def _whole(self, message: Any, meta: dict[str, Any]) -> None:
        from langchain_core.language_models._compat_bridge import message_to_events
        from langchain_core.messages import AIMessage, AIMessageChunk

        if not isinstance(message, AIMessage) or isinstance(message, AIMessageChunk):
            return
        stream = self._open(message.id, meta)
        for protocol_event in message_to_events(message, message_id=message.id):
            stream.dispatch(protocol_event)

    def finalize(self) -> None:
        self._by_run.clear()
        self._ignored_runs.clear()

    def fail(self, err: BaseException) -> None:
        for stream in self._by_run.values():
            if not stream.done:
                stream.fail(err)
        self._by_run.clear()
        self._ignored_runs.clear()


# -- subgraph lifecycle ---------------------------------------------------------------


class LifecyclePayload(TypedDict):
    """One ``run.lifecycle`` item."""

    event: Literal["started", "completed", "failed", "interrupted"]
    namespace: list[str]
    graph_name: str | None
    trigger_call_id: str | None
    cause: NotRequired[dict[str, Any]]
    error: NotRequired[str]


def _tool_call_id(task_input: Any) -> str | None:
    """The id of the tool call a (tool-node) task was started for, if it shows."""
    if isinstance(task_input, dict):
        call = task_input.get("tool_call")
        if isinstance(call, dict) and call.get("id"):
            call_id: str = call["id"]
            return call_id
        return None
    if isinstance(task_input, (list, tuple)):
        for item in task_input:
            if isinstance(item, dict) and item.get("id"):
                item_id: str = item["id"]
                return item_id
    return None


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    return error if isinstance(error, str) else str(error)


class _TasksLifecycleBase(TasksLifecycleSurface, StreamTransformer):
    """Infers subgraph starts and ends from ``tasks`` events.

    A subgraph at namespace ``(..., "node:task_id")`` has *started* when the first
    ``tasks`` event under that namespace arrives, and *ends* when the task that runs it
    (``task_id`` in the parent namespace) reports its result: interrupted if it has
    interrupts, failed if it has an error, else completed. Subclasses decide which
    namespaces to track (``_should_track``) and what to do on each transition
    (``_on_started`` — the cause, if known, is in ``self._pending_cause`` — and
    ``_on_terminal``).

    Each task start records the agent name its config carries (``lc_agent_name``, set
    by LangChain's ``create_agent(name=...)``; the first start in a namespace names it)
    and its input (to find the tool call a nested agent was started for). The private
    names LangChain's own subclass uses are in :mod:`threadloom.stream.lifecycle_names`.
    """

    required_stream_modes: ClassVar[tuple[str, ...]] = ("tasks",)

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._seen: set[tuple[str, ...]] = set()
        self._open: dict[tuple[str, ...], tuple[str | None, str | None]] = {}
        self._task_inputs: dict[Any, Any] = {}
        self._agent_names: dict[tuple[str, ...], str | None] = {}
        self._pending_cause: dict[str, Any] | None = None

    # hooks
    def _should_track(self, ns: tuple[str, ...]) -> bool:
        return True

    def _on_started(self, ns: tuple[str, ...], graph_name: str | None,
                    trigger_call_id: str | None) -> None:
        raise NotImplementedError

    def _on_terminal(self, ns: tuple[str, ...], status: str, error: str | None) -> None:
        raise NotImplementedError

    # inference
    def _in_scope(self, ns: tuple[str, ...]) -> bool:
        return ns[: len(self.scope)] == self.scope

    def _note_agent_name(self, ns: tuple[str, ...], data: Any) -> None:
        """Record the agent name of a task start in ``ns`` (the first one wins)."""
        if ns in self._agent_names:
            return
        metadata = data.get("metadata") if isinstance(data, dict) else None
        self._agent_names[ns] = (
            metadata.get("lc_agent_name") if isinstance(metadata, dict) else None
        )

    def _note_task_input(self, data: Any) -> None:
        """Keep a started task's input until it reports its result."""
        if isinstance(data, dict) and "input" in data and data.get("id") is not None:
            self._task_inputs[data["id"]] = data["input"]

    def _discover(self, ns: tuple[str, ...], data: Any) -> None:
        if ns in self._seen or len(ns) <= len(self.scope):
            return
        self._seen.add(ns)
        if not self._should_track(ns):
            return
        segment_name, _, trigger_call_id = ns[-1].partition(":")
        graph_name: str | None = segment_name
        cause: dict[str, Any] | None = None
        agent_name = self._agent_names.get(ns)
        if agent_name:
            graph_name = agent_name
            call_id = _tool_call_id(self._task_inputs.get(trigger_call_id))
            if call_id is not None:
                cause = {"type": "toolCall", "tool_call_id": call_id}
        self._open[ns] = (graph_name, trigger_call_id or None)
        self._pending_cause = cause
        try:
            self._on_started(ns, graph_name, trigger_call_id or None)
        finally:
            self._pending_cause = None

    def _close_below(self, ns: tuple[str, ...], status: str,
                     error: str | None) -> list[tuple[tuple[str, ...], str, str | None]]:
        """Close ``ns`` and what is still open below it (deepest first): the transitions."""
        ended = []
        for inner in sorted((o for o in self._open if o[: len(ns)] == ns and o != ns),
                            key=len, reverse=True):
            self._open.pop(inner, None)
            ended.append((inner, status, error))
        if self._open.pop(ns, None) is not None:
            ended.append((ns, status, error))
        return ended

    def _ended_by(self, ns: tuple[str, ...],
                  data: Any) -> list[tuple[tuple[str, ...], str, str | None]]:
        """The subgraphs a task result in ``ns`` ends, closed: ``(namespace, status, error)``."""
        task_id = data.get("id") if isinstance(data, dict) else None
        if task_id is None:
            return []
        self._task_inputs.pop(task_id, None)
        ended = []
        for child in [o for o in self._open if o[:-1] == ns]:
            if child[-1].partition(":")[2] == task_id:
                if data.get("interrupts"):
                    ended += self._close_below(child, "interrupted", None)
                elif data.get("error") is not None:
                    ended += self._close_below(child, "failed", _error_text(data["error"]))
                else:
                    ended += self._close_below(child, "completed", None)
        return ended

    @staticmethod
    def _is_result(data: Any) -> bool:
        return isinstance(data, dict) and ("result" in data or "error" in data
                                           or "interrupts" in data)

    def _handle_tasks(self, event: ProtocolEvent) -> None:
        ns = _namespace(event)
        if not self._in_scope(ns):
            return
        data = event["params"]["data"]
        if not isinstance(data, dict):
            data = {}
        if self._is_result(data):
            self._discover(ns, data)  # a namespace first seen through a result
            for child, status, error in self._ended_by(ns, data):
                self._on_terminal(child, status, error)
        else:
            self._note_agent_name(ns, data)
            self._note_task_input(data)
            self._discover(ns, data)

    def process(self, event: ProtocolEvent) -> bool:
        if event["method"] != "tasks":
            return True
        self._handle_tasks(event)
        return False

    def _close_all(self, status: str, error: str | None) -> None:
        for ns in sorted(self._open, key=len, reverse=True):
            if ns in self._open:
                self._open.pop(ns)
                self._on_terminal(ns, status, error)

    def finalize(self) -> None:
        self._close_all("completed", None)

    def fail(self, err: BaseException) -> None:
        if isinstance(err, GraphInterrupt):
            self._close_all("interrupted", None)
        else:
            self._close_all("failed", str(err))


class LifecycleTransformer(_TasksLifecycleBase):
    """``run.lifecycle``: a ``LifecyclePayload`` when a subgraph (at any depth) starts or ends.

    Folds the ``tasks`` events into these payloads: they leave the main log, and the
    payloads join it as ``lifecycle`` events.
    """

    _native: ClassVar[bool] = True

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._channel: StreamChannel[LifecyclePayload] = StreamChannel("lifecycle")

    def init(self) -> dict[str, Any]:
        return {"lifecycle": self._channel}

    def _on_started(self, ns: tuple[str, ...], graph_name: str | None,
                    trigger_call_id: str | None) -> None:
        payload: dict[str, Any] = {
            "event": "started",
            "namespace": list(ns),
            "graph_name": graph_name,
            "trigger_call_id": trigger_call_id,
        }
        if self._pending_cause is not None:
            payload["cause"] = self._pending_cause
        self._emit(payload)

    def _on_terminal(self, ns: tuple[str, ...], status: str, error: str | None) -> None:
        graph_name, trigger_call_id = self._names.get(ns, (None, None))
        payload: dict[str, Any] = {
            "event": status,
            "namespace": list(ns),
            "graph_name": graph_name,
            "trigger_call_id": trigger_call_id,
        }
        if status == "failed" and error is not None:
            payload["error"] = error
        self._emit(payload)

    @property
    def _names(self) -> dict[tuple[str, ...], tuple[str | None, str | None]]:
        names: dict[tuple[str, ...], tuple[str | None, str | None]] = self.__dict__.setdefault(
            "_started_names", {}
        )
        return names

    def _discover(self, ns: tuple[str, ...], data: Any) -> None:
        super()._discover(ns, data)
        if ns in self._open and ns not in self._names:
            self._names[ns] = self._open[ns]

    def _emit(self, payload: dict[str, Any]) -> None:
        if not self._channel._closed:
            self._channel.push(payload)  # type: ignore[arg-type]


class SubgraphTransformer(_TasksLifecycleBase):
    """``run.subgraphs``: a run-stream handle per direct child subgraph.

    Each handle is backed by a child mux (same transformers, scoped to the subgraph):
    every event under the subgraph's namespace is passed on to it, so
    ``handle.values``, ``handle.messages`` and ``handle.subgraphs`` (grandchildren)
    work like the root run's projections.
    """

    _native: ClassVar[bool] = True
    supports_sync: ClassVar[bool] = True

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Any] = StreamChannel()
        self._handles: dict[tuple[str, ...], Any] = {}
        self._mux: Any = None
        self._ops: list[tuple[str, Any, Any]] = []

    def init(self) -> dict[str, Any]:
        return {"subgraphs": self._log}

    def _on_register(self, mux: Any) -> None:
        self._mux = mux

    def _should_track(self, ns: tuple[str, ...]) -> bool:
        return len(ns) == len(self.scope) + 1

    def _on_started(self, ns: tuple[str, ...], graph_name: str | None,
                    trigger_call_id: str | None) -> None:
        from threadloom.stream.run_stream import AsyncSubgraphRunStream, SubgraphRunStream

        if self._mux is None:
            raise RuntimeError("SubgraphTransformer must be registered on a StreamMux")
        child = self._mux._make_child(ns)
        kind = AsyncSubgraphRunStream if self._mux._is_async else SubgraphRunStream
        handle = kind(child, path=ns, graph_name=graph_name, trigger_call_id=trigger_call_id)
        self._handles[ns] = handle
        if not self._log._closed:
            self._log.push(handle)

    def _on_terminal(self, ns: tuple[str, ...], status: str, error: str | None) -> None:
        handle = self._handles.get(ns)
        if handle is None or handle._seen_terminal:
            return
        handle._seen_terminal = True
        handle.status = status
        handle.error = error
        self._ops.append(("end", handle, (status, error)))

    def _discover(self, ns: tuple[str, ...], data: Any) -> None:
        # a subgraph shows itself by any event below it, however deep
        if len(ns) > len(self.scope) + 1:
            ns = ns[: len(self.scope) + 1]
            data = {}
        super()._discover(ns, data)

    def _route(self, event: ProtocolEvent) -> bool:
        ns = _namespace(event)
        keep = event["method"] != "tasks"
        if not self._in_scope(ns):
            return keep
        if event["method"] == "tasks":
            self._handle_tasks(event)
        if len(ns) > len(self.scope):
            handle = self._handles.get(ns[: len(self.scope) + 1])
            if handle is not None and handle.status == "started":
                self._ops.insert(0, ("push", handle, event))
        return keep

    @staticmethod
    def _live(handle: Any) -> Any:
        mux = handle._mux
        return mux if mux is not None and not mux.closed else None

    def process(self, event: ProtocolEvent) -> bool:
        keep = self._route(event)
        ops, self._ops = self._ops, []
        for op, handle, arg in ops:
            mux = self._live(handle)
            if mux is None:
                continue
            if op == "push":
                mux.push(arg)
            else:
                _end_child_sync(mux, *arg)
        return keep

    async def aprocess(self, event: ProtocolEvent) -> bool:
        keep = self._route(event)
        ops, self._ops = self._ops, []
        for op, handle, arg in ops:
            mux = self._live(handle)
            if mux is None:
                continue
            if op == "push":
                await mux.apush(arg)
            else:
                await _end_child_async(mux, *arg)
        return keep

    def _end_all(self, status: str, error: str | None) -> list[tuple[Any, Any]]:
        self._close_all(status, error)
        ops, self._ops = self._ops, []
        return [(self._live(handle), arg) for _, handle, arg in ops if self._live(handle)]

    def finalize(self) -> None:
        first: BaseException | None = None
        for mux, arg in self._end_all("completed", None):
            try:
                _end_child_sync(mux, *arg)
            except Exception as exc:  # noqa: BLE001 - every child still closes
                first = first or exc
        if first is not None:
            raise first

    async def afinalize(self) -> None:
        first: BaseException | None = None
        for mux, arg in self._end_all("completed", None):
            try:
                await _end_child_async(mux, *arg)
            except Exception as exc:  # noqa: BLE001 - every child still closes
                first = first or exc
        if first is not None:
            raise first

    def fail(self, err: BaseException) -> None:
        interrupted = isinstance(err, GraphInterrupt)
        self._end_all("interrupted" if interrupted else "failed", None if interrupted
                      else str(err))
        for handle in self._handles.values():
            mux = self._live(handle)
            if mux is not None:
                mux.fail(err)

    async def afail(self, err: BaseException) -> None:
        interrupted = isinstance(err, GraphInterrupt)
        self._end_all("interrupted" if interrupted else "failed", None if interrupted
                      else str(err))
        for handle in self._handles.values():
            mux = self._live(handle)
            if mux is not None:
                await mux.afail(err)


def _end_child_sync(mux: Any, status: str, error: str | None) -> None:
    if status == "failed":
        mux.fail(RuntimeError(error or "subgraph failed"))
    else:
        mux.close()


async def _end_child_async(mux: Any, status: str, error: str | None) -> None:
    if status == "failed":
        await mux.afail(RuntimeError(error or "subgraph failed"))
    else:
        await mux.aclose()
