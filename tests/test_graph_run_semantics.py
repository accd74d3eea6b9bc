"""Run semantics as LangGraph shows them: what a paused run returns and streams, the order
of stream chunks, the results history shows, and how ``Command`` input starts a run."""

from __future__ import annotations

import operator
import threading
from collections.abc import Sequence
from typing import Annotated, Any, NotRequired

import pytest
from helpers import cfg
from langchain_core.messages import BaseMessage
from typing_extensions import TypedDict

from threadloom.channels import UntrackedValue
from threadloom.checkpoint.memory import MemorySaver
from threadloom.constants import TASKS
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.types import Command, Send, StateUpdate, interrupt


class Log(TypedDict):
    log: Annotated[list, operator.add]


def parallel_asks() -> Any:
    def a(state: Log) -> dict:
        return {"log": [f"a:{interrupt('a?')}"]}

    def b(state: Log) -> dict:
        return {"log": [f"b:{interrupt('b?')}"]}

    def c(state: Log) -> dict:
        return {"log": ["c"]}

    return (
        StateGraph(Log)
        .add_node("a", a).add_node("b", b).add_node("c", c)
        .add_edge(START, "a").add_edge(START, "b").add_edge(START, "c")
        .compile(checkpointer=MemorySaver())
    )


def test_a_paused_run_returns_the_writes_of_the_tasks_that_finished() -> None:
    graph = parallel_asks()
    first = graph.invoke({"log": []}, cfg())
    assert first["log"] == ["c"]  # c finished while a and b paused
    ids = {i.value: i.id for i in first["__interrupt__"]}
    second = graph.invoke(Command(resume={ids["a?"]: "x"}), cfg())
    assert second["log"] == ["a:x", "c"]
    assert [i.value for i in second["__interrupt__"]] == ["b?"]
    # the checkpoint did not advance: the step completes when b is answered
    assert graph.get_state(cfg()).next == ("b",)
    final = graph.invoke(Command(resume={ids["b?"]: "y"}), cfg())
    assert final == {"log": ["a:x", "b:y", "c"]}


def test_the_interrupt_update_comes_before_the_last_values_chunk() -> None:
    graph = parallel_asks()
    chunks = list(graph.stream({"log": []}, cfg(), stream_mode=["updates", "values"]))
    modes = [mode for mode, _ in chunks]
    assert modes[-2:] == ["updates", "values"]
    assert "__interrupt__" in chunks[-2][1]
    assert chunks[-1][1]["log"] == ["c"] and len(chunks[-1][1]["__interrupt__"]) == 2


def test_each_paused_task_streams_its_own_interrupt_update() -> None:
    graph = parallel_asks()
    updates = list(graph.stream({"log": []}, cfg(), stream_mode="updates"))
    asked = sorted(
        tuple(i.value for i in chunk["__interrupt__"])
        for chunk in updates if "__interrupt__" in chunk
    )
    assert asked == [("a?",), ("b?",)]
    assert {"c": {"log": ["c"]}} in updates


def test_no_values_chunk_after_a_step_that_wrote_nothing() -> None:
    class S(TypedDict, total=False):
        x: int

    graph = (
        StateGraph(S)
        .add_node("a", lambda s: {"x": 1})
        .add_node("b", lambda s: None)
        .add_edge(START, "a").add_edge("a", "b")
        .compile()
    )
    assert list(graph.stream({}, stream_mode="values")) == [{"x": 1}]


def test_sync_stream_yields_a_chunk_before_the_next_step_runs() -> None:
    ran: list[str] = []

    def node(name: str) -> Any:
        def run(state: Log) -> dict:
            ran.append(name)
            return {"log": [name]}

        return run

    graph = (
        StateGraph(Log)
        .add_node("a", node("a")).add_node("b", node("b"))
        .add_edge(START, "a").add_edge("a", "b")
        .compile()
    )
    seen = [(chunk["log"], list(ran)) for chunk in graph.stream({"log": []},
                                                                 stream_mode="values")]
    assert seen == [([], []), (["a"], ["a"]), (["a", "b"], ["a", "b"])]


