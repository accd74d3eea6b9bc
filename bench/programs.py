"""The benchmark programs, each written once against an ``Api`` namespace.

Every builder takes the library's names (``bench.api.Api``) so the very same code runs on
threadloom and on LangGraph. States that need ``add_messages`` are made with the
functional ``TypedDict`` form, because the reducer comes from the library at hand.
"""

import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from bench.api import Api
from bench.fake_model import TurnsChatModel, lookup

State = dict[str, Any]
Graph = Any  # a compiled graph of either library


def thread(thread_id: str, **extra: Any) -> dict[str, Any]:
    """A run config for ``thread_id``; the recursion limit allows 100-turn agent loops."""
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 10_000, **extra}


def messages_state(api: Api, name: str, **fields: Any) -> Any:
    return TypedDict(name, {"messages": Annotated[list, api.add_messages], **fields})


# -- (1) a chain of no-op nodes, and (7) its 1,000-node version for compile time ---------


class Counter(TypedDict):
    n: int


def _bump(state: Counter) -> dict[str, int]:
    return {"n": state["n"] + 1}


def chain_builder(api: Api, length: int) -> Any:
    """START -> s0 -> s1 -> ... -> END; each node only adds one to ``n``."""
    builder = api.StateGraph(Counter)
    previous = api.START
    for i in range(length):
        builder.add_node(f"s{i}", _bump)
        builder.add_edge(previous, f"s{i}")
        previous = f"s{i}"
    builder.add_edge(previous, api.END)
    return builder


def chain_graph(api: Api, checkpointer: Any = None, length: int = 10) -> Graph:
    return chain_builder(api, length).compile(checkpointer=checkpointer)


def run_chain(graph: Graph, thread_id: str) -> State:
    return graph.invoke({"n": 0}, thread(thread_id))


# -- (2) the seed's approval cycle and the inline interrupt cycle ------------------------


def _draft(state: State) -> State:
    return {"messages": [AIMessage("Draft: Dear client, here is the report...", id="draft")]}


def _send(state: State) -> State:
    return {"messages": [AIMessage(f"Email sent: {state['messages'][-1].content}")]}


def approval_graph(
    api: Api, checkpointer: Any, draft: Any = _draft, send: Any = _send
) -> Graph:
    """draft -> send, paused before ``send`` (the seed's email-approval workflow)."""
    builder = api.StateGraph(messages_state(api, "ApprovalState", approved=bool))
    builder.add_node("draft", draft)
    builder.add_node("send", send)
    builder.add_edge(api.START, "draft")
    builder.add_edge("draft", "send")
    builder.add_edge("send", api.END)
    return builder.compile(checkpointer=checkpointer, interrupt_before=["send"])


async def _adraft(state: State) -> State:
    return _draft(state)


async def _asend(state: State) -> State:
    return _send(state)


def async_approval_graph(api: Api, checkpointer: Any) -> Graph:
    """``approval_graph`` with its two nodes written ``async def``, as an asyncio program
    writes them: under the async API a sync node runs in a worker thread (both libraries
    do this, so that a node that blocks never stalls the event loop), an async one on
    the loop."""
    return approval_graph(api, checkpointer, _adraft, _asend)


def run_approval_cycle(api: Api, graph: Graph, thread_id: str) -> State:
    """Run to the pause, inspect it, edit the draft as ``draft``, resume to the end.

    Returns what a caller sees along the way, for the libraries' outputs to be compared."""
    config = thread(thread_id)
    paused = graph.invoke({"messages": [HumanMessage("Send the quarterly report.")]}, config)
    snapshot = graph.get_state(config)
    edited = AIMessage("Dear client, the report is attached.", id="draft")
    graph.update_state(config, {"messages": [edited], "approved": True}, as_node="draft")
    final = graph.invoke(None, config)
    return {"paused": paused, "snapshot": snapshot, "final": final}


async def arun_approval_cycle(api: Api, graph: Graph, thread_id: str) -> State:
    """``run_approval_cycle`` through the async API (``ainvoke``, ``aget_state``, ...)."""
    config = thread(thread_id)
    paused = await graph.ainvoke(
        {"messages": [HumanMessage("Send the quarterly report.")]}, config
    )
    snapshot = await graph.aget_state(config)
    edited = AIMessage("Dear client, the report is attached.", id="draft")
    await graph.aupdate_state(config, {"messages": [edited], "approved": True}, as_node="draft")
    final = await graph.ainvoke(None, config)
    return {"paused": paused, "snapshot": snapshot, "final": final}


def interrupt_graph(api: Api, checkpointer: Any) -> Graph:
    """draft -> review (calls ``interrupt()``) -> send."""

    def review(state: State) -> State:
        decision = api.interrupt({"draft": state["messages"][-1].content})
        return {"approved": decision == "approve"}

    def send(state: State) -> State:
        verdict = "sent" if state["approved"] else "discarded"
        return {"messages": [AIMessage(f"Email {verdict}.")]}

    builder = api.StateGraph(messages_state(api, "ReviewState", approved=bool))
    builder.add_node("draft", _draft)
    builder.add_node("review", review)
    builder.add_node("send", send)
    builder.add_edge(api.START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "send")
    builder.add_edge("send", api.END)
    return builder.compile(checkpointer=checkpointer)


def run_interrupt_cycle(api: Api, graph: Graph, thread_id: str) -> State:
    """Run to ``interrupt()``, resume with ``Command(resume="approve")``."""
    config = thread(thread_id)
    paused = graph.invoke({"messages": [HumanMessage("Send the quarterly report.")]}, config)
    final = graph.invoke(api.Command(resume="approve"), config)
    return {"paused": paused, "final": final}


