"""``threadloom.checkpoint._values.frozen`` and the value cache built on it: every read of a
cached value is the reader's own, and equal to what was stored, down to field order."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, PrivateAttr

from threadloom.checkpoint._values.cache import ValueCache
from threadloom.checkpoint._values.chains import StoredBlob
from threadloom.checkpoint._values.delta import DeltaCache
from threadloom.checkpoint._values.frozen import Frozen, freeze
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.checkpoint.serde.msgpack import MsgpackSerializer
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.graph import END, START, MessagesState, StateGraph

SERDE = MsgpackSerializer()


def _messages() -> list[Any]:
    call = {"name": "search", "args": {"q": "weather", "n": [1, 2]}, "id": "c1"}
    return [
        HumanMessage("hi", id="h1"),
        AIMessage("", id="a1", tool_calls=[call], response_metadata={"model": "x"}),
        ToolMessage("sunny", tool_call_id="c1", id="t1"),
        AIMessage([{"type": "text", "text": "It is sunny."}], id="a2", name="bot"),
        "a plain string",
        {"a plain": ["dict"]},
    ]


def test_thaw_equals_the_frozen_value_down_to_field_order() -> None:
    value = _messages()
    frozen = freeze(value)
    assert frozen is not None and frozen.length == len(value)
    thawed = frozen.thaw()
    assert thawed == value
    assert [type(m) for m in thawed] == [type(m) for m in value]
    assert [repr(m) for m in thawed] == [repr(m) for m in value]
    models = [m for m in value if isinstance(m, BaseModel)]
    again = [m for m in thawed if isinstance(m, BaseModel)]
    assert [m.model_dump() for m in again] == [m.model_dump() for m in models]
    assert [m.model_fields_set for m in again] == [m.model_fields_set for m in models]
    assert [m.model_dump_json() for m in again] == [m.model_dump_json() for m in models]


def test_every_thaw_is_independent() -> None:
    value = _messages()
    frozen = freeze(value)
    assert frozen is not None
    first = frozen.thaw()
    first[1].tool_calls[0]["args"]["q"] = "edited"  # nested dict in a message
    first[1].content = "edited"  # assignment: pydantic records it in fields_set
    first[0].additional_kwargs["x"] = 1  # an empty default container
    first[3].content[0]["text"] = "edited"  # a content block
    first[5]["a plain"].append("more")
    first.append("more")
    second = frozen.thaw()
    assert second == _messages()
    assert [getattr(m, "model_fields_set", None) for m in second] == [
        getattr(m, "model_fields_set", None) for m in _messages()
    ]
    assert second[1].tool_calls[0]["args"] == {"q": "weather", "n": [1, 2]}


def test_single_values_freeze_too() -> None:
    for value in ("text", 3, None, {"k": [1, {"n": None}]}, AIMessage("x", id="1")):
        frozen = freeze(value)
        assert frozen is not None and frozen.thaw() == value
    assert freeze({"k": [1]}).thaw() is not freeze({"k": [1]}).thaw()  # type: ignore[union-attr]


class _Extra(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int = 0


class _Private(BaseModel):
    a: int = 0
    _secret: str = PrivateAttr(default="s")


def test_models_with_extra_fields_round_trip() -> None:
    value = [_Extra(a=1, b={"c": 2})]
    frozen = freeze(value)
    assert frozen is not None
    thawed = frozen.thaw()
    assert thawed == value and thawed[0].b == {"c": 2}
    thawed[0].b["c"] = 3
    assert frozen.thaw()[0].b == {"c": 2}


class _Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        [{"k": HumanMessage("nested model")}],  # only top-level models are rebuilt
        [_Private()],  # private attributes are not part of the frozen state
        [_Text("a str subclass")],  # would come back as a plain str
        [{"k": _Text("deep down")}],
        [{"when": object()}],
        [len],
    ],
)
def test_what_cannot_be_frozen_exactly_is_refused(value: Any) -> None:
    assert freeze(value) is None


def test_every_builtin_container_thaws_as_itself() -> None:
    """Tuples stay tuples, big ints big, sets sets: a thaw is the value, not a coercion."""
    value = [(1, (2, "x")), {(1, 2): "tuple key"}, 2**70, {3, 4}, frozenset({5}), b"\x00", 1.5]
    frozen = freeze(value)
    assert frozen is not None
    first, second = frozen.thaw(), frozen.thaw()
    assert first == value and [type(v) for v in first] == [type(v) for v in value]
    first[3].add(9)
    assert second[3] == {3, 4}


def test_value_cache_decodes_unfreezable_values_on_every_read() -> None:
    cache = ValueCache()
    value = [{"k": HumanMessage("nested", id="n1")}]
    tag, data = SERDE.dumps_typed(value)
    key = ("t", "", "c", "1")
    cache.add_rows({key: StoredBlob(tag, data)})
    calls = []

    def decode(k: Any, row: StoredBlob) -> Any:
        calls.append(k)
        return SERDE.loads_typed((row.type, row.blob))

    for _ in range(3):
        got = cache.lookup([key], decode)[0][key].value
        assert got == value
        got.append("mine")
    assert len(calls) == 3


def test_versions_read_together_share_their_common_items() -> None:
    """One read of several versions of a chain thaws the deepest once and slices it (as
    ``resolve`` builds them from storage); the next read gets new objects."""
    from test_checkpoint_delta import NS, Store, T, decode, step

    deltas, store, cache = DeltaCache(small_list=0), Store(), ValueCache()
    items: list[Any] = []
    parent = None
    for i in range(12):
        items = [*items, HumanMessage(f"m{i}", id=f"m{i}")]
        step(deltas, store, parent, f"c{i}", {"m": items})
        parent = f"c{i}"
    cache.add_rows(store.rows)
    keys = [(T, NS, "m", f"c{i}-m") for i in (11, 7, 3)]
    for key in keys:  # each version read alone first: now all three are frozen
        cache.lookup([key], decode)
    found, missing = cache.lookup(keys, lambda *_: pytest.fail("decoded"))
    assert missing == []
    assert [len(found[k].value) for k in keys] == [12, 8, 4]
    assert found[keys[1]].value[0] is found[keys[0]].value[0]
    assert found[keys[1]].value is not found[keys[0]].value
    later, _ = cache.lookup(keys[:1], decode)
    assert later[keys[0]].value[0] is not found[keys[0]].value[0]


def test_deltas_read_with_the_version_below_them_thaw_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page of history: one version frozen, the later ones held as delta rows on top
    of it. One read thaws the frozen version once; each later version copies that list
    (sharing its items) and decodes only its own delta rows - each value its own list,
    equal to what it stored."""
    from test_checkpoint_delta import NS, Store, T, decode, step

    deltas, store, cache = DeltaCache(small_list=0), Store(), ValueCache()
    items: list[Any] = []
    stored: dict[int, list[Any]] = {}
    parent = None
    for i in range(12):
        items = [*items, HumanMessage(f"m{i}", id=f"m{i}")]
        stored[i] = items
        step(deltas, store, parent, f"c{i}", {"m": items})
        parent = f"c{i}"
    cache.add_rows(store.rows)
    base = (T, NS, "m", "c8-m")
    cache.lookup([base], decode)  # frozen now; c9..c11 stay delta rows on top of it
    thaws = []
    thaw = Frozen.thaw
    monkeypatch.setattr(Frozen, "thaw", lambda self: thaws.append(self) or thaw(self))
    keys = [(T, NS, "m", f"c{i}-m") for i in (11, 10, 9, 8)]
    found, missing = cache.lookup(keys, decode, freeze=False)
    assert missing == [] and len(thaws) == 1
    for i, key in zip((11, 10, 9, 8), keys, strict=True):
        assert found[key].value == stored[i]
    values = [found[k].value for k in keys]
    assert len({id(v) for v in values}) == 4  # a list of its own each
    assert values[0][0] is values[3][0]  # the items below are shared within the read


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_editing_a_tool_call_read_from_get_state_keeps_history(kind: str) -> None:
    """The usual human-in-the-loop edit: read the pending tool call, change it in place,
    write it back with ``update_state``; the checkpoint before the edit still shows the
    original call."""

    def agent(state: MessagesState) -> dict[str, Any]:
        call = {"name": "send_email", "args": {"to": "bob"}, "id": "c1"}
        return {"messages": [AIMessage("", id="a1", tool_calls=[call])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", lambda state: {"messages": []})
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", END)
    saver: Any = (
        InMemorySaver()
        if kind == "memory"
        else SqliteSaver(sqlite3.connect(":memory:", check_same_thread=False))
    )
    graph = builder.compile(checkpointer=saver, interrupt_before=["tools"])
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"messages": [HumanMessage("mail bob", id="h1")]}, config)
    for _ in range(2):  # the second read is served by the value cache
        pending = graph.get_state(config).values["messages"][-1]
    pending.tool_calls[0]["args"]["to"] = "alice"
    graph.update_state(config, {"messages": [pending]})
    calls = [
        snap.values["messages"][-1].tool_calls[0]["args"]["to"]
        for snap in graph.get_state_history(config)
        if len(snap.values.get("messages", [])) == 2
    ]
    assert calls == ["alice", "bob"]


def test_field_names_are_one_string_each_in_a_thaw() -> None:
    """Messages decoded by different paths carry equal field names as different string
    objects; a thaw makes one object per name (fewer allocations per read)."""
    first, second = HumanMessage("a", id="1"), AIMessage("b", id="2")
    fresh = {"".join(list(name)): value for name, value in second.__dict__.items()}
    object.__setattr__(second, "__dict__", fresh)
    assert next(iter(second.__dict__)) is not next(iter(first.__dict__))
    frozen = freeze([first, second])
    assert frozen is not None
    a, b = frozen.thaw()
    assert (a, b) == (first, second)
    assert all(x is y for x, y in zip(a.__dict__, b.__dict__, strict=False))