def test_updates_of_a_node_that_wrote_one_key_twice_are_a_list() -> None:
    class S(TypedDict):
        foo: Annotated[str, operator.add]

    graph = (
        StateGraph(S)
        .add_node("a", lambda s: [Command(update={"foo": "1"}), Command(update={"foo": "2"})])
        .add_edge(START, "a")
        .compile()
    )
    assert list(graph.stream({"foo": ""}, stream_mode="updates")) == [
        {"a": [{"foo": "1"}, {"foo": "2"}]}
    ]


def test_history_shows_the_result_of_a_task_that_ran_alone() -> None:
    class S(TypedDict):
        num: int
        log: Annotated[list, operator.add]

    graph = (
        StateGraph(S)
        .add_node("double", lambda s: {"num": s["num"] * 2, "log": ["doubled"]})
        .add_edge(START, "double").add_edge("double", END)
        .compile(checkpointer=MemorySaver())
    )
    graph.invoke({"num": 1, "log": ["in"]}, cfg())
    results = {t.name: t.result for s in graph.get_state_history(cfg()) for t in s.tasks}
    assert results == {"__start__": {"num": 1, "log": ["in"]},
                       "double": {"num": 2, "log": ["doubled"]}}


def test_input_update_on_a_new_thread_is_step_minus_one() -> None:
    class S(TypedDict):
        foo: str

    graph = (
        StateGraph(S)
        .add_node("agent", lambda s: {"foo": "agent"})
        .add_edge(START, "agent")
        .compile(checkpointer=MemorySaver())
    )
    graph.bulk_update_state(cfg(), [[StateUpdate({"foo": "in"}, "__input__")],
                                    [StateUpdate({"foo": "in"}, "__start__")]])
    steps = [s.metadata["step"] for s in graph.get_state_history(cfg())]
    assert steps == [0, -1]


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_each_resume_with_an_update_applies_its_update(durability: str) -> None:
    def ask_three_times(state: Log) -> dict:
        answers = [interrupt(str(q)) for q in range(1, 4)]
        return {"log": ["a:" + "".join(answers)]}

    graph = (
        StateGraph(Log)
        .add_node("a", ask_three_times).add_edge(START, "a")
        .compile(checkpointer=MemorySaver())
    )
    result = graph.invoke({"log": []}, cfg(), durability=durability)
    for i in range(1, 4):
        result = graph.invoke(Command(resume=str(i), update={"log": [f"u{i}"]}), cfg(),
                              durability=durability)
    assert sorted(result["log"]) == ["a:123", "u1", "u2", "u3"]
    assert sorted(graph.get_state(cfg()).values["log"]) == sorted(result["log"])


def test_an_answer_for_a_thread_that_never_ran_starts_the_graph() -> None:
    def ask(state: Log) -> dict:
        return {"log": [f"a:{interrupt('q')}"]}

    graph = (
        StateGraph(Log).add_node("a", ask).add_edge(START, "a")
        .compile(checkpointer=MemorySaver())
    )
    assert graph.invoke(Command(resume="x"), cfg()) == {"log": ["a:x"]}


class SeqMessages(TypedDict):
    messages: Annotated[Sequence[BaseMessage], add_messages]


def test_a_sequence_of_messages_key_reduces_its_first_write() -> None:
    from langchain_core.messages import HumanMessage

    S = SeqMessages
    seen: list[Any] = []
    graph = (
        StateGraph(S).add_node("a", lambda s: seen.append(s["messages"]))
        .add_edge(START, "a").compile()
    )
    graph.invoke({"messages": "hello"})
    assert [type(m) for m in seen[0]] == [HumanMessage]
    assert seen[0][0].content == "hello" and seen[0][0].id


def test_messages_a_node_hands_back_from_its_input_are_not_streamed() -> None:
    from langchain_core.messages import AIMessage

    from threadloom.graph import MessagesState

    graph = (
        StateGraph(MessagesState)
        .add_node("a", lambda s: {"messages": AIMessage("hi", id="1")})
        .add_node("b", lambda s: s)
        .add_edge(START, "a").add_edge("a", "b")
        .compile()
    )
    chunks = list(graph.stream({"messages": "hey"}, {"configurable": {"thread_id": "t1"}},
                               stream_mode="messages"))
    assert [(m.id, meta["langgraph_node"]) for m, meta in chunks] == [("1", "a")]
    meta = chunks[0][1]
    assert meta["ls_integration"] == "langgraph" and meta["thread_id"] == "t1"


