"""The lifecycle surface LangChain's ``SubagentTransformer`` subclasses (``lifecycle_names``).

LangChain 1.5 surfaces nested named agents (``create_agent(name=...)`` run from a tool)
as ``run.subagents`` by subclassing ``langgraph.stream.transformers._TasksLifecycleBase``;
its sync lane calls the base's ``process``, its async lane repeats the base's bookkeeping
through private names. ``NamedRuns`` below uses that surface the same way, on a graph
whose tool node runs a nested graph bound to its own ``lc_agent_name``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from typing_extensions import TypedDict

from threadloom.graph import END, START, MessagesState, StateGraph
from threadloom.stream import StreamChannel
from threadloom.stream.run_stream import AsyncSubgraphRunStream, SubgraphRunStream
from threadloom.stream.transformers import _TasksLifecycleBase
from threadloom.types import Send


class NamedRuns(_TasksLifecycleBase):
    """A handle per direct nested run that carries an agent name."""

    _native = True
    supports_sync = True

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[Any] = StreamChannel()
        self._handles: dict[tuple[str, ...], Any] = {}
        self._mux: Any = None

    def init(self) -> dict[str, Any]:
        return {"named_runs": self._log}

    def _on_register(self, mux: Any) -> None:
        self._mux = mux

    def _should_track(self, ns: tuple[str, ...]) -> bool:
        return len(ns) == len(self.scope) + 1

    def _on_started(self, ns, graph_name, trigger_call_id) -> None:
        if self._lc_by_ns.get(ns) is None:
            return
        child = self._mux._make_child(ns)
        kind = AsyncSubgraphRunStream if child.is_async else SubgraphRunStream
        handle = kind(child, path=ns, graph_name=graph_name, trigger_call_id=trigger_call_id)
        handle.cause = self._pending_cause
        self._handles[ns] = handle
        self._log.push(handle)

    def _mark(self, ns, status) -> Any:
        handle = self._handles.get(ns)
        if handle is None or handle._seen_terminal:
            return None
        handle._seen_terminal = True
        handle.status = status
        return handle

    def _on_terminal(self, ns, status, error) -> None:
        handle = self._mark(ns, status)
        if handle is not None and not handle._mux._events._closed:
            handle._mux.close()

    async def _aon_terminal(self, ns, status, error) -> None:
        handle = self._mark(ns, status)
        if handle is not None and not handle._mux._events._closed:
            await handle._mux.aclose()

    def _handle_for(self, event) -> Any:
        ns = tuple(event["params"]["namespace"])
        handle = self._handles.get(ns[: len(self.scope) + 1]) if len(ns) > len(self.scope) else None
        if handle is None or handle._mux._events._closed:
            return None
        return handle

    def process(self, event) -> bool:
        keep = super().process(event)
        handle = self._handle_for(event)
        if handle is not None:
            handle._observe_event(event)
            handle._mux.push(event)
        return keep

    async def aprocess(self, event) -> bool:
        keep = True
        if event["method"] == "tasks":
            ns = tuple(event["params"]["namespace"])
            data = event["params"]["data"]
            if "result" in data:
                for child_ns, status, error in self._pop_terminal_transitions(ns, data):
                    await self._aon_terminal(child_ns, status, error)
            else:
                self._record_identity(ns, data)
                self._record_pending_tool_calls(data)
                self._handle_task_start(ns, data)
            keep = False
        handle = self._handle_for(event)
        if handle is not None:
            handle._observe_event(event)
            await handle._mux.apush(event)
        return keep


class Call(TypedDict):
    tool_call: dict[str, Any]


def _inner():
    def answer(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("sunny")]}

    return (
        StateGraph(MessagesState).add_node("answer", answer).add_edge(START, "answer")
        .compile().with_config({"metadata": {"lc_agent_name": "weather_agent"}})
    )


def _supervisor():
    inner = _inner()

    def model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("", tool_calls=[
            {"name": "weather", "args": {}, "id": "call_w"}])]}

    def tool(call: Call) -> dict[str, Any]:
        reply = inner.invoke({"messages": [HumanMessage("weather?")]})
        return {"messages": [AIMessage(reply["messages"][-1].content)]}

    def route(state: MessagesState) -> list[Send]:
        return [Send("tool", {"tool_call": c}) for c in state["messages"][-1].tool_calls]

    return (
        StateGraph(MessagesState)
        .add_node("model", model).add_node("tool", tool)
        .add_edge(START, "model").add_conditional_edges("model", route, ["tool"])
        .add_edge("tool", END)
        .compile(transformers=[NamedRuns])
        .with_config({"metadata": {"lc_agent_name": "supervisor"}})
    )


def _check(handles: list[Any]) -> None:
    assert len(handles) == 1
    (handle,) = handles
    assert handle.graph_name == "weather_agent"
    assert handle.cause == {"type": "toolCall", "tool_call_id": "call_w"}
    assert handle.path[0].startswith("tool:")
    assert handle._seen_terminal is True and handle.status == "completed"


def test_a_nested_named_run_surfaces_through_the_sync_lane() -> None:
    run = _supervisor().stream_events({"messages": [HumanMessage("hi")]}, version="v3")
    handles = []
    for handle in run.named_runs:
        handles.append(handle)
        assert handle.output["messages"][-1].content == "sunny"
    _check(handles)
    transformer = run._mux.transformer_by_key("named_runs")
    assert transformer._lc_by_ns[()] == "supervisor"
    assert transformer._lc_by_ns[handles[0].path] == "weather_agent"


async def test_a_nested_named_run_surfaces_through_the_async_lane() -> None:
    run = await _supervisor().astream_events({"messages": [HumanMessage("hi")]}, version="v3")
    handles = []
    async for handle in run.named_runs:
        handles.append(handle)
        events = [e async for e in handle]
        assert any(e["method"] == "values" for e in events)
    assert (await run.output())["messages"][-1].content == "sunny"
    _check(handles)
