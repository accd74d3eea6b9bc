"""``add_messages`` reuses the id index of the list it returned last time (O(change) per
merge); these check the result is the same as a merge from scratch whatever happened to
that list in between."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage

from threadloom.graph import _message_index
from threadloom.graph.message import add_messages


def _ids(messages: list) -> list[str]:
    return [m.id for m in messages]


def _base() -> list:
    return add_messages([], [HumanMessage(f"m{i}", id=f"m{i}") for i in range(50)])


def test_merging_the_returned_list_reuses_its_index() -> None:
    merged = _base()
    assert _message_index.recall(merged) is not None  # remembered...
    second = add_messages(merged, [AIMessage("new", id="new"), HumanMessage("x", id="m3")])
    assert _ids(second) == [*_ids(merged), "new"] and second[3].content == "x"
    assert merged[3].content == "m3"  # the left list is never changed


def test_the_same_list_merged_twice_gives_independent_results() -> None:
    merged = _base()
    one = add_messages(merged, [AIMessage("a", id="a")])
    two = add_messages(merged, [AIMessage("b", id="b")])
    assert _ids(one)[-1] == "a" and _ids(two)[-1] == "b" and "a" not in _ids(two)
    assert _ids(add_messages(two, [AIMessage("a again", id="a")]))[-2:] == ["b", "a"]


def test_a_list_changed_in_place_is_merged_from_scratch() -> None:
    merged = _base()
    merged.append(AIMessage("appended by a node", id="node"))
    merged[0] = HumanMessage("swapped", id="swapped")
    out = add_messages(merged, [AIMessage("replaces the node's", id="node")])
    assert _ids(out)[0] == "swapped" and out[-1].content == "replaces the node's"
    assert len(out) == 51


def test_an_id_changed_in_place_is_found_where_it_now_is() -> None:
    merged = _base()
    merged[5].id = "renamed"
    out = add_messages(merged, [HumanMessage("new m5", id="m5"), HumanMessage("r", id="renamed")])
    assert out[5].content == "r" and out[-1].id == "m5" and len(out) == 51


def test_removals_and_remove_all_still_work() -> None:
    merged = _base()
    out = add_messages(merged, [RemoveMessage(id="m1"), AIMessage("z", id="z")])
    assert "m1" not in _ids(out) and _ids(out)[-1] == "z"
    again = add_messages(out, [AIMessage("m2 again", id="m2")])
    assert again[_ids(again).index("m2")].content == "m2 again" and len(again) == 50
    cleared = add_messages(again, [RemoveMessage(id="__remove_all__"), AIMessage("only")])
    assert [m.content for m in cleared] == ["only"]


def test_a_short_list_keeps_no_index() -> None:
    short = add_messages([], [HumanMessage(f"m{i}", id=f"m{i}")
                              for i in range(_message_index.MIN_LENGTH - 1)])
    assert _message_index.recall(short) is None  # merged from scratch: cheaper when short
    out = add_messages(short, [AIMessage("new", id="new"), HumanMessage("x", id="m2")])
    assert _ids(out) == [*_ids(short), "new"] and out[2].content == "x"
    longer = add_messages(short, [AIMessage("one more", id="more")])
    assert len(longer) == _message_index.MIN_LENGTH
    assert _message_index.recall(longer) is not None


def test_a_merge_copies_a_few_index_entries_not_the_whole_index() -> None:
    size, steps = 10_000, 200
    messages = add_messages([], [HumanMessage(f"m{i}", id=f"m{i}") for i in range(size)])
    before = _message_index.entries_copied
    for i in range(steps):  # each list merged twice, as the engine does for a branch
        branch = add_messages(messages, [AIMessage("branch", id=f"b{i}")])
        assert branch[-1].id == f"b{i}" and len(branch) == size + i + 1
        messages = add_messages(messages, [AIMessage(f"n{i}", id=f"n{i}")])
    copied = _message_index.entries_copied - before
    # a copy of the whole index per merge would be 2 * 200 * ~10,000 = 4,000,000 entries;
    # the added entries (at most sqrt(10,000) = 100) and a few folds are ~60,000
    assert copied < 100_000
    assert _ids(messages) == [f"m{i}" for i in range(size)] + [f"n{i}" for i in range(steps)]

    # ids in the folded base and among the newest added ones are found where they are
    out = add_messages(
        messages,
        [HumanMessage("x", id="m5"), AIMessage("y", id="n150"), AIMessage("z", id="n199")],
    )
    assert [out[5].content, out[size + 150].content, out[-1].content] == ["x", "y", "z"]
    assert len(out) == size + steps and messages[5].content == "m5"