def test_a_subgraphs_private_keys_stay_out_of_the_parent() -> None:
    class Sub(TypedDict):
        log: Annotated[list, operator.add]
        private: str

    sub = (
        StateGraph(Sub).add_node("s", lambda s: {"log": ["s"], "private": "p"})
        .add_edge(START, "s").compile()
    )
    graph = StateGraph(Log).add_node("sub", sub).add_edge(START, "sub").compile()
    assert list(graph.stream({"log": []}, stream_mode="updates")) == [{"sub": {"log": ["s"]}}]
    assert graph.invoke({"log": []}) == {"log": ["s"]}


def test_naming_the_head_checkpoint_resumes_without_a_fork() -> None:
    def ask(state: Log) -> dict:
        first = interrupt("1?")
        second = interrupt("2?")
        return {"log": [first, second]}

    graph = (
        StateGraph(Log).add_node("a", ask).add_edge(START, "a")
        .compile(checkpointer=MemorySaver())
    )
    graph.invoke({"log": []}, cfg())
    graph.invoke(Command(resume="x"), graph.get_state(cfg()).config)
    result = graph.invoke(Command(resume="y"), graph.get_state(cfg()).config)
    assert result == {"log": ["x", "y"]}
    sources = [s.metadata["source"] for s in graph.get_state_history(cfg())]
    assert "fork" not in sources


def test_a_replayed_run_gives_a_stateful_subgraph_its_state_on_that_branch() -> None:
    class Sub(TypedDict):
        value: Annotated[list, operator.add]

    observed: list[Any] = []

    def step(state: Sub) -> dict:
        observed.append(list(state["value"]))
        return {"value": ["s"]}

    sub = StateGraph(Sub).add_node("step", step).add_edge(START, "step").compile(
        checkpointer=True)
    graph = (
        StateGraph(Log)
        .add_node("a", lambda s: {"log": ["a"]}).add_node("sub", sub)
        .add_edge(START, "a").add_edge("a", "sub")
        .compile(checkpointer=MemorySaver())
    )
    graph.invoke({"log": []}, cfg())
    graph.invoke({"log": []}, cfg())
    assert observed == [[], ["s"]]
    before_a = [s for s in graph.get_state_history(cfg()) if s.next == ("a",)][0]
    graph.invoke(None, before_a.config)  # replays the 2nd turn
    assert observed[-1] == ["s"]  # the subgraph's state after the 1st turn
    graph.invoke({"log": []}, cfg())
    assert observed[-1] == ["s", "s"]  # after the replayed turn


class Overall(TypedDict):
    foo: Annotated[int, operator.add]
    bar: str


class Private(TypedDict):
    baz: str


def test_a_routing_function_gets_the_state_its_annotation_asks_for() -> None:
    seen: list[Any] = []

    def router(state: Overall) -> str:
        seen.append(dict(state))
        return END

    def node_2(state: Private) -> dict:
        return {"foo": 1, "bar": state["baz"]}

    graph = (
        StateGraph(Overall)
        .add_node("node_1", lambda s: {"foo": 1, "baz": "b"})
        .add_node("node_2", node_2)
        .add_edge(START, "node_1").add_edge("node_1", "node_2")
        .add_conditional_edges("node_2", router)
        .compile()
    )
    graph.invoke({"foo": 0})
    assert seen == [{"foo": 2, "bar": "b"}]


def test_input_json_schema_requires_what_the_schema_requires() -> None:
    import dataclasses

    @dataclasses.dataclass
    class In:
        a: str
        b: int | None
        c: str = "x"

    graph = StateGraph(In).add_node("n", lambda s: None).add_edge(START, "n").compile()
    schema = graph.get_input_jsonschema()
    assert set(schema["required"]) == {"a"} and set(schema["properties"]) == {"a", "b", "c"}