# -- (3) a tool-calling agent loop ---------------------------------------------------------


def agent_graph(
    api: Api, checkpointer: Any, turns: int, model_clock: list[float] | None = None
) -> Graph:
    """agent -> tools -> agent ... until the model stops calling tools. ``model_clock``:
    a two-item list the seconds spent in the chat model's ``invoke`` are added to, wall
    clock (``time.perf_counter``) first, then CPU time (``time.process_time``)."""
    model = TurnsChatModel(turns=turns)

    def agent(state: State) -> State:
        if model_clock is None:
            return {"messages": [model.invoke(state["messages"])]}
        start, cpu = time.perf_counter(), time.process_time()
        reply = model.invoke(state["messages"])
        model_clock[1] += time.process_time() - cpu
        model_clock[0] += time.perf_counter() - start
        return {"messages": [reply]}

    def tools(state: State) -> State:
        calls = state["messages"][-1].tool_calls
        return {
            "messages": [
                ToolMessage(lookup.invoke(c["args"]), tool_call_id=c["id"], name=c["name"])
                for c in calls
            ]
        }

    def route(state: State) -> str:
        return "tools" if state["messages"][-1].tool_calls else api.END

    builder = api.StateGraph(messages_state(api, "AgentState"))
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(api.START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", api.END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def run_agent(graph: Graph, thread_id: str) -> State:
    return graph.invoke(
        {"messages": [HumanMessage("Check stock for every item.")]}, thread(thread_id)
    )


def agent_steps(turns: int) -> int:
    """Node steps of one agent run: a model call and a tool call per turn, one last answer."""
    return 2 * turns + 1


# -- (4) a Send fan-out gathered by an operator.add reducer ------------------------------


class FanState(TypedDict):
    results: Annotated[list, operator.add]
    total: int


def fanout_graph(api: Api, checkpointer: Any = None, width: int = 100) -> Graph:
    def plan(state: FanState) -> State:
        return {"total": 0}

    def fan(state: FanState) -> list[Any]:
        return [api.Send("work", {"i": i}) for i in range(width)]

    def work(arg: State) -> State:
        return {"results": [arg["i"] * arg["i"]]}

    def gather(state: FanState) -> State:
        return {"total": sum(state["results"])}

    builder = api.StateGraph(FanState)
    builder.add_node("plan", plan)
    builder.add_node("work", work)
    builder.add_node("gather", gather)
    builder.add_edge(api.START, "plan")
    builder.add_conditional_edges("plan", fan, ["work"])
    builder.add_edge("work", "gather")
    builder.add_edge("gather", api.END)
    return builder.compile(checkpointer=checkpointer)


def run_fanout(graph: Graph, thread_id: str) -> State:
    return graph.invoke({"results": []}, thread(thread_id))


# -- (5) a 100-key state, 10 nodes each updating a few keys --------------------------------

WIDE_KEYS = 100
WIDE_NODES = 10

WideState = TypedDict("WideState", {f"k{i}": int for i in range(WIDE_KEYS)})  # type: ignore[misc]


def _wide_node(j: int) -> Callable[[State], State]:
    keys = [f"k{j + WIDE_NODES * m}" for m in range(3)]

    def node(state: State) -> State:
        return {k: state[k] + j + 1 for k in keys}

    return node


def wide_graph(api: Api, checkpointer: Any = None) -> Graph:
    builder = api.StateGraph(WideState)
    previous = api.START
    for j in range(WIDE_NODES):
        builder.add_node(f"w{j}", _wide_node(j))
        builder.add_edge(previous, f"w{j}")
        previous = f"w{j}"
    builder.add_edge(previous, api.END)
    return builder.compile(checkpointer=checkpointer)


def run_wide(graph: Graph, thread_id: str) -> State:
    return graph.invoke({f"k{i}": i for i in range(WIDE_KEYS)}, thread(thread_id))


# -- (6) reads on a thread with many checkpoints ----------------------------------------


def chat_graph(api: Api, checkpointer: Any) -> Graph:
    """One node that answers each human message; each invoke adds two checkpoints."""

    def reply(state: State) -> State:
        return {
            "messages": [AIMessage(f"Reply {state['turn']}: noted.")],
            "turn": state["turn"] + 1,
        }

    builder = api.StateGraph(messages_state(api, "ChatState", turn=int))
    builder.add_node("reply", reply)
    builder.add_edge(api.START, "reply")
    builder.add_edge("reply", api.END)
    return builder.compile(checkpointer=checkpointer)


def fill_history(graph: Graph, thread_id: str, checkpoints: int) -> int:
    """Invoke until the thread holds at least ``checkpoints`` checkpoints (each invoke adds
    the same number: its input, its start and its reply); returns how many it holds."""
    config = thread(thread_id)

    def held() -> int:
        return sum(1 for _ in graph.get_state_history(config))

    def say(i: int) -> None:
        update: State = {"messages": [HumanMessage(f"Message {i}: please note this.")]}
        if i == 0:
            update["turn"] = 0
        graph.invoke(update, config)

    say(0)
    for i in range(1, -(-checkpoints // held())):  # ceil: as many invokes as needed
        say(i)
    return held()


def read_state(graph: Graph, thread_id: str) -> Any:
    return graph.get_state(thread(thread_id))


def read_history(graph: Graph, thread_id: str, limit: int = 10) -> list[Any]:
    return list(graph.get_state_history(thread(thread_id), limit=limit))
