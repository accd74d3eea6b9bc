"""``run_head``: the thread's head as a run left it, taken from the run itself (what the
server stores as a thread's values, status and pending questions after each run,
instead of reading the state back). Each case runs a graph with the run-ended hook,
then compares ``run_head`` with what ``get_state`` reads from the saver (memory, SQLite
and PostgreSQL)."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any

import pytest
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import MemorySaver
from threadloom.checkpoint.postgres import PostgresSaver
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.constants import CONFIG_KEY_RUN_ENDED
from threadloom.func import entrypoint, task
from threadloom.graph import END, START, StateGraph
from threadloom.graph.thread_state import RunHead, run_head
from threadloom.types import Command, Send, interrupt


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    pair: tuple[int, int]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def saver(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "memory":
        yield MemorySaver()
    elif request.param == "sqlite":
        with SqliteSaver.from_conn_string(str(tmp_path / "head.db")) as sqlite:
            yield sqlite
    else:  # the server's saver on PostgreSQL (skips without one, fails under CI=true)
        url = request.getfixturevalue("postgres_schema_url")
        with PostgresSaver.from_conn_string(url) as postgres:
            postgres.setup()
            yield postgres


def _run(graph: Any, value: Any, thread: str) -> tuple[RunHead | None, RunHead]:
    """Run ``graph`` on ``value``; (the head from the run, the head read back)."""
    ended: list[Any] = []
    graph.invoke(value, {"configurable": {"thread_id": thread, CONFIG_KEY_RUN_ENDED: ended.append}})
    assert len(ended) == 1
    read = RunHead.of(graph.get_state({"configurable": {"thread_id": thread}}))
    return run_head(graph, ended[0]), read


def _note(text: str) -> Any:
    return lambda state: {"log": [text], "pair": (len(state.get("log", [])), 1)}


def _asking(name: str) -> Any:
    def node(state: State) -> State:
        answer = interrupt({"question": name})
        return {"log": [f"{name}:{answer}"]}
    return node


def _chain(saver: Any, **compile_args: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("a", _note("a"))
    builder.add_node("ask", _asking("ask"))
    builder.add_node("b", _note("b"))
    builder.add_edge(START, "a")
    builder.add_edge("a", "ask")
    builder.add_edge("ask", "b")
    builder.add_edge("b", END)
    return builder.compile(checkpointer=saver, **compile_args)


def test_a_run_paused_by_interrupt_then_done(saver: Any) -> None:
    graph = _chain(saver)
    thread = str(uuid.uuid4())
    mine, read = _run(graph, {"log": ["start"]}, thread)
    assert read.next == ("ask",) and read.interrupts
    assert mine == read
    mine, read = _run(graph, Command(resume="yes"), thread)
    assert read.next == () and read.values["log"][-2:] == ["ask:yes", "b"]
    assert mine == read


def test_a_run_paused_before_a_node(saver: Any) -> None:
    builder = StateGraph(State)
    builder.add_node("a", _note("a"))
    builder.add_node("b", _note("b"))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    graph = builder.compile(checkpointer=saver, interrupt_before=["b"])
    thread = str(uuid.uuid4())
    mine, read = _run(graph, {"log": []}, thread)
    assert read.next == ("b",) and not read.interrupts
    assert mine == read
    mine, read = _run(graph, None, thread)
    assert mine == read and read.next == ()


def _fan_out(saver: Any, finished: bool) -> Any:
    """START -> (x, y[, done]) in one step; x and y ask, ``done`` finishes."""
    builder = StateGraph(State)
    builder.add_node("x", _asking("x"))
    builder.add_node("y", _asking("y"))
    builder.add_edge(START, "x")
    builder.add_edge(START, "y")
    if finished:
        builder.add_node("done", _note("done"))
        builder.add_edge(START, "done")
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("finished", [False, True], ids=["all-ask", "one-finishes"])
def test_parallel_questions_answered_one_at_a_time(saver: Any, finished: bool) -> None:
    graph = _fan_out(saver, finished)
    thread = str(uuid.uuid4())
    mine, read = _run(graph, {"log": ["start"]}, thread)
    assert read.next == ("x", "y") and len(read.interrupts) == 2
    assert mine == read  # a sibling that finished shows its writes in both
    first = read.interrupts[0]
    mine, read = _run(graph, Command(resume={first.id: "ok"}), thread)
    assert len(read.interrupts) == 1 and read.interrupts[0].id != first.id
    assert mine == read
    mine, read = _run(graph, Command(resume={read.interrupts[0].id: "ok"}), thread)
    assert mine == read and read.next == ()


def test_sent_tasks_that_ask(saver: Any) -> None:
    builder = StateGraph(State)
    builder.add_node("ask", lambda arg: {"log": [f"{arg}:{interrupt(arg)}"]})
    builder.add_node("plain", _note("plain"))
    builder.add_conditional_edges(START, lambda s: [Send("ask", i) for i in range(3)]
                                  + ["plain"])
    graph = builder.compile(checkpointer=saver)
    thread = str(uuid.uuid4())
    mine, read = _run(graph, {"log": []}, thread)
    assert len(read.interrupts) == 3
    assert mine == read  # the Send packets' tasks listed first, as get_state lists them


def test_tasks_in_the_order_get_state_lists_them(saver: Any) -> None:
    """Nodes added out of name order (legal, then finance) beside Send packets: the
    head lists the Send packets' tasks first, then the nodes in the order they were added,
    as get_state does; also for a run from a checkpoint update_state made."""
    builder = StateGraph(State)
    builder.add_node("legal", _asking("legal"))
    builder.add_node("finance", _asking("finance"))
    builder.add_node("sent", lambda arg: {"log": [f"{arg}:{interrupt(arg)}"]})
    builder.add_conditional_edges(
        START, lambda s: ["legal", "finance", Send("sent", "s1"), Send("sent", "s0")])
    graph = builder.compile(checkpointer=saver)
    thread = str(uuid.uuid4())
    mine, read = _run(graph, {"log": []}, thread)
    assert read.next == ("sent", "sent", "legal", "finance")
    assert mine == read
    legal = next(i for i in read.interrupts if i.value == {"question": "legal"})
    mine, read = _run(graph, Command(resume={legal.id: "ok"}), thread)
    assert read.next == ("sent", "sent", "finance") and mine == read
    # a checkpoint update_state made records no updated channels: the run from it
    # plans every node in the order they were added (so pauses them in that order)
    thread = str(uuid.uuid4())
    graph.update_state({"configurable": {"thread_id": thread}}, {"log": ["edited"]},
                       as_node=START)
    mine, read = _run(graph, None, thread)
    assert read.next == ("sent", "sent", "legal", "finance") and mine == read
    assert [i.value for i in read.interrupts] == [
        "s1", "s0", {"question": "legal"}, {"question": "finance"}]


def test_a_subgraph_that_asks(saver: Any) -> None:
    child = StateGraph(State)
    child.add_node("inner", _asking("inner"))
    child.add_edge(START, "inner")
    builder = StateGraph(State)
    builder.add_node("sub", child.compile())
    builder.add_node("after", _note("after"))
    builder.add_edge(START, "sub")
    builder.add_edge("sub", "after")
    graph = builder.compile(checkpointer=saver)
    thread = str(uuid.uuid4())
    mine, read = _run(graph, {"log": []}, thread)
    assert read.next == ("sub",) and read.interrupts
    assert mine == read
    mine, read = _run(graph, Command(resume="fine"), thread)
    assert mine == read and read.values["log"] == ["inner:fine", "after"]


def test_runs_it_cannot_vouch_for_read_the_state_back(saver: Any) -> None:
    """After a step (interrupt_after) and with tasks called from tasks, run_head gives
    nothing: the caller reads the state."""
    graph = _chain(saver, interrupt_after=["a"])
    mine, read = _run(graph, {"log": []}, str(uuid.uuid4()))
    assert mine is None and read.next == ("ask",)

    @task
    def question(topic: str) -> str:
        return str(interrupt(topic))

    @entrypoint(checkpointer=saver)
    def flow(topic: str) -> str:
        return question(topic).result()

    mine, read = _run(flow, "tea?", str(uuid.uuid4()))
    assert read.interrupts and (mine is None or mine == read)


def test_a_run_from_a_past_checkpoint_reads_the_state_back(saver: Any) -> None:
    """A run started from a given checkpoint (a replay or a fork) leaves run_head
    nothing to vouch for: the caller reads the head (here the fork the replay saved)."""
    builder = StateGraph(State)
    builder.add_node("a", _note("a"))
    builder.add_edge(START, "a")
    graph = builder.compile(checkpointer=saver)
    thread = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread}}
    graph.invoke({"log": ["first"]}, config)
    graph.invoke({"log": ["second"]}, config)
    past = [s for s in graph.get_state_history(config) if not s.next][-1]
    ended: list[Any] = []
    graph.invoke(None, {"configurable": {**past.config["configurable"],
                                         CONFIG_KEY_RUN_ENDED: ended.append}})
    read = RunHead.of(graph.get_state(config))
    assert read.values["log"] == ["first", "a"] and read.next == ()
    assert run_head(graph, ended[0]) is None


def test_without_a_checkpointer_there_is_no_head() -> None:
    builder = StateGraph(State)
    builder.add_node("a", _note("a"))
    builder.add_edge(START, "a")
    graph = builder.compile()
    ended: list[Any] = []
    graph.invoke({"log": []}, {"configurable": {CONFIG_KEY_RUN_ENDED: ended.append}})
    assert run_head(graph, ended[0]) is None