def test_streamed_checkpoints_name_a_subgraph_tasks_namespace() -> None:
    sub = StateGraph(Log).add_node("s", lambda s: {"log": ["s"]}).add_edge(START, "s").compile()
    graph = (
        StateGraph(Log).add_node("sub", sub).add_edge(START, "sub")
        .compile(checkpointer=MemorySaver())
    )
    states = [task["state"] for chunk in graph.stream({"log": []}, cfg(), stream_mode="checkpoints")
              for task in chunk["tasks"] if task["name"] == "sub"]
    assert states and states[0]["configurable"]["checkpoint_ns"].startswith("sub:")


class SubAsk(TypedDict):
    bar: str


def test_a_subgraph_called_by_a_node_function_shows_its_state() -> None:
    def ask(state: SubAsk) -> dict:
        return {"bar": state["bar"] + interrupt("baz?")}

    sub = (
        StateGraph(SubAsk).add_node("ask", ask).add_edge(START, "ask")
        .compile(checkpointer=True)
    )

    class Parent(TypedDict):
        foo: str

    def node(state: Parent) -> dict:
        return {"foo": sub.invoke({"bar": state["foo"]})["bar"]}

    graph = (
        StateGraph(Parent).add_node("node", node).add_edge(START, "node")
        .compile(checkpointer=MemorySaver())
    )
    graph.invoke({"foo": "hi"}, cfg())
    task = graph.get_state(cfg(), subgraphs=True).tasks[0]
    assert task.state.values == {"bar": "hi"}
    assert graph.invoke(Command(resume="!"), cfg()) == {"foo": "hi!"}


class Key(TypedDict):
    my_key: str


def test_a_breakpoint_in_a_nested_subgraph_pauses_the_parent() -> None:
    grandchild = (
        StateGraph(Key)
        .add_node("g1", lambda s: {"my_key": s["my_key"] + " here"})
        .add_node("g2", lambda s: {"my_key": s["my_key"] + " and there"})
        .add_edge(START, "g1").add_edge("g1", "g2")
        .compile(interrupt_before=["g2"])
    )
    child = StateGraph(Key).add_node("c", grandchild).add_edge(START, "c").compile()
    graph = (
        StateGraph(Key)
        .add_node("p1", lambda s: {"my_key": "hi " + s["my_key"]})
        .add_node("child", child)
        .add_node("p2", lambda s: {"my_key": s["my_key"] + " and back"})
        .add_edge(START, "p1").add_edge("p1", "child").add_edge("child", "p2")
        .compile(checkpointer=MemorySaver())
    )
    finished: list[str] = []
    config = {"configurable": {"thread_id": "t", "__pregel_node_finished": finished.append}}
    chunks = list(graph.stream({"my_key": "v"}, config, subgraphs=True))
    assert [c for c in chunks if "__interrupt__" in c[1]] == [((), {"__interrupt__": ()})]
    assert chunks[0] == ((), {"p1": {"my_key": "hi v"}})
    assert graph.invoke(None, config) == {"my_key": "hi v here and there and back"}
    assert finished == ["p1", "g1", "g2", "c", "child", "p2"]


class Decision(TypedDict):
    approved: bool


def test_an_answer_must_match_the_interrupts_response_schema() -> None:
    from pydantic import ValidationError

    from threadloom.errors import is_invalid_resume

    class S(TypedDict):
        answer: Any

    graph = (
        StateGraph(S)
        .add_node("n", lambda s: {"answer": interrupt("ok?", response_schema=Decision)})
        .add_edge(START, "n")
        .compile(checkpointer=MemorySaver())
    )
    first = graph.invoke({"answer": None}, cfg())
    [asked] = first["__interrupt__"]
    assert asked.response_schema["required"] == ["approved"]
    with pytest.raises(ValidationError) as refused:
        graph.invoke(Command(resume={"approved": "nope"}), cfg())
    assert is_invalid_resume(refused.value)
    assert not is_invalid_resume(ValueError("x"))
    assert graph.get_state(cfg()).interrupts[0].id == asked.id  # still open
    assert graph.invoke(Command(resume={"approved": True}), cfg()) == {
        "answer": {"approved": True}}


