"""Human in the loop: checkpoints, breakpoints, interrupt(), resume, update_state, forks.

Pins ../shared/reference/langgraph-api.md §1.2-1.4, §1.17 and §2 points 1-11, 17, 22, 23,
plus the seed's three examples (../shared/seed/000_446648298180952d.txt).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated, Any, TypedDict

import pytest
from helpers import GraphApi, S, abc, asking_b, cfg, history, logger
from langchain_core.messages import AIMessage, HumanMessage

from threadloom.checkpoint.memory import InMemorySaver, MemorySaver
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.constants import PULL, PUSH
from threadloom.errors import EmptyInputError, InvalidUpdateError
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.types import Command, Interrupt, PregelTask, Send, StateSnapshot, interrupt

HEX32 = re.compile(r"^[0-9a-f]{32}$")


# -- the checkpoint table (§1.17) ----------------------------------------------------


async def test_checkpoint_table_of_a_plain_run(graph_api: GraphApi) -> None:
    app = graph_api.abc()
    assert (await graph_api.invoke(app, {"x": 0}, cfg())) == {"x": 0, "log": ["a", "b", "c"]}
    snaps = list(reversed(await graph_api.history(app)))
    assert [s.metadata["step"] for s in snaps] == [-1, 0, 1, 2, 3]
    assert [s.metadata["source"] for s in snaps] == ["input", "loop", "loop", "loop", "loop"]
    assert [s.next for s in snaps] == [("__start__",), ("a",), ("b",), ("c",), ()]
    assert [s.values.get("log") for s in snaps[1:]] == [[], ["a"], ["a", "b"],
                                                        ["a", "b", "c"]]
    assert "x" not in snaps[0].values
    assert snaps[1].values == {"x": 0, "log": []}
    # each checkpoint's parent is the previous one
    assert snaps[0].parent_config is None
    for prev, cur in zip(snaps, snaps[1:], strict=False):
        assert cur.parent_config == prev.config
    # checkpoint ids increase; configs carry thread, ns and id
    ids = [s.config["configurable"]["checkpoint_id"] for s in snaps]
    assert ids == sorted(ids) and len(set(ids)) == 5
    for s in snaps:
        assert s.config["configurable"]["thread_id"] == "t"
        assert s.config["configurable"]["checkpoint_ns"] == ""
        assert isinstance(s.created_at, str)
    # record view: the tasks planned at each checkpoint
    assert [[t.name for t in s.tasks] for s in snaps] == [["__start__"], ["a"], ["b"], ["c"],
                                                          []]
    assert snaps[1].tasks[0].path == ("__pregel_pull", "a")
    # the history's pages and filters
    assert [s.metadata["step"] for s in await graph_api.history(app, limit=2)] == [3, 2]
    only_input = await graph_api.history(app, filter={"source": "input"})
    assert [s.metadata["step"] for s in only_input] == [-1]
    before = await graph_api.history(app, before=snaps[2].config)
    assert [s.metadata["step"] for s in before] == [0, -1]


def test_get_state_of_finished_thread() -> None:
    app = abc()
    app.invoke({"x": 0}, cfg())
    snap = app.get_state(cfg())
    assert isinstance(snap, StateSnapshot)
    assert snap.values == {"x": 0, "log": ["a", "b", "c"]}
    assert snap.next == ()
    assert snap.tasks == ()
    assert snap.interrupts == ()
    assert snap.metadata["source"] == "loop"
    assert snap.metadata["step"] == 3


def test_get_state_of_unknown_thread() -> None:
    app = abc()
    snap = app.get_state(cfg("nobody"))
    assert snap == StateSnapshot(values={}, next=(), config=cfg("nobody"), metadata=None,
                                 created_at=None, parent_config=None, tasks=(),
                                 interrupts=())


def test_get_state_without_checkpointer_is_value_error() -> None:
    app = abc(checkpointer=None)
    with pytest.raises(ValueError, match="No checkpointer set"):
        app.get_state(cfg())
    with pytest.raises(ValueError, match="No checkpointer set"):
        list(app.get_state_history(cfg()))
    with pytest.raises(ValueError, match="No checkpointer set"):
        app.update_state(cfg(), {"x": 1})


def test_checkpointer_requires_thread_id() -> None:
    app = abc()
    with pytest.raises(ValueError, match="Checkpointer requires one or more of the following "
                                         "'configurable' keys"):
        app.invoke({"x": 0})


def test_thread_id_is_stringified() -> None:
    app = abc()
    app.invoke({"x": 0}, {"configurable": {"thread_id": 7}})
    assert app.get_state(cfg("7")).values["log"] == ["a", "b", "c"]


def test_user_metadata_and_configurable_in_checkpoint_metadata() -> None:
    app = abc()
    app.invoke({"x": 0}, {"configurable": {"thread_id": "t", "user": "ann"},
                          "metadata": {"tag": "demo"}})
    snap = app.get_state(cfg())
    assert snap.metadata["user"] == "ann"
    assert snap.metadata["tag"] == "demo"
    assert "thread_id" not in snap.metadata
    assert len(history(app, filter={"user": "ann"})) == 5


# -- get_state_history filter / before / limit --------------------------------------


def test_get_state_history_filter_before_limit() -> None:
    app = abc()
    app.invoke({"x": 0}, cfg())
    snaps = history(app)
    assert len(snaps) == 5
    steps = [s.metadata["step"] for s in snaps]
    assert steps == [3, 2, 1, 0, -1]  # newest first
    assert [s.metadata["step"] for s in history(app, filter={"source": "input"})] == [-1]
    assert [s.metadata["step"] for s in history(app, filter={"step": 0})] == [0]
    assert [s.metadata["step"] for s in history(app, limit=2)] == [3, 2]
    assert [s.metadata["step"] for s in history(app, before=snaps[1].config)] == [1, 0, -1]
    assert [s.metadata["step"] for s in history(app, before=snaps[1].config, limit=1)] == [1]
    assert history(app, filter={"source": "update"}) == []


# -- interrupt_before / interrupt_after ------------------------------------------------


async def test_interrupt_before(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(calls=calls, interrupt_before=["b"])
    out = await graph_api.invoke(app, {"x": 0}, cfg())
    assert out == {"x": 0, "log": ["a"]}  # no __interrupt__ key for static breakpoints
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("b",)
    assert snap.metadata["step"] == 1
    assert snap.interrupts == ()
    (task,) = snap.tasks
    assert isinstance(task, PregelTask)
    assert task.name == "b"
    assert task.path == ("__pregel_pull", "b")
    assert (task.error, task.interrupts, task.state, task.result) == (None, (), None, None)
    assert calls == {"a": 1}
    # resume: b and c run, no second breakpoint on b
    assert (await graph_api.invoke(app, None, cfg())) == {"x": 0, "log": ["a", "b", "c"]}
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert (await graph_api.get_state(app, cfg())).next == ()


def test_interrupt_before_resume_with_command_value_ignored() -> None:
    app = abc(interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    assert app.invoke(Command(resume="whatever"), cfg())["log"] == ["a", "b", "c"]


async def test_interrupt_before_updates_stream(graph_api: GraphApi) -> None:
    app = graph_api.abc(interrupt_before=["b"])
    chunks = await graph_api.stream(app, {"x": 0}, cfg(), stream_mode="updates")
    assert chunks == [{"a": {"log": ["a"]}}, {"__interrupt__": ()}]
    assert (await graph_api.stream(app, None, cfg(), stream_mode="updates")) == [
        {"b": {"log": ["b"]}},
        {"c": {"log": ["c"]}},
    ]


async def test_interrupt_after(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(calls=calls, interrupt_after=["b"])
    assert (await graph_api.invoke(app, {"x": 0}, cfg())) == {"x": 0, "log": ["a", "b"]}
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("c",)
    assert snap.metadata["step"] == 2
    assert snap.interrupts == ()
    assert (await graph_api.invoke(app, None, cfg()))["log"] == ["a", "b", "c"]
    assert calls == {"a": 1, "b": 1, "c": 1}


def test_interrupt_after_last_node_emits_empty_interrupt() -> None:
    app = abc(interrupt_after=["c"])
    chunks = list(app.stream({"x": 0}, cfg(), stream_mode="updates"))
    assert chunks[-1] == {"__interrupt__": ()}
    assert app.get_state(cfg()).next == ()


def test_interrupt_before_star_does_not_stop_before_start() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before="*")
    assert app.invoke({"x": 0}, cfg()) == {"x": 0, "log": []}
    assert app.get_state(cfg()).next == ("a",)
    assert app.invoke(None, cfg())["log"] == ["a"]
    assert app.invoke(None, cfg())["log"] == ["a", "b"]
    assert app.invoke(None, cfg())["log"] == ["a", "b", "c"]
    assert calls == {"a": 1, "b": 1, "c": 1}


def test_interrupt_after_star() -> None:
    app = abc(interrupt_after="*")
    assert app.invoke({"x": 0}, cfg())["log"] == ["a"]
    assert app.invoke(None, cfg())["log"] == ["a", "b"]


def test_call_time_breakpoints_replace_compiled_ones() -> None:
    app = abc(interrupt_before=["b"])
    out = app.invoke({"x": 0}, cfg(), interrupt_before=["c"])
    assert out["log"] == ["a", "b"]
    assert app.get_state(cfg()).next == ("c",)
    out = abc().invoke({"x": 0}, cfg(), interrupt_after=["a"])
    assert out["log"] == ["a"]


def test_static_breakpoint_resume_proceeds_after_update_state() -> None:
    # §2.22: resuming moves past the breakpoint even after update_state in between.
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    app.update_state(cfg(), {"x": 5})
    assert app.get_state(cfg()).next == ("b",)
    assert app.invoke(None, cfg()) == {"x": 5, "log": ["a", "b", "c"]}
    assert calls["b"] == 1


@pytest.mark.filterwarnings("ignore")
def test_interrupt_before_without_checkpointer_stops() -> None:
    app = abc(checkpointer=None, interrupt_before=["b"])
    assert app.invoke({"x": 0}) == {"x": 0, "log": ["a"]}


def test_interrupt_before_without_checkpointer_warns_but_stops() -> None:
    # Deliberate deviation from LangGraph (which stops silently, §2.17): the run still
    # stops and returns, but a warning says the pause can never be resumed.
    from threadloom.errors import PausedWithoutCheckpointerWarning

    app = abc(checkpointer=None, interrupt_before=["b"])
    with pytest.warns(PausedWithoutCheckpointerWarning):
        assert app.invoke({"x": 0}) == {"x": 0, "log": ["a"]}


# -- interrupt() ------------------------------------------------------------------------


def test_interrupt_inside_node_pending_write_and_state() -> None:
    calls: Counter = Counter()
    saver = InMemorySaver()
    app = abc(b=asking_b(calls), calls=calls, checkpointer=saver)
    out = app.invoke({"x": 0}, cfg())
    assert set(out) == {"x", "log", "__interrupt__"}
    assert out["x"] == 0 and out["log"] == ["a"]
    assert isinstance(out["__interrupt__"], list)
    (intr,) = out["__interrupt__"]
    assert isinstance(intr, Interrupt)
    assert intr.value == "b?"
    assert HEX32.match(intr.id)
    # the step-1 checkpoint stays the head; no new checkpoint
    snaps = history(app)
    assert [s.metadata["step"] for s in snaps] == [1, 0, -1]
    snap = app.get_state(cfg())
    assert snap.config == snaps[0].config
    assert snap.next == ("b",)
    assert snap.interrupts == (intr,)
    (task,) = snap.tasks
    assert task.name == "b"
    assert task.interrupts == (intr,)
    # pending write (task_b_id, "__interrupt__", [Interrupt]) on that checkpoint
    tup = saver.get_tuple(cfg())
    writes = [(tid, ch, val) for tid, ch, val in tup.pending_writes if ch == "__interrupt__"]
    assert writes == [(task.id, "__interrupt__", [intr])]


def test_resume_reruns_node_from_first_line() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    app.invoke({"x": 0}, cfg())
    head = app.get_state(cfg())
    task_id = head.tasks[0].id
    out = app.invoke(Command(resume="yes"), cfg())
    assert out == {"x": 0, "log": ["a", "b:yes", "c"]}
    assert "__interrupt__" not in out
    assert calls == {"a": 1, "b": 2, "c": 1}
    # same step-1 checkpoint re-planned with the same task ids; record view shows b's result
    step1 = [s for s in history(app) if s.metadata["step"] == 1]
    assert len(step1) == 1
    assert step1[0].config == head.config
    assert step1[0].tasks[0].id == task_id


def test_resume_with_dict_value_that_is_not_an_id_map() -> None:
    calls: Counter = Counter()
    seen = []

    def b(state: S) -> dict:
        seen.append(interrupt("approve?"))
        return {"log": ["b"]}

    app = abc(b=b, calls=calls)
    app.invoke({"x": 0}, cfg())
    app.invoke(Command(resume={"approved": True}), cfg())
    assert seen == [{"approved": True}]


def test_resume_with_id_map() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    out = app.invoke({"x": 0}, cfg())
    iid = out["__interrupt__"][0].id
    assert app.invoke(Command(resume={iid: "mapped"}), cfg())["log"] == ["a", "b:mapped", "c"]


def test_interrupt_id_stable_across_invoke_none_reruns() -> None:
    # §2.5: invoke(None) while an interrupt is pending re-runs the node -> same id.
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    first = app.invoke({"x": 0}, cfg())["__interrupt__"][0]
    again = app.invoke(None, cfg())
    assert again["__interrupt__"] == [first]
    assert calls["b"] == 2
    assert app.get_state(cfg()).interrupts == (first,)
    assert len(history(app)) == 3


async def test_several_interrupts_in_one_node_answered_in_turn(graph_api: GraphApi) -> None:
    entries = []
    answers = []

    def b(state: S) -> dict:
        entries.append(1)
        first = interrupt("q1")
        answers.append(("first", first))
        second = interrupt("q2")
        answers.append(("second", second))
        return {"log": [f"{first}+{second}"]}

    app = graph_api.abc(b=graph_api.node(b))
    out1 = await graph_api.invoke(app, {"x": 0}, cfg())
    assert [i.value for i in out1["__interrupt__"]] == ["q1"]
    out2 = await graph_api.invoke(app, Command(resume="ans1"), cfg())
    assert [i.value for i in out2["__interrupt__"]] == ["q2"]
    # the task's answers so far are kept as a (task_id, "__resume__", [...]) pending write
    task_id = (await graph_api.get_state(app, cfg())).tasks[0].id
    tup = app.checkpointer.get_tuple(cfg())
    assert (task_id, "__resume__", ["ans1"]) in tup.pending_writes
    assert out2["__interrupt__"][0].id != out1["__interrupt__"][0].id
    assert HEX32.match(out2["__interrupt__"][0].id)
    assert (await graph_api.get_state(app, cfg())).interrupts == tuple(out2["__interrupt__"])
    out3 = await graph_api.invoke(app, Command(resume="ans2"), cfg())
    assert out3 == {"x": 0, "log": ["a", "ans1+ans2", "c"]}
    assert len(entries) == 3
    assert answers == [("first", "ans1"), ("first", "ans1"), ("second", "ans2")]


def test_several_interrupts_answered_with_id_maps() -> None:
    def b(state: S) -> dict:
        return {"log": [interrupt("q1") + interrupt("q2")]}

    app = abc(b=b)
    i1 = app.invoke({"x": 0}, cfg())["__interrupt__"][0]
    i2 = app.invoke(Command(resume={i1.id: "A"}), cfg())["__interrupt__"][0]
    assert i2.value == "q2"
    assert app.invoke(Command(resume={i2.id: "B"}), cfg())["log"] == ["a", "AB", "c"]


def test_command_update_and_resume() -> None:
    # §2.6: the update is applied first, so the re-run node sees it.
    seen = []

    def b(state: S) -> dict:
        seen.append(state["x"])
        answer = interrupt("q")
        return {"log": [f"b:{answer}:{state['x']}"]}

    app = abc(b=b)
    app.invoke({"x": 0}, cfg())
    out = app.invoke(Command(update={"x": 42}, resume="ok"), cfg())
    assert out == {"x": 42, "log": ["a", "b:ok:42", "c"]}
    assert seen == [0, 42]


def test_command_update_input_on_paused_thread_keeps_pending_task() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    out = app.invoke(Command(update={"x": 5}), cfg())
    assert out == {"x": 5, "log": ["a", "b", "c"]}
    assert calls == {"a": 1, "b": 1, "c": 1}


@pytest.mark.filterwarnings("ignore")
async def test_no_checkpointer_interrupt_returns_but_cannot_resume(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(b=graph_api.asking_b(calls), calls=calls, checkpointer=None)
    out = await graph_api.invoke(app, {"x": 0})
    assert out["log"] == ["a"]
    assert [i.value for i in out["__interrupt__"]] == ["b?"]
    with pytest.raises(RuntimeError, match="Cannot use Command\\(resume=...\\) without "
                                           "checkpointer"):
        await graph_api.invoke(app, Command(resume="x"))
    with pytest.raises(ValueError, match="No checkpointer set"):
        await graph_api.get_state(app, cfg())


def test_invoke_v2_reports_interrupts() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    out = app.invoke({"x": 0}, cfg(), version="v2")
    assert out.value == {"x": 0, "log": ["a"]}
    assert [i.value for i in out.interrupts] == ["b?"]


def test_interrupt_swallowed_by_broad_except() -> None:
    # GraphInterrupt is an Exception: a bare `except Exception` swallows the pause.
    def b(state: S) -> dict:
        try:
            interrupt("q")
        except Exception:  # noqa: BLE001
            return {"log": ["swallowed"]}
        return {"log": ["b"]}

    out = abc(b=b).invoke({"x": 0}, cfg())
    assert out == {"x": 0, "log": ["a", "swallowed", "c"]}


def test_interrupt_dataclass() -> None:
    i = Interrupt(value="q", id="abc")
    assert (i.value, i.id) == ("q", "abc")
    assert i == Interrupt(value="q", id="abc")
    assert i != Interrupt(value="q", id="other")
    assert Interrupt("q").id == "placeholder-id"


# -- parallel interrupts (§2.3) -----------------------------------------------------------


def parallel_app(calls: Counter) -> Any:
    def ask(name: str):  # noqa: ANN202
        def node(state: S) -> dict:
            calls[name] += 1
            return {"log": [f"{name}:{interrupt(f'{name}?')}"]}

        return node

    g = StateGraph(S)
    g.add_node("p1", ask("p1"))
    g.add_node("p2", ask("p2"))
    g.add_node("c", logger("c", calls))
    g.add_edge(START, "p1")
    g.add_edge(START, "p2")
    g.add_edge(["p1", "p2"], "c")
    return g.compile(checkpointer=InMemorySaver())


def test_parallel_interrupts_all_returned_in_task_order() -> None:
    calls: Counter = Counter()
    app = parallel_app(calls)
    out = app.invoke({"x": 0}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["p1?", "p2?"]
    snap = app.get_state(cfg())
    assert snap.next == ("p1", "p2")
    assert [i.value for i in snap.interrupts] == ["p1?", "p2?"]
    assert calls == {"p1": 1, "p2": 1}


def _review(saver: Any, api: GraphApi | None = None) -> Any:
    """START -> legal and finance (added in that order), both asking, and two Send
    packets to ``sent``, which asks too."""

    def asking(name: str) -> Any:
        return lambda state: {"log": [f"{name}:{interrupt(name)}"]}

    def wrap(fn: Any) -> Any:
        return api.node(fn) if api is not None else fn

    g = StateGraph(S)
    g.add_node("legal", wrap(asking("legal")))
    g.add_node("finance", wrap(asking("finance")))
    g.add_node("sent", wrap(lambda arg: {"log": [f"{arg}:{interrupt(arg)}"]}))
    g.add_conditional_edges(
        START, lambda s: ["legal", "finance", Send("sent", "s1"), Send("sent", "s0")])
    return g.compile(checkpointer=saver)


async def test_get_state_lists_tasks_in_the_order_the_nodes_were_added(
    graph_api: GraphApi
) -> None:
    """As LangGraph's ``get_state`` (and history) lists them: the Send packets' tasks
    first, as they were sent, then the triggered nodes in the order they were added -
    not by name, the order the run itself pauses them in."""
    app = _review(InMemorySaver(), graph_api)
    out = await graph_api.invoke(app, {"x": 0, "log": []}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["s1", "s0", "finance", "legal"]
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("sent", "sent", "legal", "finance")
    assert [(t.name, t.path[0]) for t in snap.tasks] == [
        ("sent", PUSH), ("sent", PUSH), ("legal", PULL), ("finance", PULL)]
    assert [i.value for i in snap.interrupts] == ["s1", "s0", "legal", "finance"]
    assert (await graph_api.history(app))[0].next == snap.next
    legal = next(i for i in snap.interrupts if i.value == "legal")
    out = await graph_api.invoke(app, Command(resume={legal.id: "ok"}), cfg())
    assert [i.value for i in out["__interrupt__"]] == ["s1", "s0", "finance"]
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("sent", "sent", "finance")
    record = await graph_api.get_state(app, snap.config)
    assert [t.name for t in record.tasks] == ["sent", "sent", "legal", "finance"]


def test_get_state_task_order_on_sqlite(tmp_path: Any) -> None:
    with SqliteSaver.from_conn_string(str(tmp_path / "order.db")) as saver:
        app = _review(saver)
        app.invoke({"x": 0, "log": []}, cfg())
        assert app.get_state(cfg()).next == ("sent", "sent", "legal", "finance")
        assert next(iter(app.get_state_history(cfg()))).next == (
            "sent", "sent", "legal", "finance")


def test_a_subgraphs_state_lists_its_tasks_in_the_order_they_were_added() -> None:
    child = (StateGraph(S)
             .add_node("legal", lambda s: {"log": [interrupt("legal")]})
             .add_node("finance", lambda s: {"log": [interrupt("finance")]})
             .add_edge(START, "legal").add_edge(START, "finance").compile())
    app = (StateGraph(S).add_node("zsub", child).add_node("anode", lambda s: {"log": ["a"]})
           .add_edge(START, "zsub").add_edge(START, "anode")
           .compile(checkpointer=InMemorySaver()))
    app.invoke({"x": 0, "log": []}, cfg())
    snap = app.get_state(cfg(), subgraphs=True)
    assert snap.next == ("zsub",)
    assert [t.name for t in snap.tasks] == ["zsub", "anode"]
    assert snap.tasks[0].state.next == ("legal", "finance")


async def test_a_run_from_an_update_state_checkpoint_plans_nodes_in_added_order(
    graph_api: GraphApi
) -> None:
    """A checkpoint ``update_state`` made records no updated channels (LangGraph's do
    not): the run from it plans every node, in the order the nodes were added."""
    saver = InMemorySaver()
    g = StateGraph(S)
    for name in ("zeta", "alpha", "beta"):
        g.add_node(name, graph_api.node(lambda s, name=name: {"log": [interrupt(name)]}))
    g.add_node("first", graph_api.node(lambda s: {"log": ["first"]}))
    g.add_edge(START, "first")
    for name in ("beta", "zeta", "alpha"):
        g.add_edge("first", name)
    app = g.compile(checkpointer=saver, interrupt_before=["zeta"])
    await graph_api.invoke(app, {"x": 0, "log": []}, cfg())
    await graph_api.update_state(app, cfg(), {"log": ["edited"]}, as_node="first")
    assert saver.get_tuple(cfg()).checkpoint["updated_channels"] is None
    assert (await graph_api.get_state(app, cfg())).next == ("zeta", "alpha", "beta")
    chunks = await graph_api.stream(app, None, cfg(), stream_mode="tasks")
    assert [c["name"] for c in chunks if "input" in c] == ["zeta", "alpha", "beta"]
    snap = await graph_api.get_state(app, cfg())
    assert [i.value for i in snap.interrupts] == ["zeta", "alpha", "beta"]


def test_a_replay_plans_the_forked_checkpoints_nodes_by_name() -> None:
    """A run from a past checkpoint that records its updated channels plans the nodes
    they trigger by name, as a run does, though the fork it saves records none (both as
    LangGraph's); get_state lists them in the order they were added."""
    saver = InMemorySaver()
    app = (StateGraph(S).add_node("legal", logger("legal")).add_node("finance", logger("finance"))
           .add_node("first", logger("first")).add_edge(START, "first")
           .add_edge("first", "legal").add_edge("first", "finance")
           .compile(checkpointer=saver))
    app.invoke({"x": 0, "log": []}, cfg())
    past = next(s for s in app.get_state_history(cfg()) if s.next)
    assert past.next == ("legal", "finance")
    chunks = list(app.stream(None, past.config, stream_mode="tasks"))
    assert [c["name"] for c in chunks if "input" in c] == ["finance", "legal"]
    fork = next(t for t in saver.list(cfg()) if t.metadata["source"] == "fork")
    assert fork.checkpoint["updated_channels"] is None


def test_bare_resume_with_several_pending_is_runtime_error() -> None:
    app = parallel_app(Counter())
    app.invoke({"x": 0}, cfg())
    with pytest.raises(RuntimeError, match="multiple pending interrupts"):
        app.invoke(Command(resume="x"), cfg())


def test_resume_map_answering_a_subset() -> None:
    calls: Counter = Counter()
    app = parallel_app(calls)
    i1, i2 = app.invoke({"x": 0}, cfg())["__interrupt__"]
    out = app.invoke(Command(resume={i1.id: "one"}), cfg())
    # p1 finished, p2 interrupted again (same id); c has not run
    assert [i.id for i in out["__interrupt__"]] == [i2.id]
    assert calls["c"] == 0
    snap = app.get_state(cfg())
    assert snap.next == ("p2",)
    assert snap.values["log"] == ["p1:one"]  # live view includes the finished sibling
    assert [i.id for i in snap.interrupts] == [i2.id]
    # the record view of the same checkpoint shows both tasks, p1 with its result
    record = app.get_state(snap.config)
    assert record.next == ("p1", "p2")
    assert record.values["log"] == []
    results = {t.name: t.result for t in record.tasks}
    assert results == {"p1": {"log": ["p1:one"]}, "p2": None}
    out = app.invoke(Command(resume={i2.id: "two"}), cfg())
    assert out == {"x": 0, "log": ["p1:one", "p2:two", "c"]}
    # p1 finished on the first resume and is not re-run; p2 ran 3 times
    assert calls == {"p1": 2, "p2": 3, "c": 1}


def test_resume_map_with_unknown_id_is_ignored() -> None:
    calls: Counter = Counter()
    app = parallel_app(calls)
    i1, i2 = app.invoke({"x": 0}, cfg())["__interrupt__"]
    out = app.invoke(Command(resume={"0" * 32: "nobody"}), cfg())
    assert [i.id for i in out["__interrupt__"]] == [i1.id, i2.id]


def test_resume_map_answering_all_at_once() -> None:
    calls: Counter = Counter()
    app = parallel_app(calls)
    i1, i2 = app.invoke({"x": 0}, cfg())["__interrupt__"]
    out = app.invoke(Command(resume={i1.id: "A", i2.id: "B"}), cfg())
    assert out["log"] == ["p1:A", "p2:B", "c"]


def test_bare_resume_with_one_pending_goes_to_it() -> None:
    # one task interrupted, sibling finished: a bare value answers the only pending one
    calls: Counter = Counter()

    def p1(state: S) -> dict:
        calls["p1"] += 1
        return {"log": [f"p1:{interrupt('p1?')}"]}

    g = StateGraph(S)
    g.add_node("p1", p1)
    g.add_node("p2", logger("p2", calls))
    g.add_edge(START, "p1")
    g.add_edge(START, "p2")
    app = g.compile(checkpointer=InMemorySaver())
    app.invoke({"x": 0}, cfg())
    assert app.invoke(Command(resume="v"), cfg())["log"] == ["p1:v", "p2"]
    assert calls == {"p1": 2, "p2": 1}


def test_live_state_includes_finished_sibling_writes() -> None:
    # §2.23
    calls: Counter = Counter()

    def a(state: S) -> dict:
        calls["a"] += 1
        return {"log": [f"a:{interrupt('a?')}"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", logger("b", calls))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    app = g.compile(checkpointer=InMemorySaver())
    out = app.invoke({"x": 0}, cfg())
    assert [i.value for i in out["__interrupt__"]] == ["a?"]
    snap = app.get_state(cfg())
    assert snap.values == {"x": 0, "log": ["b"]}
    assert snap.next == ("a",)
    assert [i.value for i in snap.interrupts] == ["a?"]
    record = history(app)[0]
    assert record.values == {"x": 0, "log": []}
    assert record.next == ("a", "b")
    assert {t.name: t.result for t in record.tasks} == {"a": None, "b": {"log": ["b"]}}
    app.invoke(Command(resume="r"), cfg())
    assert calls == {"a": 2, "b": 1}
    assert app.get_state(cfg()).values["log"] == ["a:r", "b"]


def test_live_state_tasks_include_finished_siblings_with_result() -> None:
    def a(state: S) -> dict:
        return {"log": [f"a:{interrupt('a?')}"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", logger("b"))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    app = g.compile(checkpointer=InMemorySaver())
    app.invoke({"x": 0}, cfg())
    snap = app.get_state(cfg())
    assert snap.next == ("a",)
    assert [(t.name, t.result) for t in snap.tasks] == [("a", None), ("b", {"log": ["b"]})]
    assert [i.value for i in snap.tasks[0].interrupts] == ["a?"]


# -- new input / invoke(None) on various threads (§2.4, §2.5) ----------------------------


def test_new_input_to_thread_paused_at_breakpoint() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    out = app.invoke({"x": 5, "log": ["new"]}, cfg())
    assert out == {"x": 5, "log": ["a", "new", "a"]}
    assert calls == {"a": 2}
    assert app.get_state(cfg()).next == ("b",)


def test_new_input_to_thread_paused_in_interrupt() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    first = app.invoke({"x": 0}, cfg())["__interrupt__"][0]
    out = app.invoke({"x": 5, "log": ["new"]}, cfg())
    assert out["log"] == ["a", "new", "a"]
    assert out["x"] == 5
    second = out["__interrupt__"][0]
    assert second.value == "b?"
    assert second.id != first.id
    assert calls == {"a": 2, "b": 2}
    assert app.invoke(Command(resume="ok"), cfg())["log"] == ["a", "new", "a", "b:ok", "c"]


def test_invoke_none_on_finished_thread_returns_state() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls)
    app.invoke({"x": 0}, cfg())
    n = len(history(app))
    assert app.invoke(None, cfg()) == {"x": 0, "log": ["a", "b", "c"]}
    assert app.invoke(Command(resume="late"), cfg()) == {"x": 0, "log": ["a", "b", "c"]}
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert len(history(app)) == n


def test_invoke_none_on_empty_thread_is_empty_input_error() -> None:
    app = abc()
    with pytest.raises(EmptyInputError, match="Received no input for __start__"):
        app.invoke(None, cfg("empty"))


def test_empty_command_input_is_empty_input_error() -> None:
    app = abc()
    with pytest.raises(EmptyInputError):
        app.invoke(Command(), cfg())
    app.invoke({"x": 0}, cfg())
    # 1.2.22 crashes on Command(resume=None); the spec asks for EmptyInputError
    with pytest.raises(EmptyInputError):
        app.invoke(Command(resume=None), cfg())


def test_empty_dict_input_is_accepted() -> None:
    app = abc()
    assert app.invoke({}, cfg()) == {"log": ["a", "b", "c"]}


# -- errors are checkpointed (§2.7) ---------------------------------------------------------


def test_error_checkpointed_and_only_failed_task_retried() -> None:
    calls: Counter = Counter()
    fail = {"on": True}

    def a(state: S) -> dict:
        calls["a"] += 1
        if fail["on"]:
            raise RuntimeError("kaput")
        return {"log": ["a"]}

    g = StateGraph(S)
    g.add_node("a", a)
    g.add_node("b", logger("b", calls))
    g.add_node("c", logger("c", calls))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge(["a", "b"], "c")
    saver = InMemorySaver()
    app = g.compile(checkpointer=saver)
    with pytest.raises(RuntimeError, match="kaput"):
        app.invoke({"x": 0}, cfg())
    snap = app.get_state(cfg())
    assert snap.next == ("a",)
    assert snap.values["log"] == ["b"]
    task = next(t for t in snap.tasks if t.name == "a")
    assert task.error == "RuntimeError('kaput')"
    tup = saver.get_tuple(cfg())
    assert any(ch == "__error__" for _, ch, _ in tup.pending_writes)
    assert calls == {"a": 1, "b": 1}
    fail["on"] = False
    out = app.invoke(None, cfg())
    assert out == {"x": 0, "log": ["a", "b", "c"]}
    assert calls == {"a": 2, "b": 1, "c": 1}


# -- update_state (§1.17, §2.8-2.10) -------------------------------------------------------


def test_update_state_as_node_a_keeps_next() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    head = app.get_state(cfg())
    new_config = app.update_state(cfg(), {"x": 9, "log": ["edit"]}, as_node="a")
    assert set(new_config["configurable"]) >= {"thread_id", "checkpoint_ns", "checkpoint_id"}
    snap = app.get_state(cfg())
    assert snap.config["configurable"]["checkpoint_id"] == \
        new_config["configurable"]["checkpoint_id"]
    assert snap.values == {"x": 9, "log": ["a", "edit"]}
    assert snap.next == ("b",)
    assert snap.metadata["source"] == "update"
    assert snap.metadata["step"] == head.metadata["step"] + 1
    assert snap.parent_config == head.config
    assert app.invoke(None, cfg()) == {"x": 9, "log": ["a", "edit", "b", "c"]}
    assert calls == {"a": 1, "b": 1, "c": 1}


def test_update_state_as_node_b_skips_b() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    app.update_state(cfg(), {"log": ["manual-b"]}, as_node="b")
    snap = app.get_state(cfg())
    assert snap.next == ("c",)
    assert app.invoke(None, cfg())["log"] == ["a", "manual-b", "c"]
    assert calls == {"a": 1, "c": 1}


def test_update_state_without_as_node_uses_last_writer() -> None:
    app = abc(interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    app.update_state(cfg(), {"x": 3})
    snap = app.get_state(cfg())
    assert snap.next == ("b",)
    assert snap.values == {"x": 3, "log": ["a"]}


def test_update_state_as_end_clears_pending_tasks() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    app.update_state(cfg(), None, as_node=END)
    snap = app.get_state(cfg())
    assert snap.next == ()
    assert snap.metadata["source"] == "update"
    assert app.invoke(None, cfg()) == {"x": 0, "log": ["a"]}
    assert calls == {"a": 1}


async def test_update_state_on_fresh_thread_acts_as_start(graph_api: GraphApi) -> None:
    calls: Counter = Counter()
    app = graph_api.abc(calls=calls)
    await graph_api.update_state(app, cfg("fresh"), {"x": 1, "log": ["seed"]})
    snap = await graph_api.get_state(app, cfg("fresh"))
    assert snap.values == {"x": 1, "log": ["seed"]}
    assert snap.next == ("a",)
    assert snap.metadata["source"] == "update"
    assert snap.metadata["step"] == 0
    out = await graph_api.invoke(app, None, cfg("fresh"))
    assert out == {"x": 1, "log": ["seed", "a", "b", "c"]}


def test_update_state_ambiguous_and_unknown_node() -> None:
    g = StateGraph(S)
    g.add_node("p", logger("p"))
    g.add_node("q", logger("q"))
    g.add_edge(START, "p")
    g.add_edge(START, "q")
    app = g.compile(checkpointer=InMemorySaver())
    app.invoke({"x": 0}, cfg())
    with pytest.raises(InvalidUpdateError, match="Ambiguous update, specify as_node"):
        app.update_state(cfg(), {"x": 1})
    with pytest.raises(InvalidUpdateError, match="Node zzz does not exist"):
        app.update_state(cfg(), {"x": 1}, as_node="zzz")
    app.update_state(cfg(), {"x": 1}, as_node="p")
    assert app.get_state(cfg()).values["x"] == 1


def test_update_state_as_input() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls)
    app.update_state(cfg(), {"x": 2, "log": ["in"]}, as_node="__input__")
    snap = app.get_state(cfg())
    assert snap.metadata["source"] == "input"
    assert snap.next == ("__start__",)
    assert app.invoke(None, cfg()) == {"x": 2, "log": ["in", "a", "b", "c"]}


def test_update_state_as_copy_forks() -> None:
    app = abc(interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    head = app.get_state(cfg())
    app.update_state(cfg(), None, as_node="__copy__")
    snap = app.get_state(cfg())
    assert snap.metadata["source"] == "fork"
    assert snap.values == head.values
    assert snap.next == ("b",)
    assert snap.config != head.config


def test_update_state_with_command_goto() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls, interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    app.update_state(cfg(), Command(update={"x": 1}, goto="c"), as_node="b")
    assert app.get_state(cfg()).next == ("c",)
    assert app.invoke(None, cfg()) == {"x": 1, "log": ["a", "c"]}


async def test_update_state_while_paused_in_interrupt(graph_api: GraphApi) -> None:
    # §2.10
    calls: Counter = Counter()
    app = graph_api.abc(b=graph_api.asking_b(calls), calls=calls)
    first = (await graph_api.invoke(app, {"x": 0}, cfg()))["__interrupt__"][0]
    await graph_api.update_state(app, cfg(), {"x": 7})
    snap = await graph_api.get_state(app, cfg())
    assert snap.next == ("b",)
    assert snap.interrupts == ()
    assert all(t.interrupts == () for t in snap.tasks)
    # Command(resume=...) still answers the re-run's interrupt()
    out = await graph_api.invoke(app, Command(resume="yes"), cfg())
    assert out == {"x": 7, "log": ["a", "b:yes", "c"]}
    # and invoke(None) instead raises a fresh interrupt with a new id
    app2 = graph_api.abc(b=graph_api.asking_b(Counter()))
    first2 = (await graph_api.invoke(app2, {"x": 0}, cfg()))["__interrupt__"][0]
    await graph_api.update_state(app2, cfg(), {"x": 7})
    again = (await graph_api.invoke(app2, None, cfg()))["__interrupt__"][0]
    assert again.value == "b?"
    assert again.id != first2.id
    assert HEX32.match(first.id)


def test_aupdate_state_returns_config_of_new_checkpoint() -> None:
    app = abc(interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    new = app.update_state(cfg(), {"x": 1}, as_node="a")
    assert app.get_state(new).values["x"] == 1
    assert new["configurable"]["checkpoint_ns"] == ""
    assert new["configurable"]["thread_id"] == "t"


# -- time travel (§2.11) ---------------------------------------------------------------


def test_fork_via_update_state_on_old_checkpoint() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls)
    app.invoke({"x": 0}, cfg())
    old = [s for s in history(app) if s.metadata["step"] == 1][0]  # next == (b,)
    assert old.next == ("b",)
    fork_cfg = app.update_state(old.config, {"x": 100})
    head = app.get_state(cfg())
    assert head.config["configurable"]["checkpoint_id"] == \
        fork_cfg["configurable"]["checkpoint_id"]
    assert head.parent_config["configurable"]["checkpoint_id"] == \
        old.config["configurable"]["checkpoint_id"]
    assert head.values == {"x": 100, "log": ["a"]}
    assert head.next == ("b",)
    assert len(history(app)) == 6
    out = app.invoke(None, cfg())
    assert out == {"x": 100, "log": ["a", "b", "c"]}
    assert calls == {"a": 1, "b": 2, "c": 2}


def test_replay_from_checkpoint_id() -> None:
    calls: Counter = Counter()
    app = abc(calls=calls)
    app.invoke({"x": 0}, cfg())
    old = [s for s in history(app) if s.metadata["step"] == 1][0]
    out = app.invoke(None, old.config)
    assert out == {"x": 0, "log": ["a", "b", "c"]}
    assert calls == {"a": 1, "b": 2, "c": 2}
    snaps = history(app)
    # old checkpoints stay; a fork checkpoint with parent = the addressed one was written
    assert len(snaps) > 5
    forks = [s for s in snaps if s.metadata["source"] == "fork"]
    assert len(forks) == 1
    assert forks[0].parent_config["configurable"]["checkpoint_id"] == \
        old.config["configurable"]["checkpoint_id"]
    assert forks[0].values == old.values
    assert app.get_state(cfg()).values["log"] == ["a", "b", "c"]


def test_replay_refires_interrupts() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    app.invoke({"x": 0}, cfg())
    app.invoke(Command(resume="first"), cfg())
    old = [s for s in history(app) if s.metadata["step"] == 1][0]
    out = app.invoke(None, old.config)
    assert [i.value for i in out["__interrupt__"]] == ["b?"]
    assert app.invoke(Command(resume="second"), cfg())["log"] == ["a", "b:second", "c"]


def test_get_state_with_checkpoint_id_is_record_view() -> None:
    app = abc()
    app.invoke({"x": 0}, cfg())
    old = [s for s in history(app) if s.metadata["step"] == 1][0]
    snap = app.get_state(old.config)
    assert snap.values == {"x": 0, "log": ["a"]}
    assert snap.next == ("b",)
    assert [t.name for t in snap.tasks] == ["b"]


def test_record_view_shows_result_of_single_task() -> None:
    calls: Counter = Counter()
    app = abc(b=asking_b(calls), calls=calls)
    app.invoke({"x": 0}, cfg())
    app.invoke(Command(resume="yes"), cfg())
    results = {s.metadata["step"]: [t.result for t in s.tasks] for s in history(app)}
    assert results[0] == [{"log": ["a"]}]
    assert results[1] == [{"log": ["b:yes"]}]
    assert results[2] == [{"log": ["c"]}]


# -- the seed's examples --------------------------------------------------------------


class ApprovalState(TypedDict):
    messages: Annotated[list, add_messages]
    approved: bool


def draft_email(state: ApprovalState) -> dict:
    return {"messages": [("assistant", "Draft: Dear client, here is the report...")]}


def send_email(state: ApprovalState) -> dict:
    return {"messages": [("assistant", "Email sent successfully.")]}


def email_builder() -> StateGraph:
    builder = StateGraph(ApprovalState)
    builder.add_node("draft", draft_email)
    builder.add_node("send", send_email)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "send")
    builder.add_edge("send", END)
    return builder


def test_seed_email_interrupt_before_send() -> None:
    checkpointer = MemorySaver()
    graph = email_builder().compile(checkpointer=checkpointer, interrupt_before=["send"])
    thread_config = {"configurable": {"thread_id": "email-review-1"}}
    result = graph.invoke(
        {"messages": [HumanMessage(content="Send the quarterly report.")]}, config=thread_config
    )
    assert "__interrupt__" not in result
    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    assert last.content == "Draft: Dear client, here is the report..."
    assert len(result["messages"]) == 2
    assert all(isinstance(m.id, str) for m in result["messages"])
    snapshot = graph.get_state(thread_config)
    assert snapshot.next == ("send",)
    final = graph.invoke(None, config=thread_config)
    assert final["messages"][-1].content == "Email sent successfully."
    assert [m.content for m in final["messages"]] == [
        "Send the quarterly report.",
        "Draft: Dear client, here is the report...",
        "Email sent successfully.",
    ]
    assert graph.get_state(thread_config).next == ()


def test_seed_email_interrupt_after_draft() -> None:
    checkpointer = MemorySaver()
    builder = email_builder()
    graph_after = builder.compile(checkpointer=checkpointer, interrupt_after=["draft"])
    thread_config = {"configurable": {"thread_id": "email-review-2"}}
    result = graph_after.invoke(
        {"messages": [HumanMessage(content="Send the quarterly report.")]}, config=thread_config
    )
    assert result["messages"][-1].content == "Draft: Dear client, here is the report..."
    assert graph_after.get_state(thread_config).next == ("send",)
    final = graph_after.invoke(None, config=thread_config)
    assert final["messages"][-1].content == "Email sent successfully."


def test_seed_compiles_twice_from_one_builder_sharing_a_checkpointer() -> None:
    checkpointer = MemorySaver()
    builder = email_builder()
    before = builder.compile(checkpointer=checkpointer, interrupt_before=["send"])
    after = builder.compile(checkpointer=checkpointer, interrupt_after=["draft"])
    tc = {"configurable": {"thread_id": "shared"}}
    before.invoke({"messages": [HumanMessage(content="hi")]}, tc)
    assert after.get_state(tc).next == ("send",)
    assert after.invoke(None, tc)["messages"][-1].content == "Email sent successfully."


class InteractiveState(TypedDict):
    messages: Annotated[list, add_messages]
    user_feedback: str


def plan_review_graph() -> tuple[Any, Counter]:
    calls: Counter = Counter()

    def generate_plan(state: InteractiveState) -> dict:
        calls["generate"] += 1
        return {"messages": [("assistant", "Plan: Step 1, Step 2, Step 3")]}

    def review_plan(state: InteractiveState) -> dict:
        calls["review"] += 1
        feedback = interrupt(
            "Please review the plan above and provide feedback or type 'approve'."
        )
        return {"user_feedback": feedback}

    def execute_plan(state: InteractiveState) -> dict:
        calls["execute"] += 1
        fb = state.get("user_feedback", "")
        if "approve" in fb.lower():
            return {"messages": [("assistant", "Executing the plan now.")]}
        return {"messages": [("assistant", f"Revising plan based on: {fb}")]}

    builder = StateGraph(InteractiveState)
    builder.add_node("generate", generate_plan)
    builder.add_node("review", review_plan)
    builder.add_node("execute", execute_plan)
    builder.add_edge(START, "generate")
    builder.add_edge("generate", "review")
    builder.add_edge("review", "execute")
    builder.add_edge("execute", END)
    return builder.compile(checkpointer=MemorySaver()), calls


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [
        ("approve", "Executing the plan now."),
        ("Looks good, APPROVE it", "Executing the plan now."),
        ("add a rollback step", "Revising plan based on: add a rollback step"),
    ],
)
def test_seed_plan_review_inline_interrupt(feedback: str, expected: str) -> None:
    graph, calls = plan_review_graph()
    config = {"configurable": {"thread_id": "plan-review-1"}}
    result = graph.invoke({"messages": [("user", "Plan the migration.")]}, config)
    (pause,) = result["__interrupt__"]
    assert pause.value == "Please review the plan above and provide feedback or type 'approve'."
    assert result["messages"][-1].content == "Plan: Step 1, Step 2, Step 3"
    snap = graph.get_state(config)
    assert snap.next == ("review",)
    assert snap.interrupts == (pause,)
    final = graph.invoke(Command(resume=feedback), config)
    assert final["messages"][-1].content == expected
    assert final["user_feedback"] == feedback
    assert "__interrupt__" not in final
    assert calls == {"generate": 1, "review": 2, "execute": 1}
    assert graph.get_state(config).next == ()


# -- update_state re-evaluates conditional edges (the seed's tool-approval pattern) -------


def routed_app(calls: Counter) -> Any:
    def route(state: S) -> str:
        return "tools" if state["x"] > 0 else END

    g = StateGraph(S)
    g.add_node("agent", logger("agent", calls))
    g.add_node("tools", logger("tools", calls))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", route, ["tools", END])
    g.add_edge("tools", END)
    return g.compile(checkpointer=InMemorySaver(), interrupt_before=["tools"])


def test_update_state_as_node_reevaluates_conditional_edges() -> None:
    calls: Counter = Counter()
    app = routed_app(calls)
    assert app.invoke({"x": 0}, cfg()) == {"x": 0, "log": ["agent"]}
    assert app.get_state(cfg()).next == ()
    app.update_state(cfg(), {"x": 1}, as_node="agent")
    assert app.get_state(cfg()).next == ("tools",)
    assert app.invoke(None, cfg()) == {"x": 1, "log": ["agent", "tools"]}
    assert calls == {"agent": 1, "tools": 1}


def test_update_state_can_reroute_away_from_breakpoint() -> None:
    calls: Counter = Counter()
    app = routed_app(calls)
    app.invoke({"x": 1}, cfg())
    assert app.get_state(cfg()).next == ("tools",)
    app.update_state(cfg(), {"x": -1}, as_node="agent")
    assert app.get_state(cfg()).next == ()
    assert app.invoke(None, cfg()) == {"x": -1, "log": ["agent"]}
    assert calls == {"agent": 1}


# -- bulk_update_state ----------------------------------------------------------------------


def test_bulk_update_state_one_checkpoint_per_superstep() -> None:
    from threadloom.types import StateUpdate

    app = abc(interrupt_before=["b"])
    app.invoke({"x": 0}, cfg())
    before = len(history(app))
    app.bulk_update_state(cfg(), [[StateUpdate({"x": 1}, "a")],
                                  [StateUpdate({"log": ["manual-b"]}, "b")]])
    assert len(history(app)) == before + 2
    snap = app.get_state(cfg())
    assert snap.next == ("c",)
    assert snap.values == {"x": 1, "log": ["a", "manual-b"]}


def test_bulk_update_state_errors() -> None:
    from threadloom.types import StateUpdate

    app = abc()
    app.invoke({"x": 0}, cfg())
    with pytest.raises(ValueError):
        app.bulk_update_state(cfg(), [])
    with pytest.raises(ValueError):
        app.bulk_update_state(cfg(), [[]])
    with pytest.raises(InvalidUpdateError, match="as_node is required when applying multiple "
                                                 "updates"):
        app.bulk_update_state(cfg(), [[StateUpdate({"x": 1}), StateUpdate({"x": 2})]])


def test_bulk_update_state_several_updates_in_one_superstep() -> None:
    from threadloom.types import StateUpdate

    g = StateGraph(S)
    g.add_node("p", logger("p"))
    g.add_node("q", logger("q"))
    g.add_node("c", logger("c"))
    g.add_edge(START, "p")
    g.add_edge(START, "q")
    g.add_edge(["p", "q"], "c")
    app = g.compile(checkpointer=InMemorySaver(), interrupt_before=["p", "q"])
    app.invoke({"x": 0}, cfg())
    app.bulk_update_state(cfg(), [[StateUpdate({"log": ["P"]}, "p"),
                                   StateUpdate({"log": ["Q"]}, "q")]])
    assert app.get_state(cfg()).next == ("c",)
    assert app.invoke(None, cfg())["log"] == ["P", "Q", "c"]


# -- the engine never mutates what it handed to the checkpointer (§2.26) ----------------------


class AssertImmutableSaver(InMemorySaver):
    def __init__(self) -> None:
        super().__init__()
        self.handed: list[tuple[Any, Any, Any, Any]] = []

    def put(self, config, checkpoint, metadata, new_versions):  # noqa: ANN001, ANN201
        import copy

        self.handed.append((checkpoint, copy.deepcopy(checkpoint), metadata,
                            copy.deepcopy(metadata)))
        return super().put(config, checkpoint, metadata, new_versions)

    def assert_untouched(self) -> None:
        assert self.handed
        for given, snapshot, meta, meta_snapshot in self.handed:
            assert given == snapshot
            assert meta == meta_snapshot


def test_checkpoints_handed_to_saver_are_never_mutated() -> None:
    saver = AssertImmutableSaver()
    calls: Counter = Counter()

    def p(state: S) -> dict:
        return {"log": [f"p:{interrupt('p?')}"]}

    g = StateGraph(S)
    g.add_node("a", logger("a", calls))
    g.add_node("p", p)
    g.add_node("q", logger("q", calls))
    g.add_edge(START, "a")
    g.add_edge("a", "p")
    g.add_edge("a", "q")
    app = g.compile(checkpointer=saver, interrupt_before=["a"])
    app.invoke({"x": 0, "log": ["in"]}, cfg())
    app.update_state(cfg(), {"x": 1})
    app.invoke(None, cfg())
    app.invoke(Command(resume="ok"), cfg())
    app.invoke({"x": 2, "log": ["again"]}, cfg())
    app.invoke(None, cfg())
    saver.assert_untouched()
