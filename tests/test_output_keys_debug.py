"""``output_keys``, ``print_mode`` and ``debug`` of invoke / stream, as LangGraph has them:
output_keys narrows what values and updates show (and what invoke returns); print_mode
prints events as they happen; debug=True (at call or compile time) prints updates and
values. The expected chunks are what LangGraph 1.2 gives for the same graphs."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.types import Command, interrupt


class S(TypedDict, total=False):
    x: int
    y: int
    z: int


def _chain() -> StateGraph:
    def a(state: S) -> S:
        return {"x": state.get("x", 0) + 1}

    def b(state: S) -> S:
        return {"y": 10, "x": 5}

    def c(state: S) -> S:
        return {"z": 3}

    return StateGraph(S).add_sequence([a, b, c]).add_edge(START, "a").add_edge("c", END)


def test_stream_values_show_the_output_keys_after_steps_that_wrote_them() -> None:
    app = _chain().compile()
    assert list(app.stream({"x": 1}, stream_mode="values", output_keys=["y"])) == [{"y": 10}]
    assert list(app.stream({"x": 1}, stream_mode="values", output_keys="y")) == [10]
    assert list(app.stream({"x": 1}, stream_mode="values", output_keys=["x", "y"])) == [
        {"x": 1}, {"x": 2}, {"x": 5, "y": 10}]
    # without output_keys: the whole state after every step
    assert list(app.stream({"x": 1}, stream_mode="values"))[-1] == {"x": 5, "y": 10, "z": 3}


def test_stream_updates_show_only_the_writes_to_the_output_keys() -> None:
    app = _chain().compile()
    assert list(app.stream({"x": 1}, stream_mode="updates", output_keys=["y"])) == [
        {"a": None}, {"b": {"y": 10}}, {"c": None}]
    assert list(app.stream({"x": 1}, stream_mode="updates", output_keys="y")) == [
        {"a": None}, {"b": 10}, {"c": None}]
    assert list(app.stream({"x": 1}, stream_mode=["values", "updates"], output_keys=["y"])) == [
        ("updates", {"a": None}), ("updates", {"b": {"y": 10}}), ("values", {"y": 10}),
        ("updates", {"c": None})]


def test_stream_v2_parts_are_narrowed_too() -> None:
    app = _chain().compile()
    parts = list(app.stream({"x": 1}, stream_mode=["values", "updates"], output_keys=["y"],
                            version="v2"))
    assert [(p["type"], p["data"]) for p in parts] == [
        ("updates", {"a": None}), ("updates", {"b": {"y": 10}}), ("values", {"y": 10}),
        ("updates", {"c": None})]


def test_invoke_returns_the_output_keys() -> None:
    app = _chain().compile()
    assert app.invoke({"x": 1}, output_keys=["y"]) == {"y": 10}
    assert app.invoke({"x": 1}, output_keys="y") == 10
    assert app.invoke({"x": 1}, output_keys=["x", "y"]) == {"x": 5, "y": 10}
    assert app.invoke({"x": 1}, output_keys=["y"], version="v2").value == {"y": 10}
    # another stream_mode: the chunks, narrowed
    assert app.invoke({"x": 1}, output_keys="y", stream_mode="updates") == [
        {"a": None}, {"b": 10}, {"c": None}]


async def test_async_runs_narrow_the_same_way() -> None:
    app = _chain().compile()
    chunks = [c async for c in app.astream({"x": 1}, stream_mode=["values", "updates"],
                                           output_keys=["y"])]
    assert chunks == [("updates", {"a": None}), ("updates", {"b": {"y": 10}}),
                      ("values", {"y": 10}), ("updates", {"c": None})]
    assert await app.ainvoke({"x": 1}, output_keys="y") == 10


class R(TypedDict, total=False):
    x: int
    y: Annotated[list, operator.add]
    z: int


def _asking() -> StateGraph:
    def a(state: R) -> None:
        return None

    def b(state: R) -> R:
        return {"y": [interrupt("q")], "x": 7}

    def c(state: R) -> Command:
        return Command(update={"z": 3, "y": ["c"]})

    return StateGraph(R).add_sequence([a, b, c]).add_edge(START, "a").add_edge("c", END)


def test_output_keys_across_an_interrupt_and_its_resume() -> None:
    app = _asking().compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    first = list(app.stream({"x": 1}, cfg, stream_mode=["values", "updates"],
                            output_keys=["y"]))
    assert [mode for mode, _ in first] == ["updates", "updates", "values"]
    asked = first[1][1]["__interrupt__"]
    assert first[2] == ("values", {"y": [], "__interrupt__": asked})
    # the resume's first values event is the state it resumes, as always
    assert list(app.stream(Command(resume="r"), cfg, stream_mode=["values", "updates"],
                           output_keys=["y"])) == [
        ("values", {"y": []}), ("updates", {"b": {"y": ["r"]}}), ("values", {"y": ["r"]}),
        ("updates", {"c": {"y": ["c"]}}), ("values", {"y": ["r", "c"]})]

    # one key named alone: the interrupt's values event carries the interrupt only
    cfg = {"configurable": {"thread_id": "one"}}
    values = list(app.stream({"x": 1}, cfg, stream_mode="values", output_keys="y"))
    assert len(values) == 1 and list(values[0]) == ["__interrupt__"]
    paused = app.invoke({"x": 1}, {"configurable": {"thread_id": "i"}}, output_keys="y")
    assert list(paused) == ["__interrupt__"]
    assert app.invoke(Command(resume="r"), {"configurable": {"thread_id": "i"}},
                      output_keys="y") == ["r", "c"]


def test_unknown_output_keys_are_refused_before_the_run() -> None:
    ran: list[str] = []
    builder = StateGraph(S)
    builder.add_node("a", lambda state: ran.append("a") or {"x": 1})
    builder.add_edge(START, "a")
    app = builder.compile()
    with pytest.raises(ValueError, match="Key 'nope' not in channels.*'x', 'y', 'z'"):
        list(app.stream({"x": 1}, output_keys=["y", "nope"]))
    with pytest.raises(ValueError, match="Key 'nope' not in channels"):
        app.invoke({"x": 1}, output_keys="nope")
    assert ran == []


def _printed(out: str) -> list[str]:
    return [line for line in out.splitlines() if line]


def test_debug_prints_updates_and_values_without_changing_what_is_yielded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = _chain().compile()
    assert list(app.stream({"x": 1}, debug=True)) == [
        {"a": {"x": 2}}, {"b": {"y": 10, "x": 5}}, {"c": {"z": 3}}]
    assert _printed(capsys.readouterr().out) == [
        "\033[1m[values]\033[0m {'x': 1}",
        "\033[1m[updates]\033[0m {'a': {'x': 2}}",
        "\033[1m[values]\033[0m {'x': 2}",
        "\033[1m[updates]\033[0m {'b': {'y': 10, 'x': 5}}",
        "\033[1m[values]\033[0m {'x': 5, 'y': 10}",
        "\033[1m[updates]\033[0m {'c': {'z': 3}}",
        "\033[1m[values]\033[0m {'x': 5, 'y': 10, 'z': 3}",
    ]
    assert list(app.stream({"x": 1})) and capsys.readouterr().out == ""


async def test_a_graph_compiled_with_debug_prints_its_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = _chain().compile(debug=True)
    assert app.invoke({"x": 1}) == {"x": 5, "y": 10, "z": 3}
    printed = _printed(capsys.readouterr().out)
    assert len(printed) == 7 and printed[-1] == "\033[1m[values]\033[0m {'x': 5, 'y': 10, 'z': 3}"
    assert await app.ainvoke({"x": 1}) == {"x": 5, "y": 10, "z": 3}
    assert _printed(capsys.readouterr().out) == printed
    # debug=False at call time does not silence a graph compiled with debug=True (LangGraph's)
    assert [c async for c in app.astream({"x": 1}, debug=False)]
    assert _printed(capsys.readouterr().out) == printed


def test_print_mode_prints_other_modes_and_subgraph_events_name_their_graph(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sub = StateGraph(S)
    sub.add_node("inner", lambda state: {"x": state["x"] + 1})
    sub.add_edge(START, "inner")
    builder = StateGraph(S)
    builder.add_node("sub", sub.compile())
    builder.add_edge(START, "sub")
    app = builder.compile()
    assert list(app.stream({"x": 1}, print_mode="tasks", output_keys="x")) == [{"sub": 2}]
    printed = _printed(capsys.readouterr().out)
    assert [line.split(" ", 1)[0] for line in printed] == ["\033[1m[tasks]\033[0m"] * 2
    assert "'name': 'sub'" in printed[0] and "'result': {'x': 2}" in printed[1]

    assert list(app.stream({"x": 1}, stream_mode="custom", subgraphs=True, debug=True)) == []
    printed = _printed(capsys.readouterr().out)
    inner = [line for line in printed if "[graph=('sub:" in line]
    assert inner and all(line.startswith(("\033[1m[values]\033[0m \033[1;30;33m[graph=",
                                          "\033[1m[updates]\033[0m \033[1;30;33m[graph="))
                         for line in inner)
    assert "{'inner': {'x': 2}}" in "".join(inner)
