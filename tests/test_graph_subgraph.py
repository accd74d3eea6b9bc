"""Subgraphs: compiled graphs as nodes, subgraphs called inside nodes, interrupts and
resume across the boundary, checkpoint namespaces, Command.PARENT, streaming subgraphs.

Pins ../shared/reference/langgraph-api.md §1.2 (stream subgraphs), §1.3 (task state),
§1.4 (Command.PARENT) and §2.1, §2.20.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from typing import Annotated, Any, TypedDict

import pytest
from helpers import S, cfg, logger, with_child

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.config import get_config
from threadloom.graph import END, START, StateGraph
from threadloom.types import Command, StateSnapshot, interrupt

TASK_NS = re.compile(r"^child:[0-9a-f-]{36}$")


def parent_with(child: Any, calls: Counter | None = None, checkpointer: Any = None) -> Any:
    g = StateGraph(S)
    g.add_node("p", logger("p", calls))
    g.add_node("child", child)
    g.add_node("after", logger("after", calls))
    g.add_edge(START, "p")
    g.add_edge("p", "child")
    g.add_edge("child", "after")
    g.add_edge("after", END)
    return g.compile(checkpointer=checkpointer)


def simple_child(calls: Counter | None = None, **compile_kw: Any) -> Any:
    g = StateGraph(S)
    g.add_node("s", logger("s", calls))
    g.add_edge(START, "s")
    return g.compile(**compile_kw)


# -- compiled graph as a node ------------------------------------------------------------


def test_compiled_subgraph_as_node_duplicates_shared_reducer_key() -> None:
    # §2.20: the child's whole output state is the update -> parent log duplicated.
    g = StateGraph(S)
    g.add_node("p", logger("p"))
    g.add_node("child", simple_child())
    g.add_edge(START, "p")
    g.add_edge("p", "child")
    out = g.compile().invoke({"x": 1, "log": ["in"]})
    assert out == {"x": 1, "log": ["in", "p", "in", "p", "s"]}


class ChildState(TypedDict):
    x: int
    secret: str


def test_subgraph_with_own_schema_receives_and_returns_shared_keys() -> None:
    seen = []

    def inner(state: ChildState) -> dict:
        seen.append(dict(state))
        return {"x": state["x"] * 10, "secret": "hidden"}

    cg = StateGraph(ChildState)
    cg.add_node("inner", inner)
    cg.add_edge(START, "inner")
    child = cg.compile()

    g = StateGraph(S)
    g.add_node("child", child)
    g.add_edge(START, "child")
    out = g.compile().invoke({"x": 2, "log": ["in"]})
    assert seen == [{"x": 2}]
    assert out == {"x": 20, "log": ["in"]}


def test_subgraph_node_update_stream_is_child_output() -> None:
    g = StateGraph(S)
    g.add_node("child", simple_child())
    g.add_edge(START, "child")
    chunks = list(g.compile().stream({"x": 0, "log": []}, stream_mode="updates"))
    assert chunks == [{"child": {"x": 0, "log": ["s"]}}]


def test_subgraph_called_inside_function_node() -> None:
    child = simple_child()
    seen = []

    def call_child(state: S) -> dict:
        result = child.invoke({"x": state["x"] + 1, "log": []})
        seen.append(result)
        return {"log": [f"child-said:{result['log']}"], "x": result["x"]}

    g = StateGraph(S)
    g.add_node("call_child", call_child)
    g.add_edge(START, "call_child")
    out = g.compile().invoke({"x": 1, "log": []})
    assert seen == [{"x": 2, "log": ["s"]}]
    assert out == {"x": 2, "log": ["child-said:['s']"]}


def test_nested_subgraphs_two_levels() -> None:
    grandchild = simple_child()
    mg = StateGraph(S)
    mg.add_node("gc", grandchild)
    mg.add_edge(START, "gc")
    middle = mg.compile()
    g = StateGraph(S)
    g.add_node("middle", middle)
    g.add_edge(START, "middle")
    out = g.compile().invoke({"x": 0, "log": ["in"]})
    # each level re-emits its whole state through the shared reducer key
    assert out["log"] == ["in", "in", "in", "s"]


# -- interrupts inside subgraphs ----------------------------------------------------------


def interrupting_child(calls: Counter, **compile_kw: Any) -> Any:
    def c1(state: S) -> dict:
        calls["c1"] += 1
        return {"log": ["c1"]}

    def c2(state: S) -> dict:
        calls["c2"] += 1
        answer = interrupt("child question")
        return {"log": [f"c2:{answer}"]}

    g = StateGraph(S)
    g.add_node("c1", c1)
    g.add_node("c2", c2)
    g.add_edge(START, "c1")
    g.add_edge("c1", "c2")
    return g.compile(**compile_kw)


def test_interrupt_inside_subgraph_pauses_parent_and_resumes_inner_node_only() -> None:
    calls: Counter = Counter()
    app = parent_with(interrupting_child(calls), calls, checkpointer=InMemorySaver())
    out = app.invoke({"x": 0, "log": []}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["child question"]
    assert out["log"] == ["p"]
    snap = app.get_state(cfg())
    assert snap.next == ("child",)
    assert [i.value for i in snap.interrupts] == ["child question"]
    assert [i.value for i in snap.tasks[0].interrupts] == ["child question"]
    assert calls == {"p": 1, "c1": 1, "c2": 1}

    out = app.invoke(Command(resume="ok"), cfg())
    assert "__interrupt__" not in out
    # c1 is not re-run (the child resumes from its own checkpoint); c2 re-runs
    assert calls == {"p": 1, "c1": 1, "c2": 2, "after": 1}
    assert out["log"] == ["p", "p", "c1", "c2:ok", "after"]
    assert app.get_state(cfg()).next == ()


def test_interrupt_inside_subgraph_called_from_function_node() -> None:
    calls: Counter = Counter()
    child = interrupting_child(calls)

    def wrapper(state: S) -> dict:
        calls["wrapper"] += 1
        result = child.invoke({"x": state["x"], "log": []})
        return {"log": result["log"]}

    app = parent_with(wrapper, calls, checkpointer=InMemorySaver())
    out = app.invoke({"x": 0, "log": []}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["child question"]
    out = app.invoke(Command(resume="fine"), cfg())
    assert out["log"] == ["p", "c1", "c2:fine", "after"]
    # the wrapper re-runs, the inner c1 does not
    assert calls == {"p": 1, "wrapper": 2, "c1": 1, "c2": 2, "after": 1}


def test_subgraph_task_state_points_at_child_namespace() -> None:
    calls: Counter = Counter()
    app = parent_with(interrupting_child(calls), calls, checkpointer=InMemorySaver())
    app.invoke({"x": 0, "log": []}, cfg())
    snap = app.get_state(cfg())
    (task,) = snap.tasks
    assert task.name == "child"
    ns = task.state["configurable"]["checkpoint_ns"]
    assert TASK_NS.match(ns)
    assert ns == f"child:{task.id}"
    assert task.state["configurable"]["thread_id"] == "t"


def test_parent_get_state_with_task_state_config_reads_child() -> None:
    calls: Counter = Counter()
    app = parent_with(interrupting_child(calls), calls, checkpointer=InMemorySaver())
    app.invoke({"x": 0, "log": []}, cfg())
    (task,) = app.get_state(cfg()).tasks
    child_snap = app.get_state(task.state)
    assert child_snap.next == ("c2",)
    assert child_snap.values == {"x": 0, "log": ["p", "c1"]}
    assert [i.value for i in child_snap.interrupts] == ["child question"]


def test_get_state_subgraphs_true_embeds_child_snapshot() -> None:
    calls: Counter = Counter()
    app = parent_with(interrupting_child(calls), calls, checkpointer=InMemorySaver())
    app.invoke({"x": 0, "log": []}, cfg())
    snap = app.get_state(cfg(), subgraphs=True)
    (task,) = snap.tasks
    child = task.state
    assert isinstance(child, StateSnapshot)
    assert child.next == ("c2",)
    assert child.values == {"x": 0, "log": ["p", "c1"]}
    assert [i.value for i in child.interrupts] == ["child question"]
    assert child.config["configurable"]["checkpoint_ns"] == f"child:{task.id}"


def test_child_checkpoint_namespace_and_parents_metadata() -> None:
    saver = InMemorySaver()
    seen = []

    def s(state: S) -> dict:
        seen.append(get_config()["configurable"]["checkpoint_ns"])
        return {"log": ["s"]}

    cg = StateGraph(S)
    cg.add_node("s", s)
    cg.add_edge(START, "s")
    app = parent_with(cg.compile(), checkpointer=saver)
    app.invoke({"x": 0, "log": []}, cfg())
    (ns,) = seen
    child_ns, inner = ns.split("|")
    assert TASK_NS.match(child_ns)
    assert inner.startswith("s:")
    tuples = list(saver.list({"configurable": {"thread_id": "t"}}))
    namespaces = {t.config["configurable"]["checkpoint_ns"] for t in tuples}
    assert namespaces == {"", child_ns}
    parent_ids = {t.config["configurable"]["checkpoint_id"] for t in tuples
                  if t.config["configurable"]["checkpoint_ns"] == ""}
    child_tuples = [t for t in tuples if t.config["configurable"]["checkpoint_ns"] == child_ns]
    assert child_tuples
    for t in child_tuples:
        assert set(t.metadata["parents"]) == {""}
        assert t.metadata["parents"][""] in parent_ids
    # subgraph history through a namespaced config
    hist = list(app.get_state_history(
        {"configurable": {"thread_id": "t", "checkpoint_ns": child_ns}}))
    assert hist and all(h.config["configurable"]["checkpoint_ns"] == child_ns for h in hist)


class CountState(TypedDict):
    count: Annotated[int, operator.add]


def counting_parent(child_checkpointer: Any) -> tuple[Any, list]:
    seen: list = []

    def inc(state: CountState) -> dict:
        seen.append(state["count"])
        return {"count": 1}

    cg = StateGraph(CountState)
    cg.add_node("inc", inc)
    cg.add_edge(START, "inc")
    child = cg.compile(checkpointer=child_checkpointer)

    def call(state: S) -> dict:
        child.invoke({"count": 0})
        return {"log": ["called"]}

    g = StateGraph(S)
    g.add_node("call", call)
    g.add_edge(START, "call")
    return g.compile(checkpointer=InMemorySaver()), seen


def test_child_without_own_checkpointer_starts_fresh_each_parent_run() -> None:
    app, seen = counting_parent(None)
    app.invoke({"x": 0, "log": []}, cfg())
    app.invoke({"x": 0, "log": []}, cfg())
    assert seen == [0, 0]


def test_child_checkpointer_true_persists_across_parent_runs() -> None:
    app, seen = counting_parent(True)
    app.invoke({"x": 0, "log": []}, cfg())
    app.invoke({"x": 0, "log": []}, cfg())
    assert seen == [0, 1]


def test_child_checkpointer_false_stores_nothing() -> None:
    saver = InMemorySaver()
    app = parent_with(simple_child(checkpointer=False), checkpointer=saver)
    app.invoke({"x": 0, "log": []}, cfg())
    namespaces = {t.config["configurable"]["checkpoint_ns"]
                  for t in saver.list({"configurable": {"thread_id": "t"}})}
    assert namespaces == {""}


# -- Command.PARENT ---------------------------------------------------------------------


def test_command_parent_goto_and_update_from_subgraph() -> None:
    calls: Counter = Counter()

    def c1(state: S) -> Command:
        calls["c1"] += 1
        return Command(graph=Command.PARENT, goto="other", update={"x": 99})

    cg = StateGraph(S)
    cg.add_node("c1", c1)
    cg.add_node("c2", logger("c2", calls))
    cg.add_edge(START, "c1")
    cg.add_edge("c1", "c2")
    child = cg.compile()

    g = StateGraph(S)
    g.add_node("child", child)
    g.add_node("other", logger("other", calls))
    g.add_edge(START, "child")
    out = g.compile().invoke({"x": 0, "log": []})
    assert out == {"x": 99, "log": ["other"]}
    # the subgraph stopped: c2 never ran
    assert calls == {"c1": 1, "other": 1}


def test_command_parent_with_reducer_update() -> None:
    def c1(state: S) -> Command:
        return Command(graph=Command.PARENT, goto="other", update={"log": ["from-child"]})

    cg = StateGraph(S)
    cg.add_node("c1", c1)
    cg.add_edge(START, "c1")

    g = StateGraph(S)
    g.add_node("child", cg.compile())
    g.add_node("other", logger("other"))
    g.add_edge(START, "child")
    out = g.compile(checkpointer=InMemorySaver()).invoke({"x": 0, "log": ["in"]}, cfg())
    assert out == {"x": 0, "log": ["in", "from-child", "other"]}


# -- streaming subgraphs -------------------------------------------------------------------


def test_stream_subgraphs_yields_namespace_tuples() -> None:
    app = parent_with(simple_child())
    chunks = list(app.stream({"x": 0, "log": []}, stream_mode="updates", subgraphs=True))
    assert all(isinstance(c, tuple) and len(c) == 2 for c in chunks)
    root = [payload for ns, payload in chunks if ns == ()]
    inner = [(ns, payload) for ns, payload in chunks if ns != ()]
    assert root == [
        {"p": {"log": ["p"]}},
        {"child": {"x": 0, "log": ["p", "s"]}},
        {"after": {"log": ["after"]}},
    ]
    assert len(inner) == 1
    (ns, payload), = inner
    assert len(ns) == 1 and TASK_NS.match(ns[0])
    assert payload == {"s": {"log": ["s"]}}
    # the child's events come before the parent's update for the child node
    order = [next(iter(p)) for _, p in chunks]
    assert order.index("s") < order.index("child")


def test_stream_subgraphs_with_several_modes_yields_triples() -> None:
    app = parent_with(simple_child())
    chunks = list(app.stream({"x": 0, "log": []}, stream_mode=["updates", "values"],
                             subgraphs=True))
    assert all(len(c) == 3 for c in chunks)
    modes = {(bool(ns), mode) for ns, mode, _ in chunks}
    assert modes == {(False, "updates"), (False, "values"), (True, "updates"), (True, "values")}


def test_stream_without_subgraphs_hides_child_events() -> None:
    app = parent_with(simple_child())
    chunks = list(app.stream({"x": 0, "log": []}, stream_mode="updates"))
    assert [next(iter(c)) for c in chunks] == ["p", "child", "after"]


def test_stream_subgraphs_custom_events_carry_child_namespace() -> None:
    def s(state: S, writer) -> dict:  # noqa: ANN001
        writer("from child")
        return {"log": ["s"]}

    cg = StateGraph(S)
    cg.add_node("s", s)
    cg.add_edge(START, "s")
    app = parent_with(cg.compile())
    chunks = list(app.stream({"x": 0, "log": []}, stream_mode="custom", subgraphs=True))
    assert len(chunks) == 1
    ns, payload = chunks[0]
    assert payload == "from child"
    assert len(ns) == 1 and TASK_NS.match(ns[0])


def test_stream_subgraph_interrupt_reaches_root_updates() -> None:
    calls: Counter = Counter()
    app = parent_with(interrupting_child(calls), calls, checkpointer=InMemorySaver())
    chunks = list(app.stream({"x": 0, "log": []}, cfg(), stream_mode="updates"))
    assert chunks[0] == {"p": {"log": ["p"]}}
    assert list(chunks[-1]) == ["__interrupt__"]
    assert chunks[-1]["__interrupt__"][0].value == "child question"


@pytest.mark.parametrize("durability", ["sync", "exit"])
def test_subgraph_interrupt_resume_with_durability(durability: str) -> None:
    calls: Counter = Counter()
    app = parent_with(interrupting_child(calls), calls, checkpointer=InMemorySaver())
    app.invoke({"x": 0, "log": []}, cfg(), durability=durability)
    out = app.invoke(Command(resume="d"), cfg(), durability=durability)
    assert out["log"][-2:] == ["c2:d", "after"]
    assert calls["c1"] == 1


# -- more subgraph semantics ---------------------------------------------------------


def test_command_parent_from_subgraph_called_inside_function_node() -> None:
    def jump(state: S) -> Command:
        return Command(graph=Command.PARENT, goto="other", update={"x": 5})

    cg = StateGraph(S)
    cg.add_node("jump", jump)
    cg.add_edge(START, "jump")
    child = cg.compile()
    reached = []

    def wrapper(state: S) -> dict:
        child.invoke(state)
        reached.append(True)
        return {"log": ["not reached"]}

    g = StateGraph(S)
    g.add_node("wrapper", wrapper)
    g.add_node("other", logger("other"))
    g.add_edge(START, "wrapper")
    assert g.compile().invoke({"x": 0, "log": []}) == {"x": 5, "log": ["other"]}
    assert reached == []


def test_error_inside_subgraph_retry_resumes_child_from_its_checkpoint() -> None:
    calls: Counter = Counter()
    fail = {"on": True}

    def c2(state: S) -> dict:
        calls["c2"] += 1
        if fail["on"]:
            raise RuntimeError("boom")
        return {"log": ["c2"]}

    app = with_child(c2, calls)
    with pytest.raises(RuntimeError, match="boom"):
        app.invoke({"x": 0, "log": []}, cfg())
    assert app.get_state(cfg()).next == ("child",)
    fail["on"] = False
    assert app.invoke(None, cfg()) == {"x": 0, "log": ["c1", "c2"]}
    assert calls == {"c1": 1, "c2": 2}


def _paused_child_app() -> Any:
    def q(state: S) -> dict:
        return {"log": [interrupt("q")]}

    cg = StateGraph(S)
    cg.add_node("q", q)
    cg.add_edge(START, "q")
    g = StateGraph(S)
    g.add_node("child", cg.compile())
    g.add_edge(START, "child")
    app = g.compile(checkpointer=InMemorySaver())
    app.invoke({"x": 0, "log": []}, cfg())
    return app


def test_subgraph_snapshot_metadata_has_parents() -> None:
    app = _paused_child_app()
    parent = app.get_state(cfg(), subgraphs=True)
    child = parent.tasks[0].state
    assert child.metadata["parents"] == {"": parent.config["configurable"]["checkpoint_id"]}
    assert child.metadata["source"] == "loop"


def test_subgraph_snapshot_config_has_checkpoint_map() -> None:
    app = _paused_child_app()
    parent = app.get_state(cfg(), subgraphs=True)
    conf = parent.tasks[0].state.config["configurable"]
    parent_id = parent.config["configurable"]["checkpoint_id"]
    assert conf["checkpoint_map"] == {"": parent_id, conf["checkpoint_ns"]:
                                      conf["checkpoint_id"]}


def test_subgraph_checkpoint_metadata_excludes_ids_and_ns() -> None:
    app = _paused_child_app()
    child = app.get_state(cfg(), subgraphs=True).tasks[0].state
    assert "thread_id" not in child.metadata
    assert "checkpoint_ns" not in child.metadata
    assert not any(k.startswith("langgraph_") for k in child.metadata)


class LogOnly(TypedDict):
    log: Annotated[list, operator.add]


def test_parallel_subgraphs_with_several_interrupts_each() -> None:
    calls: Counter = Counter()

    def make_child(tag: str) -> Any:
        def c1(state: LogOnly) -> dict:
            calls[f"{tag}.c1"] += 1
            return {"log": [f"{tag}.c1"]}

        def c2(state: LogOnly) -> dict:
            calls[f"{tag}.c2"] += 1
            first = interrupt(f"{tag}?")
            second = interrupt(f"{tag}??")
            return {"log": [f"{tag}:{first}{second}"]}

        cg = StateGraph(LogOnly)
        cg.add_node("c1", c1)
        cg.add_node("c2", c2)
        cg.add_edge(START, "c1")
        cg.add_edge("c1", "c2")
        return cg.compile()

    g = StateGraph(LogOnly)
    g.add_node("k1", make_child("k1"))
    g.add_node("k2", make_child("k2"))
    g.add_node("j", lambda s: {"log": ["j"]})
    g.add_edge(START, "k1")
    g.add_edge(START, "k2")
    g.add_edge(["k1", "k2"], "j")
    app = g.compile(checkpointer=InMemorySaver())

    first = app.invoke({"log": []}, cfg())["__interrupt__"]
    assert [i.value for i in first] == ["k1?", "k2?"]
    # invoke(None) re-raises the same interrupts (same ids)
    assert app.invoke(None, cfg())["__interrupt__"] == first
    second = app.invoke(Command(resume={i.id: i.value.upper() for i in first}),
                        cfg())["__interrupt__"]
    assert [i.value for i in second] == ["k1??", "k2??"]
    assert not {i.id for i in second} & {i.id for i in first}
    third = app.invoke(Command(resume={second[0].id: "x"}), cfg())["__interrupt__"]
    assert [i.value for i in third] == ["k2??"]
    assert app.get_state(cfg()).next == ("k2",)
    out = app.invoke(Command(resume={third[0].id: "y"}), cfg())
    assert out == {"log": ["k1.c1", "k1:K1?x", "k2.c1", "k2:K2?y", "j"]}
    # inner nodes before the interrupts never re-run; the interrupted ones restart each time
    assert calls == {"k1.c1": 1, "k2.c1": 1, "k1.c2": 4, "k2.c2": 5}


class _Inner(TypedDict, total=False):
    my_key: str
    my_other_key: str


class _Outer(TypedDict, total=False):
    my_key: str


def _paused_subgraph_app(saver: Any) -> Any:
    inner = (
        StateGraph(_Inner)
        .add_node("inner_1", lambda s: {"my_key": s["my_key"] + " here",
                                        "my_other_key": s["my_key"]})
        .add_node("inner_2", lambda s: {"my_key": s["my_key"] + " and there"})
        .add_edge(START, "inner_1").add_edge("inner_1", "inner_2")
        .compile(interrupt_before=["inner_2"])
    )
    return (StateGraph(_Outer).add_node("inner", inner).add_edge(START, "inner")
            .add_node("after", lambda s: {"my_key": s["my_key"] + "!"})
            .add_edge("inner", "after").compile(checkpointer=saver))


def test_subgraph_saves_with_the_durability_of_the_run_and_its_history_reads_it() -> None:
    saver = InMemorySaver()
    app = _paused_subgraph_app(saver)
    config = {"configurable": {"thread_id": "1"}}
    app.invoke({"my_key": "v"}, config, durability="exit")
    sub_config = app.get_state(config).tasks[0].state
    history = list(app.get_state_history(sub_config))
    # durability="exit" reaches the subgraph: only its last checkpoint is saved
    assert [(h.metadata["step"], h.parent_config) for h in history] == [(1, None)]
    # read with the subgraph's own channels
    assert (history[0].values, history[0].next) == (
        {"my_key": "v here", "my_other_key": "v"}, ("inner_2",))


def test_history_under_exit_durability_does_not_take_a_later_checkpoint_as_a_result() -> None:
    app = _paused_subgraph_app(InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    app.invoke({"my_key": "v"}, config, durability="exit")
    app.invoke(None, config, durability="exit")
    history = list(app.get_state_history(config))
    assert [h.metadata["step"] for h in history] == [2, 0]
    # the saved checkpoint after step 0 is step 2's: step 0's task result is not known
    assert history[1].tasks[0].result is None


def _paused_inside_a_called_subgraph() -> tuple[Any, list[str]]:
    ran: list[str] = []

    def step(name: str):
        def run(state: S) -> dict:
            ran.append(name)
            return {"log": [name]}

        return run

    inner = StateGraph(S)
    inner.add_node("model", step("model"))
    inner.add_node("tool", step("tool"))
    inner.add_edge(START, "model")
    inner.add_edge("model", "tool")
    compiled_inner = inner.compile(interrupt_before=["tool"])

    def call_inner(state: S) -> dict:
        return {"log": compiled_inner.invoke(state)["log"][len(state["log"]):]}

    outer = StateGraph(S)
    outer.add_node("call_inner", call_inner)
    outer.add_edge(START, "call_inner")
    graph = outer.compile(checkpointer=InMemorySaver())
    graph.invoke({"x": 0, "log": []}, cfg())
    return graph, ran


def test_a_subgraph_finished_by_update_state_is_not_run_again_on_resume() -> None:
    graph, ran = _paused_inside_a_called_subgraph()
    inner_state = graph.get_state(cfg(), subgraphs=True).tasks[0].state
    assert inner_state.next == ("tool",)
    graph.update_state(inner_state.config, {"log": ["edited"]}, as_node="tool")
    inner_done = graph.get_state(cfg(), subgraphs=True).tasks[0].state
    assert inner_done.next == ()
    # the subgraph's checkpoints (and their parents) name the root checkpoint they are under
    cmap = inner_done.parent_config["configurable"]["checkpoint_map"]
    assert cmap[""] == graph.get_state(cfg()).config["configurable"]["checkpoint_id"]
    ns = inner_done.config["configurable"]["checkpoint_ns"]
    assert cmap[ns] == inner_done.parent_config["configurable"]["checkpoint_id"]

    # resuming the parent re-runs its node; the subgraph it calls continues from its
    # (finished) checkpoint instead of starting again from the node's input
    assert graph.invoke(None, cfg()) == {"x": 0, "log": ["model", "edited"]}
    assert ran == ["model"]


def test_a_retried_subgraph_call_in_a_fresh_run_starts_again() -> None:
    graph, ran = _paused_inside_a_called_subgraph()
    # new input: not a resume, the subgraph starts from its input in a new task
    graph.invoke({"x": 1, "log": []}, cfg())
    assert ran == ["model", "model"]


def test_graphs_invoked_one_after_another_by_a_task_get_namespaces_of_their_own():
    # the first graph a task invokes runs in the task's namespace, the next in "<ns>|1"
    class Inner(TypedDict):
        n: Annotated[int, operator.add]

    def graph_of(name: str) -> Any:
        return (StateGraph(Inner).add_node(name, lambda s: {"n": 1})
                .add_edge(START, name).compile())

    first, second = graph_of("first"), graph_of("second")

    def outer(state: S) -> dict:
        a = first.invoke({"n": state["x"]})
        b = second.invoke({"n": a["n"]})
        return {"x": b["n"]}

    graph = (StateGraph(S).add_node("outer", outer).add_edge(START, "outer")
             .compile(checkpointer=InMemorySaver()))
    chunks = list(graph.stream({"x": 0, "log": []}, cfg(), subgraphs=True,
                               stream_mode="updates"))
    namespaces = [ns for ns, _ in chunks]
    assert len(namespaces) == 3 and namespaces[2] == ()
    assert re.fullmatch(r"outer:[0-9a-f-]{36}", namespaces[0][0]) and len(namespaces[0]) == 1
    assert namespaces[1] == (namespaces[0][0], "1")
    assert chunks[-1][1] == {"outer": {"x": 2}}


def test_a_subgraphs_streamed_checkpoints_match_its_history() -> None:
    inner = (StateGraph(S).add_node("a", lambda s: {"log": ["a"]})
             .add_node("b", lambda s: {"log": ["b"]})
             .add_edge(START, "a").add_edge("a", "b").compile())
    graph = (StateGraph(S).add_node("child", inner).add_edge(START, "child")
             .compile(checkpointer=InMemorySaver()))
    streamed = [chunk for ns, chunk in graph.stream({"x": 0, "log": []}, cfg(), subgraphs=True,
                                                     stream_mode="checkpoints") if ns]
    ns = streamed[0]["config"]["configurable"]["checkpoint_ns"]
    history = list(graph.get_state_history(
        {"configurable": {"thread_id": "t", "checkpoint_ns": ns}}))[::-1]
    assert len(streamed) == len(history) == 4
    for event, snap in zip(streamed, history, strict=True):
        assert event["parent_config"] == snap.parent_config
    # a subgraph's parent config names the root checkpoint it runs under
    assert set(streamed[-1]["parent_config"]["configurable"]["checkpoint_map"]) == {"", ns}