def test_strict_resume_refuses_answers_that_name_no_pending_interrupt() -> None:
    from threadloom.errors import UnknownInterruptError

    graph = parallel_asks()
    strict = {"configurable": {"thread_id": "s", "__pregel_strict_resume": True}}
    graph.invoke({"log": []}, strict)
    ids = {i.value: i.id for i in graph.get_state(strict).interrupts}
    with pytest.raises(UnknownInterruptError, match="0" * 32) as refused:
        graph.invoke(Command(resume={"0" * 32: "x"}), strict)
    assert refused.value.reason == "not_pending"
    assert refused.value.pending_ids == tuple(sorted(ids.values()))
    with pytest.raises(UnknownInterruptError) as refused:
        graph.invoke(Command(resume="x"), strict)
    assert refused.value.reason == "ambiguous"
    with pytest.raises(UnknownInterruptError) as refused:
        graph.invoke(Command(resume={}), strict)
    assert refused.value.reason == "empty_map"
    result = graph.invoke(Command(resume={ids["a?"]: "1", ids["b?"]: "2"}), strict)
    assert result == {"log": ["a:1", "b:2", "c"]}


def test_interrupts_asked_from_threads_in_one_node_are_answered_out_of_order() -> None:
    from langchain_core.runnables.config import ContextThreadPoolExecutor

    from threadloom.types import Interrupt

    def ask_in_parallel(state: Log) -> dict:
        with ContextThreadPoolExecutor(1) as pool:  # copies the node's context
            b = pool.submit(interrupt, "b?")  # first call: its answer comes second
            b.exception()
            a = pool.submit(interrupt, "a?")
            return {"log": [f"{a.result()},{b.result()}"]}

    saver = MemorySaver()
    graph = (StateGraph(Log).add_node("ask", ask_in_parallel).add_edge(START, "ask")
             .compile(checkpointer=saver))
    config = {"configurable": {"thread_id": "t", "__pregel_strict_resume": True}}
    graph.invoke({"log": []}, config)
    asked = []
    for answer in ("1", "2"):
        (card,) = graph.get_state(config).interrupts
        asked.append(card.value)
        graph.invoke(Command(resume={card.id: answer}), config)
    assert asked == ["a?", "b?"]
    assert graph.get_state(config).values["log"] == ["1,2"]

    # an interrupt saved (by an older version) with the id of the node's first call
    # still takes the answer sent to that id
    def ask_twice(state: Log) -> dict:
        return {"log": [f"{interrupt('first?')},{interrupt('second?')}"]}

    graph = (StateGraph(Log).add_node("ask", ask_twice).add_edge(START, "ask")
             .compile(checkpointer=saver))
    config = {"configurable": {"thread_id": "u", "__pregel_strict_resume": True}}
    graph.invoke({"log": []}, config)
    (first,) = graph.get_state(config).interrupts
    graph.invoke(Command(resume={first.id: "1"}), config)
    state = graph.get_state(config)
    (second,) = state.interrupts
    assert second.id != first.id
    saver.put_writes(state.config, [("__interrupt__", (Interrupt("second?", id=first.id),))],
                     state.tasks[0].id)
    assert graph.invoke(Command(resume={first.id: "2"}), config) == {"log": ["1,2"]}


def test_strict_resume_does_not_check_a_superseded_checkpoint() -> None:
    graph = parallel_asks()
    config = {"configurable": {"thread_id": "s", "__pregel_strict_resume": True}}
    graph.invoke({"log": []}, config)
    paused = graph.get_state(config).config
    ids = {i.value: i.id for i in graph.get_state(config).interrupts}
    graph.invoke(Command(resume={ids["a?"]: "1", ids["b?"]: "2"}), config)
    pinned = {"configurable": {**config["configurable"], **paused["configurable"]}}
    graph.invoke(Command(resume={ids["a?"]: "x", ids["b?"]: "y"}), pinned)  # not refused


def test_first_interrupt_id_is_the_xxh3_digest_of_the_task_namespace() -> None:
    from xxhash import xxh3_128_hexdigest

    graph = (StateGraph(Log).add_node("ask", lambda s: {"log": [interrupt("?")]})
             .add_edge(START, "ask").compile(checkpointer=MemorySaver()))
    config = {"configurable": {"thread_id": "x"}}
    graph.invoke({"log": []}, config)
    state = graph.get_state(config)
    (card,) = state.interrupts
    assert card.id == xxh3_128_hexdigest(f"ask:{state.tasks[0].id}".encode())


