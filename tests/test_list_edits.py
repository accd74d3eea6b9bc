"""Long list channels: a ``put`` costs O(items appended), and edits made in place are kept.

The delta planner (``threadloom.checkpoint._values.delta.DeltaCache``) no longer digests the
whole list at every ``put``: it compares the stored items with the new list by identity,
digests the new items and the newest stored ones, and checks every stored item again
once the list has grown by a fraction since the last such check. These tests run real
graphs on every saver and read the results back through a fresh saver (what another
process would see).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage

from threadloom.checkpoint._values.delta import DeltaCache
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages

KINDS = ["memory", "sqlite", "postgres"]
TAIL = DeltaCache().tail_items
GROWTH = DeltaCache().verify_growth


@pytest.fixture(params=KINDS)
def open_saver(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[[], Any]]:
    """Opens the kind's saver on the same storage each time it is called (for memory: the
    same saver, whose reads decode what it stored)."""
    kind = request.param
    if kind == "memory":
        saver = InMemorySaver()

        @contextmanager
        def same() -> Iterator[Any]:
            yield saver

        yield same
        return
    if kind == "sqlite":
        from threadloom.checkpoint.sqlite import SqliteSaver

        path = str(tmp_path / "edits.db")
        yield lambda: SqliteSaver.from_conn_string(path)
        return
    from threadloom.checkpoint.postgres import PostgresSaver

    url = request.getfixturevalue("fresh_postgres_database")

    @contextmanager
    def postgres() -> Iterator[Any]:
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver

    yield postgres


def _delta_cache(saver: Any) -> DeltaCache:
    cache = getattr(saver, "_delta", None) or saver._delta_cache
    assert isinstance(cache, DeltaCache)
    return cache


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    turn: int


def _history(n: int) -> list[AnyMessage]:
    out: list[AnyMessage] = [HumanMessage("start", id="h")]
    for i in range(n):
        call = {"name": "lookup", "args": {"q": f"item {i}"}, "id": f"c{i}", "type": "tool_call"}
        out.append(AIMessage("", id=f"a{i}", tool_calls=[call]))
        out.append(ToolMessage(f"result {i}", tool_call_id=f"c{i}", id=f"t{i}"))
    return out


def _chat_graph(saver: Any, edit_at: int, steps: int, edit: Callable[[list[Any]], Any]) -> Any:
    """``talk`` appends one message per step; at turn ``edit_at`` it calls ``edit`` on the
    live list first and appends what it returns as well (a message written back)."""

    def talk(state: Chat) -> dict[str, Any]:
        turn = state["turn"]
        new: list[Any] = [AIMessage(f"turn {turn}", id=f"turn-{turn}")]
        if turn == edit_at:
            back = edit(state["messages"])
            if back is not None:
                new.insert(0, back)
        return {"messages": new, "turn": turn + 1}

    builder = StateGraph(Chat)
    builder.add_node("talk", talk)
    builder.add_edge(START, "talk")
    builder.add_conditional_edges("talk", lambda s: "talk" if s["turn"] < steps else END)
    return builder.compile(checkpointer=saver)


def _run(open_saver: Callable[[], Any], graph_of: Callable[[Any], Any], start: list[Any]) -> Any:
    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 1000}
    with open_saver() as saver:
        graph_of(saver).invoke({"messages": start, "turn": 0}, config)
    with open_saver() as fresh:  # what another process reads
        graph = graph_of(fresh)
        return graph.get_state(config), list(graph.get_state_history(config))


def test_a_tool_call_edited_in_place_and_returned_is_stored_at_its_step(
    open_saver: Callable[[], Any],
) -> None:
    """LangChain's human-in-the-loop middleware edits the last AI message's tool calls in
    place and returns that same object: the checkpoint of that very step holds the edit."""

    def edit(messages: list[Any]) -> Any:
        last_call = next(m for m in messages if m.id == "a58")  # stored, among the newest
        last_call.tool_calls[0]["args"]["q"] = "edited in place"
        return last_call

    start = _history(60)  # long: stored as deltas
    state, history = _run(open_saver, lambda s: _chat_graph(s, 3, 6, edit), start)
    edited = next(m for m in state.values["messages"] if m.id == "a58")
    assert edited.tool_calls[0]["args"]["q"] == "edited in place"
    by_turn = {h.values["turn"]: h.values["messages"] for h in history if "turn" in h.values}
    assert next(m for m in by_turn[4] if m.id == "a58").tool_calls[0]["args"]["q"] == (
        "edited in place"
    )
    assert next(m for m in by_turn[3] if m.id == "a58").tool_calls[0]["args"]["q"] == "item 58"
    assert [m.id for m in state.values["messages"]][-3:] == ["turn-3", "turn-4", "turn-5"]


def test_an_old_message_replaced_by_an_edited_copy_is_stored_at_its_step(
    open_saver: Callable[[], Any],
) -> None:
    """A message far older than the tail, replaced by an edited copy with its id: stored
    at the step that wrote it."""

    def edit(messages: list[Any]) -> Any:
        copy = messages[1].model_copy(deep=True)
        copy.tool_calls[0]["args"]["q"] = "edited copy"
        return copy

    start = _history(60)
    state, history = _run(open_saver, lambda s: _chat_graph(s, 2, 4, edit), start)
    assert state.values["messages"][1].tool_calls[0]["args"]["q"] == "edited copy"
    by_turn = {h.values["turn"]: h.values["messages"] for h in history if "turn" in h.values}
    assert by_turn[3][1].tool_calls[0]["args"]["q"] == "edited copy"
    assert by_turn[2][1].tool_calls[0]["args"]["q"] == "item 0"


def test_an_old_message_edited_in_place_and_not_returned_is_not_lost(
    open_saver: Callable[[], Any],
) -> None:
    """An item older than the newest ``TAIL`` changed in place by a node that does not
    return it: stored whole at the next full check, which comes once the list has grown
    by a ``1/GROWTH`` part - never dropped."""

    def edit(messages: list[Any]) -> None:
        messages[1].tool_calls[0]["args"]["q"] = "redacted"
        messages[0].content = "start (edited)"

    start = _history(50)  # 101 messages: item 1 is far older than the tail
    steps = 3 + len(start) // GROWTH + 2
    state, history = _run(open_saver, lambda s: _chat_graph(s, 3, steps, edit), start)
    messages = state.values["messages"]
    assert messages[0].content == "start (edited)"
    assert messages[1].tool_calls[0]["args"]["q"] == "redacted"
    assert len(messages) == len(start) + steps
    # every later checkpoint keeps it; the first one holding it comes within the window
    holding = [
        h.values["turn"]
        for h in history
        if h.values.get("messages") and h.values["messages"][0].content == "start (edited)"
    ]
    assert holding == sorted(holding, reverse=True) and holding[0] == steps
    assert min(holding) <= 4 + len(start) // GROWTH + 1


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_an_old_message_edited_in_place_is_stored_when_the_run_ends_first(
    open_saver: Callable[[], Any], durability: str
) -> None:
    """An item older than the tail changed in place two steps before the run ends - long
    before the next periodic full check: the full check a run ends with (``settle``)
    stores it, so the thread's state read back holds the edit, as the run's output does."""

    def edit(messages: list[Any]) -> None:
        messages[1].tool_calls[0]["args"]["q"] = "redacted"

    start = _history(200)  # 401 messages: the next full check is 50 appends away
    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 1000}
    with open_saver() as saver:
        _chat_graph(saver, -1, 4, edit).invoke(
            {"messages": start, "turn": 0}, config, durability=durability
        )
        # a second run continues the thread (its puts store deltas) and edits at turn 12
        graph = _chat_graph(saver, 12, 14, edit)
        out = graph.invoke({"turn": 10}, config, durability=durability)
        assert out["messages"][1].tool_calls[0]["args"]["q"] == "redacted"
        here = graph.get_state(config).values["messages"]
        assert here[1].tool_calls[0]["args"]["q"] == "redacted"
    with open_saver() as fresh:  # what another process reads
        messages = _chat_graph(fresh, 12, 14, edit).get_state(config).values["messages"]
    assert messages[1].tool_calls[0]["args"]["q"] == "redacted"
    assert [m.id for m in messages][-5:] == ["turn-3", "turn-10", "turn-11", "turn-12", "turn-13"]


@pytest.mark.parametrize("kind", ["memory", "async-sqlite", "async-postgres"])
async def test_the_end_of_run_check_runs_on_the_async_path(
    kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """The same edit, through ``ainvoke`` and the async savers (``asettle``)."""

    def edit(messages: list[Any]) -> None:
        messages[1].tool_calls[0]["args"]["q"] = "redacted"

    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 1000}

    async def run(saver: Any) -> Any:
        await _chat_graph(saver, -1, 4, edit).ainvoke(
            {"messages": _history(200), "turn": 0}, config
        )
        graph = _chat_graph(saver, 12, 14, edit)
        await graph.ainvoke({"turn": 10}, config)
        saver_of(saver)
        return (await graph.aget_state(config)).values["messages"]

    def saver_of(saver: Any) -> None:
        cache = _delta_cache(saver) if kind == "memory" else saver._core.cache
        assert cache.settle("t", "", "missing") == []  # only the head this process wrote

    if kind == "memory":
        messages = await run(InMemorySaver())
    elif kind == "async-sqlite":
        from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "a.db")) as saver:
            await run(saver)
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "a.db")) as fresh:
            messages = (await _chat_graph(fresh, 12, 14, edit).aget_state(config)).values[
                "messages"
            ]
    else:
        from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

        url = request.getfixturevalue("fresh_postgres_database")
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            await run(saver)
        async with AsyncPostgresSaver.from_conn_string(url) as fresh:
            messages = (await _chat_graph(fresh, 12, 14, edit).aget_state(config)).values[
                "messages"
            ]
    assert messages[1].tool_calls[0]["args"]["q"] == "redacted"


def test_a_list_changed_in_place_by_a_node_is_stored(open_saver: Callable[[], Any]) -> None:
    """An item of the live list replaced by another object (no reducer involved) is seen by
    the identity comparison at the very next put."""

    def edit(messages: list[Any]) -> None:
        messages[5] = HumanMessage("swapped in", id=messages[5].id)

    start = _history(40)
    state, history = _run(open_saver, lambda s: _chat_graph(s, 2, 4, edit), start)
    assert state.values["messages"][5].content == "swapped in"
    by_turn = {h.values["turn"]: h.values["messages"] for h in history if "turn" in h.values}
    assert by_turn[3][5].content == "swapped in" and by_turn[2][5].content != "swapped in"


class Items(TypedDict):
    items: Annotated[list, operator.add]
    n: int


def test_appending_to_a_long_list_digests_o_of_the_change(
    open_saver: Callable[[], Any],
) -> None:
    """Appending one item per step to a 10,000-item list digests a bounded number of items
    per put - the new one, and the newest stretches again back to at least ``TAIL`` items
    (less than ``2 * TAIL``) - not the whole list."""
    size, steps = 10_000, 40
    counts: list[int] = []

    def graph_of(saver: Any) -> Any:
        cache = _delta_cache(saver)

        def grow(state: Items) -> dict[str, Any]:
            counts.append(cache.items_digested)  # one put between two steps
            return {"items": [{"i": state["n"]}], "n": state["n"] + 1}

        builder = StateGraph(Items)
        builder.add_node("grow", grow)
        builder.add_edge(START, "grow")
        builder.add_conditional_edges("grow", lambda s: "grow" if s["n"] < steps else END)
        return builder.compile(checkpointer=saver)

    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 1000}
    start = [{"i": -k} for k in range(size)]
    with open_saver() as saver:
        graph_of(saver).invoke({"items": start, "n": 0}, config, durability="sync")
    per_put = [b - a for a, b in zip(counts[1:], counts[2:], strict=False)]
    assert len(per_put) == steps - 2 and max(per_put) <= 2 * TAIL + 1
    with open_saver() as fresh:
        values = graph_of(fresh).get_state(config).values
    assert values["items"] == [*start, *({"i": i} for i in range(steps))]
    assert values["n"] == steps



def test_appending_to_a_long_list_copies_only_the_new_items(
    open_saver: Callable[[], Any],
) -> None:
    """The stored items the delta planner keeps to compare the next list with by identity
    are extended with the appended items at each put, not copied again: one item
    appended per step copies one item reference per put, not 10,000."""
    size, steps = 10_000, 30
    copied: list[int] = []

    def grow(state: Items) -> dict[str, Any]:
        copied.append(cache.items_copied)  # one put between two steps
        return {"items": [{"i": state["n"]}], "n": state["n"] + 1}

    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 1000}
    start = [{"i": -k} for k in range(size)]
    with open_saver() as saver:
        cache = _delta_cache(saver)
        builder = StateGraph(Items)
        builder.add_node("grow", grow)
        builder.add_edge(START, "grow")
        builder.add_conditional_edges("grow", lambda s: "grow" if s["n"] < steps else END)
        graph = builder.compile(checkpointer=saver)
        graph.invoke({"items": start, "n": 0}, config, durability="sync")
        assert graph.get_state(config).values["items"] == [
            *start, *({"i": i} for i in range(steps))
        ]
    per_put = [b - a for a, b in zip(copied[1:], copied[2:], strict=False)]
    assert per_put == [1] * (steps - 2)


def _short_list_graph(saver: Any, edit_at: int | None) -> Any:
    """Appends one item a step for 3 steps; at step ``edit_at`` it changes the first
    item in place and writes only ``n`` (the list's channel is not written)."""

    def grow(state: Items) -> dict[str, Any]:
        if state["n"] == edit_at:
            state["items"][0]["i"] = "edited"
            return {"n": state["n"] + 1}
        return {"items": [{"i": state["n"]}], "n": state["n"] + 1}

    builder = StateGraph(Items)
    builder.add_node("grow", grow)
    builder.add_edge(START, "grow")
    builder.add_conditional_edges("grow", lambda s: "grow" if s["n"] < 3 else END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("open_saver", ["sqlite", "postgres"], indirect=True)
def test_the_end_of_run_check_skips_a_short_list_its_last_put_digested(
    open_saver: Callable[[], Any],
) -> None:
    """A list the run's last put stored with every item digested (a short one) cannot
    have changed since - no node runs after it - so the end-of-run check digests it no
    more: each put that stored it digested the stored items and the new list (1, then
    1 + 2, then 2 + 3 items for a list grown to 3), the end of the run nothing. A short
    list the last put did not store is still checked, and an edit made in place since
    its own put is stored. (Lists this short are followed here as long ones are: by
    default they are stored whole and never digested, see the next test.)"""
    config = {"configurable": {"thread_id": "t"}}
    with open_saver() as saver:
        cache = saver._core.cache
        cache.small_list = 0
        before = cache.items_digested
        _short_list_graph(saver, None).invoke({"items": [], "n": 0}, config)
        assert cache.items_digested - before == 1 + (1 + 2) + (2 + 3)

        other = {"configurable": {"thread_id": "u"}}
        graph = _short_list_graph(saver, 2)  # the last step edits, writing only n
        graph.invoke({"items": [], "n": 0}, other)
        assert graph.get_state(other).values["items"][0] == {"i": "edited"}
    with open_saver() as fresh:  # what another process reads
        items = _short_list_graph(fresh, 2).get_state(other).values["items"]
    assert items == [{"i": "edited"}, {"i": 1}]


@pytest.mark.parametrize("open_saver", ["sqlite", "postgres"], indirect=True)
def test_short_lists_are_stored_whole_and_never_digested(
    open_saver: Callable[[], Any],
) -> None:
    """Up to ``SMALL_LIST`` items a list is stored whole at each put, with no print to
    take or check (a delta would save next to nothing); past it, deltas follow."""
    from threadloom.checkpoint._values.delta import SMALL_LIST

    config = {"configurable": {"thread_id": "t"}}
    with open_saver() as saver:
        cache = saver._core.cache
        before = cache.items_digested
        _short_list_graph(saver, None).invoke({"items": [], "n": 0}, config)
        assert cache.items_digested == before
        assert _delta_rows(saver) == 0
        items = [{"i": i} for i in range(SMALL_LIST + 2)]
        graph = _short_list_graph(saver, None)
        graph.invoke({"items": items, "n": 0}, {"configurable": {"thread_id": "u"}})
        assert cache.items_digested > before
        assert _delta_rows(saver) > 0
        got = graph.get_state({"configurable": {"thread_id": "u"}}).values["items"]
        assert got[: len(items)] == items and len(got) > len(items)


def _delta_rows(saver: Any) -> int:
    sql = "SELECT count(*) FROM threadloom_blobs WHERE base_version IS NOT NULL"
    return int(saver.conn.execute(sql).fetchone()[0])  # sqlite3 and psycopg alike


def _rewrite(old: list[Any], new: Any) -> list[Any]:
    """A reducer that replaces an item (``new`` is ``(index, item)``) or appends a list."""
    if isinstance(new, tuple):
        out = list(old)
        out[new[0]] = new[1]
        return out
    return [*old, *new]


class Rewritten(TypedDict):
    items: Annotated[list, _rewrite]
    n: int


def _rewrite_graph(
    saver: Any, rewrites: int, steps: int, counts: list[int], edit_at: int | None = None
) -> Any:
    """Step ``n`` replaces item ``n`` while ``n < rewrites``, then appends one item; at
    step ``edit_at`` it changes item 3 in place instead and writes only ``n``. Each step
    first records how many items the saver's delta cache has digested so far."""

    def step(state: Rewritten) -> dict[str, Any]:
        n = state["n"]
        counts.append(_delta_cache(saver).items_digested)
        if n == edit_at:
            state["items"][3]["i"] = "edited in place"
            return {"n": n + 1}
        if n < rewrites:
            return {"items": (n, {"i": f"replaced {n}"}), "n": n + 1}
        return {"items": [{"i": f"appended {n}"}], "n": n + 1}

    builder = StateGraph(Rewritten)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: "step" if s["n"] < steps else END)
    return builder.compile(checkpointer=saver)


def _rewritten(size: int, rewrites: int, n: int) -> list[Any]:
    """The list after ``n`` steps of ``_rewrite_graph`` (no in-place edit)."""
    items: list[Any] = [{"i": -k} for k in range(size)]
    for k in range(n):
        if k < rewrites:
            items[k] = {"i": f"replaced {k}"}
        else:
            items.append({"i": f"appended {k}"})
    return items


def test_a_list_rewritten_at_every_step_is_not_digested_at_every_put(
    open_saver: Callable[[], Any],
) -> None:
    """A list with one item replaced per step is stored whole at each step (it does not
    extend the stored one); from its second rewrite in a row on, without digesting its
    items - the put costs one serialization, as LangGraph's does. Once it grows again it
    is printed again (stored whole) and then appended as deltas. Every checkpoint reads
    back as written."""
    size, rewrites, steps = 1000, 10, 15
    counts: list[int] = []
    config = {"configurable": {"thread_id": "t"}, "recursion_limit": 100}
    start = [{"i": -k} for k in range(size)]
    with open_saver() as saver:
        _rewrite_graph(saver, rewrites, steps, counts).invoke(
            {"items": start, "n": 0}, config, durability="sync"
        )
    # per_put[n]: what the put storing step n's result digested
    per_put = {n: counts[n + 1] - counts[n] for n in range(len(counts) - 1)}
    assert all(per_put[n] == 0 for n in range(2, rewrites)), per_put
    assert all(per_put[n] <= 2 * TAIL + 1 for n in range(rewrites + 1, steps - 1)), per_put
    with open_saver() as fresh:  # what another process reads
        graph = _rewrite_graph(fresh, rewrites, steps, [])
        assert graph.get_state(config).values["items"] == _rewritten(size, rewrites, steps)
        history = [h.values for h in graph.get_state_history(config) if "n" in h.values]
    assert len(history) == steps + 1
    for values in history:
        assert values["items"] == _rewritten(size, rewrites, values["n"]), values["n"]


def test_an_edit_in_place_after_rewrites_is_stored_when_the_run_ends(
    open_saver: Callable[[], Any],
) -> None:
    """A list stored whole without a print (rewritten at two steps in a row), then
    changed in place by a step that does not write it: the end-of-run check has nothing
    to compare it with, so it stores it whole again - the edit is kept."""
    size, rewrites = 100, 6
    config = {"configurable": {"thread_id": "t"}}
    with open_saver() as saver:
        out = _rewrite_graph(saver, rewrites, rewrites + 1, [], edit_at=rewrites).invoke(
            {"items": [{"i": -k} for k in range(size)], "n": 0}, config
        )
    assert out["items"][3] == {"i": "edited in place"}
    expected = _rewritten(size, rewrites, rewrites)
    expected[3] = {"i": "edited in place"}
    with open_saver() as fresh:
        values = _rewrite_graph(fresh, rewrites, rewrites + 1, []).get_state(config).values
    assert values["items"] == expected and values["n"] == rewrites + 1


def _edit_graph(saver: Any, steps: int, edits: dict[int, Callable[[list[Any]], None]]) -> Any:
    """Appends ``{"i": n}`` at step ``n``, after calling ``edits[n]`` on the live list."""

    def grow(state: Items) -> dict[str, Any]:
        n = state["n"]
        if n in edits:
            edits[n](state["items"])
        return {"items": [{"i": n}], "n": n + 1}

    builder = StateGraph(Items)
    builder.add_node("grow", grow)
    builder.add_edge(START, "grow")
    builder.add_conditional_edges("grow", lambda s: "grow" if s["n"] < steps else END)
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("serde", ["plain", "encrypted"])
def test_a_list_stored_whole_in_memory_is_printed_from_its_row(serde: str) -> None:
    """The memory saver prints a long list it stores whole from the row it serialized for
    it (plain serializer; an encrypting one makes other bytes, and then the items are
    digested): the put digests only the newest items. What the print must see is still
    seen: the newest item changed in place at the next put, and an old one changed in
    place by the end-of-run check (which serializes the list again)."""
    size, steps = 2000, 6
    saver = InMemorySaver()
    if serde == "encrypted":
        from threadloom.checkpoint.serde.encrypted import EncryptedSerializer

        saver = InMemorySaver(serde=EncryptedSerializer.from_aes_gcm(b"k" * 32))
    cache = _delta_cache(saver)
    digested: list[int] = []

    def newest(items: list[Any]) -> None:
        digested.append(cache.items_digested)
        items[-1]["i"] = "newest, edited"

    def old(items: list[Any]) -> None:
        items[5]["i"] = "old, edited"

    config = {"configurable": {"thread_id": "t"}}
    graph = _edit_graph(saver, steps, {1: newest, 2: old})
    start = [{"i": -k} for k in range(size)]
    before = cache.items_digested
    graph.invoke({"items": start, "n": 0}, config)
    # the put before step 1 is the list's first through the planner: stored whole
    if serde == "plain":
        assert digested[0] - before <= 2 * TAIL + 1
    else:
        assert digested[0] - before >= size
    history = {h.values["n"]: h.values["items"] for h in graph.get_state_history(config)
               if "n" in h.values}
    assert history[1][-1] == {"i": 0} and history[2][-2] == {"i": "newest, edited"}
    assert history[2][5] == {"i": -5} and history[steps][5] == {"i": "old, edited"}
    expected = [*({"i": -k} for k in range(size)), *({"i": n} for n in range(steps))]
    expected[5], expected[size] = {"i": "old, edited"}, {"i": "newest, edited"}
    assert graph.get_state(config).values["items"] == expected

    # unedited (in a second thread: the list is planned from its first write, as it grew
    # by deltas in the first), the list is stored whole once and as deltas after: the
    # row's print matches the items at every put and at the end-of-run check, which
    # leaves the head's delta row as it is
    _edit_graph(saver, steps, {}).invoke({"items": start, "n": 0}, {"configurable": {
        "thread_id": "u"}})
    rows = {key[3]: row for key, row in saver.blobs.items() if key[0] == "u"
            and key[2] == "items"}
    assert sum(len(row) == 2 for row in rows.values()) == 1
    assert len(rows) == steps + 1 and len(rows[max(rows)]) > 2


def test_every_saver_prints_a_list_stored_whole_from_its_row(
    open_saver: Callable[[], Any],
) -> None:
    """On every saver, a run that starts a thread with a long list digests only the
    newest items at each put (the list stored whole is printed from its serialized row),
    and what changed in place is still stored: the newest item at the next put, an old
    one by the end-of-run check - as another process reads it back."""
    size, steps = 2000, 6
    digested: list[int] = []

    def graph_of(saver: Any) -> Any:
        cache = _delta_cache(saver)

        def newest(items: list[Any]) -> None:
            items[-1]["i"] = "newest, edited"

        def old(items: list[Any]) -> None:
            items[5]["i"] = "old, edited"

        def count(items: list[Any]) -> None:
            digested.append(cache.items_digested)

        edits = {n: count for n in range(steps)}
        edits[1] = lambda items: (count(items), newest(items))
        edits[2] = lambda items: (count(items), old(items))
        return _edit_graph(saver, steps, edits)

    config = {"configurable": {"thread_id": "t"}}
    with open_saver() as saver:
        graph_of(saver).invoke({"items": [{"i": -k} for k in range(size)], "n": 0}, config)
    per_put = [b - a for a, b in zip(digested, digested[1:], strict=False)]
    assert max(per_put) <= 2 * TAIL + 1, per_put
    expected = [*({"i": -k} for k in range(size)), *({"i": n} for n in range(steps))]
    expected[5], expected[size] = {"i": "old, edited"}, {"i": "newest, edited"}
    with open_saver() as fresh:
        graph = graph_of(fresh)
        assert graph.get_state(config).values["items"] == expected
        history = {h.values["n"]: h.values["items"] for h in graph.get_state_history(config)
                   if "n" in h.values}
    assert history[1][-1] == {"i": 0} and history[2][-2] == {"i": "newest, edited"}