def test_a_retried_node_reuses_the_answer_it_took() -> None:
    from threadloom.types import RetryPolicy

    failures = [ConnectionError("flaky")]

    def ask(state: Log) -> dict:
        answer = interrupt("go?")
        if failures:
            raise failures.pop()
        return {"log": [answer]}

    graph = (
        StateGraph(Log)
        .add_node("ask", ask, retry_policy=RetryPolicy(initial_interval=0, jitter=False))
        .add_edge(START, "ask")
        .compile(checkpointer=MemorySaver())
    )
    graph.invoke({"log": []}, cfg())
    assert graph.invoke(Command(resume="yes"), cfg()) == {"log": ["yes"]}


def test_send_argument_keeps_untracked_values_out_of_checkpoints() -> None:
    """A ``Send`` whose argument carries an ``UntrackedValue`` key: the task gets the
    value, the checkpoint (and its pending writes) stores the Send without it."""
    class Resource:
        def __init__(self, name: str) -> None:
            self.name = name
            self.lock = threading.Lock()  # not serializable

    class S(TypedDict):
        log: Annotated[list, operator.add]
        res: Annotated[Any, UntrackedValue]

    def setup(state: S) -> dict:
        return {"log": ["setup"], "res": Resource("r1")}

    def tool(state: S) -> dict:
        return {"log": [f"tool:{state['res'].name}"], "res": Resource("r2")}

    builder = StateGraph(S)
    builder.add_node("setup", setup)
    builder.add_node("tool", tool)
    builder.add_node("other", lambda s: {"log": ["other"]})
    builder.add_edge(START, "setup")
    # a sibling task: "tool"'s writes are saved as pending writes too
    builder.add_conditional_edges("setup", lambda s: [Send("tool", s), "other"])
    saver = MemorySaver()
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "u"}}
    out = graph.invoke({}, config)
    assert sorted(out["log"]) == ["other", "setup", "tool:r1"]
    assert out["res"].name == "r2"
    assert "res" not in graph.get_state(config).values
    sends = []
    for snapshot in graph.get_state_history(config):
        saved = saver.get_tuple(snapshot.config)
        assert all(channel != "res" for _, channel, _ in saved.pending_writes)
        sends += [v for _, c, v in saved.pending_writes if isinstance(v, Send)]
        sends += saved.checkpoint["channel_values"].get("__pregel_tasks", [])
    assert sends
    assert all(set(s.arg) == {"log"} for s in sends)


def test_history_of_resumed_send_step() -> None:
    """History after a step with Sends paused and resumed: Send tasks are listed before
    triggered nodes, a one-value state's task results are the values written, and the
    resumed task's result is recorded on the step it ran in."""
    calls = {"flaky": 0}

    def flaky(state: list) -> list:
        calls["flaky"] += 1
        interrupt("pause")
        return [f"flaky|{state}"]

    builder = StateGraph(Annotated[list, operator.add])
    builder.add_node("one", lambda s: ["one"])
    builder.add_node("two", lambda s: ["two"])
    builder.add_node("flaky", flaky)
    builder.add_edge(START, "one")
    builder.add_conditional_edges("one", lambda s: [Send("flaky", 4), "two"])
    graph = builder.compile(checkpointer=MemorySaver())
    config = {"configurable": {"thread_id": "h"}}
    graph.invoke(["0"], config)
    assert graph.get_state(config).next == ("flaky",)
    assert graph.invoke(Command(resume="ok"), config) == ["0", "one", "two", "flaky|4"]
    step = next(s for s in graph.get_state_history(config) if s.metadata["step"] == 1)
    assert step.next == ("flaky", "two")
    assert [t.result for t in step.tasks] == [["flaky|4"], ["two"]]


class _Docs(TypedDict):
    query: str
    answer: str
    docs: Annotated[list, operator.add]


class _DocsOut(TypedDict):
    answer: str


def test_a_pydantic_update_writes_its_defaults_but_not_unset_none_fields() -> None:
    from pydantic import BaseModel, Field

    class Found(BaseModel):
        docs: list[str] = Field(default_factory=lambda: ["d1", "d2"])

    class Update(BaseModel):
        query: str | None = None
        answer: str | None = None

    graph = (
        StateGraph(_Docs)
        .add_node("find", lambda s: Found())
        .add_node("ask", lambda s: Update(query="q2"))
        .add_node("clear", lambda s: Update(answer=None))  # None passed: written
        .add_edge(START, "find").add_edge("find", "ask").add_edge("ask", "clear")
        .compile()
    )
    assert list(graph.stream({"query": "q", "answer": "a", "docs": []})) == [
        {"find": {"docs": ["d1", "d2"]}},
        {"ask": {"query": "q2"}},
        {"clear": {"answer": None}},
    ]


def test_get_state_shows_every_state_key_whatever_the_output_schema() -> None:
    graph = (
        StateGraph(_Docs, output_schema=_DocsOut)
        .add_node("qa", lambda s: {"answer": ",".join(s["docs"])})
        .add_edge(START, "qa").compile(checkpointer=MemorySaver())
    )
    assert graph.invoke({"query": "q", "docs": ["d1"]}, cfg()) == {"answer": "d1"}
    assert graph.get_state(cfg()).values == {"query": "q", "answer": "d1", "docs": ["d1"]}


def test_a_routing_function_sees_extra_keys_its_node_returned_but_state_keeps_none() -> None:
    seen: list[dict[str, Any]] = []

    def route(data: dict) -> str:
        seen.append(dict(data))
        return END

    builder = StateGraph(Log)
    builder.add_node("agent", lambda s: {"log": ["agent"], "note": "for the edge only"})
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route)
    out = builder.compile().invoke({"log": []})

    assert seen == [{"log": ["agent"], "note": "for the edge only"}]
    assert out == {"log": ["agent"]}


def test_a_routing_function_that_names_its_schema_sees_only_that_schema() -> None:
    seen: list[dict[str, Any]] = []

    def route(data: Log) -> str:
        seen.append(dict(data))
        return END

    builder = StateGraph(Log)
    builder.add_node("agent", lambda s: {"log": ["agent"], "note": "for the edge only"})
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route)
    builder.compile().invoke({"log": []})

    assert seen == [{"log": ["agent"]}]


class FormatThreeSaver(MemorySaver):
    """Hands checkpoints back as LangGraph's format 3 stored them: the Send packets in
    ``pending_sends`` beside the channels, not in the tasks channel."""

    def get_tuple(self, config: dict[str, Any]) -> Any:
        tup = super().get_tuple(config)
        if tup is not None and tup.checkpoint["channel_values"].get(TASKS):
            cp = tup.checkpoint
            cp["v"] = 3
            cp["pending_sends"] = cp["channel_values"].pop(TASKS)
            cp["channel_versions"].pop(TASKS, None)
            for seen in cp["versions_seen"].values():
                seen.pop(TASKS, None)
        return tup


def test_a_format_three_checkpoint_resumes_its_pending_sends() -> None:
    def flaky(state: list) -> list:
        interrupt("pause")
        return [f"flaky|{state}"]

    builder = StateGraph(Annotated[list, operator.add])
    builder.add_node("one", lambda s: ["one"])
    builder.add_node("flaky", flaky)
    builder.add_edge(START, "one")
    builder.add_conditional_edges("one", lambda s: [Send("flaky", 4)])
    graph = builder.compile(checkpointer=FormatThreeSaver())
    config = {"configurable": {"thread_id": "v3"}}
    graph.invoke(["0"], config)
    assert graph.get_state(config).next == ("flaky",)
    assert graph.invoke(Command(resume="ok"), config) == ["0", "one", "flaky|4"]


class _Marked(TypedDict):  # (this module has `from __future__ import annotations`)
    amount: int
    note: NotRequired[str]
    log: Annotated[list[str], operator.add]


def test_not_required_keys_written_as_strings_are_optional_in_the_json_schemas() -> None:
    # under postponed annotations the TypedDict class itself lists every key as
    # required; the JSON schemas (served as an assistant's input/output schema) follow
    # the NotRequired marks, as LangGraph's do
    graph = StateGraph(_Marked).add_node("n", lambda s: None).add_edge(START, "n").compile()
    for schema in (graph.get_input_jsonschema(), graph.get_output_jsonschema()):
        assert schema["required"] == ["amount", "log"]
        assert set(schema["properties"]) == {"amount", "note", "log"}
