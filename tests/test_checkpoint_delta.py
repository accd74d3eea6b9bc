"""Unit tests of ``threadloom.checkpoint._values`` (storage-agnostic append deltas, their
chains, the value cache)."""

from __future__ import annotations

from typing import Any

import pytest

from threadloom.checkpoint._values.cache import ValueCache
from threadloom.checkpoint._values.chains import (
    EMPTY,
    BrokenChainError,
    Resolved,
    StoredBlob,
    needed_keys,
    resolve,
)
from threadloom.checkpoint._values.delta import BlobPlan, DeltaCache, serde_fingerprint
from threadloom.checkpoint.serde.msgpack import MsgpackSerializer

SERDE = MsgpackSerializer()

T, NS = "thread", ""


class Store:
    """A fake blob table: writes plans the way a saver does, reads them with ``resolve``."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Any, ...], StoredBlob] = {}

    def write(self, plans: list[BlobPlan]) -> None:
        for p in plans:
            if p.value is EMPTY:
                self.rows[(T, NS, p.channel, p.version)] = StoredBlob("empty", None)
            else:
                tag, data = SERDE.dumps_typed(p.payload)
                self.rows[(T, NS, p.channel, p.version)] = StoredBlob(
                    tag, data, p.base_version, p.root_version
                )

    def read(self, channel: str, version: str) -> Any:
        key = (T, NS, channel, version)
        return resolve(self.rows, [key], decode)[key].value


def decode(key: tuple[Any, ...], row: StoredBlob) -> Any:
    return EMPTY if row.type == "empty" else SERDE.loads_typed((row.type, row.blob or b""))


def step(
    cache: DeltaCache, store: Store, parent: str | None, cid: str, values: dict[str, Any]
) -> list[BlobPlan]:
    versions = {c: f"{cid}-{c}" for c in values}
    plans = cache.plan(T, NS, parent, values, versions)
    store.write(plans)
    cache.remember_put(T, NS, cid, versions, plans)
    return plans


def test_append_is_stored_as_delta_and_rebuilt() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    items = [{"n": 0}]
    [p0] = step(cache, store, None, "c0", {"m": items})
    assert not p0.is_delta
    items = [*items, {"n": 1}, {"n": 2}]
    [p1] = step(cache, store, "c0", "c1", {"m": items})
    assert p1.is_delta and p1.base_version == "c0-m" and p1.root_version == "c0-m"
    assert p1.payload == [{"n": 1}, {"n": 2}]
    assert store.read("m", "c1-m") == items
    assert store.read("m", "c0-m") == [{"n": 0}]


def test_equal_but_not_identical_items_still_extend() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    step(cache, store, None, "c0", {"m": [[1], "a"]})
    [p1] = step(cache, store, "c0", "c1", {"m": [[1], "a", "b"]})
    assert p1.is_delta


class Msg:
    """A message-like object whose ``id`` is assigned in place, like ``add_messages`` does."""

    def __init__(self, text: str) -> None:
        self.text: str = text
        self.id: str | None = None


SERDE.register(Msg)


def test_items_changed_in_place_are_seen() -> None:
    """``add_messages`` assigns ids to stored messages in place: that must not be lost."""

    cache, store = DeltaCache(small_list=0), Store()
    first = Msg("hi")
    step(cache, store, None, "c0", {"m": [first]})  # stored without an id
    first.id = "assigned-later"
    second = Msg("there")
    [p1] = step(cache, store, "c0", "c1", {"m": [first, second]})
    assert not p1.is_delta
    assert [m.id for m in store.read("m", "c1-m")] == ["assigned-later", None]
    nested = {"k": [1]}
    step(cache, store, "c1", "c2", {"m": [nested]})
    nested["k"].append(2)  # a deep change
    [p3] = step(cache, store, "c2", "c3", {"m": [nested, "x"]})
    assert not p3.is_delta
    assert store.read("m", "c3-m") == [{"k": [1, 2]}, "x"]


def test_unfingerprintable_items_disable_the_delta() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    step(cache, store, None, "c0", {"m": ["a"]})
    [p] = cache.plan(T, NS, "c0", {"m": ["a", lambda: 0]}, {"m": "c1-m"})
    assert p.is_delta and p.printed is None  # stored as a delta, not remembered
    cache.remember_put(T, NS, "c1", {"m": "c1-m"}, [p])
    [p2] = cache.plan(T, NS, "c1", {"m": ["a", "b", "c"]}, {"m": "c2-m"})
    assert not p2.is_delta


def test_type_changing_equal_items_are_stored_whole() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    step(cache, store, None, "c0", {"m": [1]})
    [p1] = step(cache, store, "c0", "c1", {"m": [True, 2]})  # True == 1, yet differs
    assert not p1.is_delta
    assert store.read("m", "c1-m") == [True, 2]
    assert type(store.read("m", "c1-m")[0]) is bool


@pytest.mark.parametrize(
    "change",
    [
        lambda xs: ["X", *xs[1:], "new"],  # replaced
        lambda xs: xs[1:],  # removed
        lambda xs: [*xs[:-1]],  # shrunk
        lambda xs: tuple(xs) + ("t",),  # not a list
    ],
)
def test_other_changes_are_stored_whole(change: Any) -> None:
    cache, store = DeltaCache(small_list=0), Store()
    start = ["a", "b", "c"]
    step(cache, store, None, "c0", {"m": start})
    value = change(start)
    [p1] = step(cache, store, "c0", "c1", {"m": value})
    assert not p1.is_delta
    assert store.read("m", "c1-m") == value


def test_fork_from_other_checkpoint_is_whole() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    step(cache, store, None, "c0", {"m": ["a"]})
    step(cache, store, "c0", "c1", {"m": ["a", "b"]})
    [p] = step(cache, store, "c0", "c2", {"m": ["a", "z"]})  # parent is not the known head
    assert not p.is_delta


def test_unchanged_channel_keeps_its_snapshot() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    step(cache, store, None, "c0", {"m": ["a"], "n": [1]})
    # c1 only rewrites "n"; "m" stays at version c0-m
    plans = cache.plan(T, NS, "c0", {"n": [1, 2], "m": ["a"]}, {"n": "c1-n"})
    store.write(plans)
    cache.remember_put(T, NS, "c1", {"m": "c0-m", "n": "c1-n"}, plans)
    [p] = cache.plan(T, NS, "c1", {"m": ["a", "b"]}, {"m": "c2-m"})
    assert p.is_delta and p.base_version == "c0-m"


def test_chain_of_100_rebuilds_every_version() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    items: list[int] = []
    parent = None
    for i in range(100):
        items = [*items, i]
        plans = step(cache, store, parent, f"c{i}", {"m": items})
        assert plans[0].is_delta == (i > 0)
        assert plans[0].depth == i
        parent = f"c{i}"
    targets = [(T, NS, "m", f"c{i}-m") for i in range(100)]
    out = resolve(store.rows, targets, decode)
    for i in range(100):
        assert out[targets[i]].value == list(range(i + 1))
        assert out[targets[i]].root == "c0-m"
        assert out[targets[i]].depth == i


def test_max_depth_restarts_the_chain() -> None:
    cache, store = DeltaCache(small_list=0, max_depth=3), Store()
    items: list[int] = []
    parent = None
    kinds = []
    for i in range(6):
        items = [*items, i]
        [p] = step(cache, store, parent, f"c{i}", {"m": items})
        kinds.append(p.is_delta)
        parent = f"c{i}"
    assert kinds == [False, True, True, True, False, True]
    assert store.read("m", "c5-m") == list(range(6))


def test_empty_channel_and_empty_list() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    plans = cache.plan(T, NS, None, {"m": []}, {"m": "v1", "gone": "v1"})
    assert [p.value is EMPTY for p in plans] == [False, True]
    store.write(plans)
    cache.remember_put(T, NS, "c0", {"m": "v1", "gone": "v1"}, plans)
    [p] = cache.plan(T, NS, "c0", {"m": ["x"]}, {"m": "v2"})
    assert not p.is_delta  # nothing to save by extending an empty list


def test_serde_fingerprint_uses_tag_and_bytes() -> None:
    fp = serde_fingerprint(lambda v: ("a", b"x") if v == 1 else ("b", b"x"))
    assert fp(1) != fp(2)
    assert fp(1) == fp(1) and len(fp(1)) == 16


def test_remember_loaded_keeps_known_fingerprints() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    item = {"v": 1}
    step(cache, store, None, "c0", {"m": [item]})
    item["v"] = 2  # changed after it was stored, then "loaded" again as the caller sees it
    cache.remember_loaded(T, NS, "c0", {"m": "c0-m"}, {"m": Resolved([item], "c0-m", 0)})
    [p] = cache.plan(T, NS, "c0", {"m": [item, "new"]}, {"m": "c1-m"})
    assert not p.is_delta  # the fingerprints taken at put time still win


def test_remember_loaded_enables_deltas_in_a_fresh_cache() -> None:
    cache, store = DeltaCache(small_list=0), Store()
    step(cache, store, None, "c0", {"m": ["a"]})
    step(cache, store, "c0", "c1", {"m": ["a", "b"]})
    fresh = DeltaCache(small_list=0)
    key = (T, NS, "m", "c1-m")
    loaded = resolve(store.rows, [key], decode)[key]
    fresh.remember_loaded(T, NS, "c1", {"m": "c1-m"}, {"m": loaded})
    [p] = fresh.plan(T, NS, "c1", {"m": [*loaded.value, "c"]}, {"m": "c2-m"})
    assert p.is_delta and p.root_version == "c0-m" and p.depth == 2


def test_forget_and_lru_bound() -> None:
    cache = DeltaCache(small_list=0, max_heads=2)
    printed = DeltaCache(small_list=0).print_of(["x"])
    for t in ("a", "b", "c"):
        cache.remember_put(t, NS, "c0", {"m": "v"}, [BlobPlan("m", "v", ["x"], printed=printed)])
    assert cache.plan("a", NS, "c0", {"m": ["x", "y"]}, {"m": "w"})[0].is_delta is False
    assert cache.plan("c", NS, "c0", {"m": ["x", "y"]}, {"m": "w"})[0].is_delta is True
    cache.forget("c")
    assert cache.plan("c", NS, "c0", {"m": ["x", "y"]}, {"m": "w"})[0].is_delta is False


def test_as_full_drops_the_base() -> None:
    p = BlobPlan("m", "v2", [1, 2], base_version="v1", root_version="v1", start=1, depth=1)
    assert p.payload == [2]
    full = p.as_full()
    assert not full.is_delta and full.payload == [1, 2]


def test_resolve_errors() -> None:
    rows = {(T, NS, "m", "v2"): StoredBlob(*SERDE.dumps_typed([2]), "v1", "v1")}
    with pytest.raises(BrokenChainError, match="missing"):
        resolve(rows, [(T, NS, "m", "v2")], decode)
    loop = {
        (T, NS, "m", "v1"): StoredBlob(*SERDE.dumps_typed([1]), "v2", "v2"),
        (T, NS, "m", "v2"): StoredBlob(*SERDE.dumps_typed([2]), "v1", "v1"),
    }
    with pytest.raises(BrokenChainError, match="loop"):
        resolve(loop, [(T, NS, "m", "v2")], decode)
    not_list = {
        (T, NS, "m", "v1"): StoredBlob(*SERDE.dumps_typed("text")),
        (T, NS, "m", "v2"): StoredBlob(*SERDE.dumps_typed([2]), "v1", "v1"),
    }
    with pytest.raises(BrokenChainError, match="not a list"):
        resolve(not_list, [(T, NS, "m", "v2")], decode)
    assert resolve({}, [(T, NS, "m", "nope")], decode) == {}


def test_resolved_values_are_independent_lists() -> None:
    rows = {
        (T, NS, "m", "v1"): StoredBlob(*SERDE.dumps_typed([1])),
        (T, NS, "m", "v2"): StoredBlob(*SERDE.dumps_typed([2]), "v1", "v1"),
    }
    out = resolve(rows, [(T, NS, "m", "v1"), (T, NS, "m", "v2")], decode)
    out[(T, NS, "m", "v1")].value.append("mutated")
    assert out[(T, NS, "m", "v2")].value == [1, 2]
    assert isinstance(out[(T, NS, "m", "v2")], Resolved)


def test_needed_keys_follows_chains() -> None:
    bases = {
        ("m", "v1"): None,
        ("m", "v2"): "v1",
        ("m", "v3"): "v2",
        ("m", "x1"): None,  # unreferenced full value
        ("m", "v4"): "v3",  # newer delta nobody references
    }
    assert needed_keys([("m", "v3"), ("m", "zz")], bases) == {
        ("m", "v1"),
        ("m", "v2"),
        ("m", "v3"),
    }


# -- ValueCache -------------------------------------------------------------------------------


def _filled(n: int, cache: ValueCache | None = None) -> tuple[ValueCache, Store, list[Any]]:
    """A chain of ``n`` versions of list channel "m" (c0 full, then deltas), all cached."""
    deltas, store = DeltaCache(small_list=0), Store()
    cache = ValueCache() if cache is None else cache
    items: list[Any] = []
    parent = None
    for i in range(n):
        items = [*items, {"n": i}]
        step(deltas, store, parent, f"c{i}", {"m": items})
        parent = f"c{i}"
    cache.add_rows(store.rows)
    return cache, store, items


def test_value_cache_rebuilds_chains_from_cached_rows() -> None:
    cache, store, items = _filled(50)
    decoded: list[Any] = []

    def counting(key: tuple[Any, ...], row: StoredBlob) -> Any:
        decoded.append(key)
        return decode(key, row)

    last = (T, NS, "m", "c49-m")
    found, missing = cache.lookup([last], counting)
    assert missing == [] and found[last].value == items
    assert found[last].root == "c0-m" and found[last].depth == 49
    assert len(decoded) == 50  # each row decoded once
    decoded.clear()
    again, _ = cache.lookup([last], counting)
    assert again[last].value == items and decoded == []  # now served rebuilt
    # a later version extends the rebuilt one: only its own row is decoded
    deltas = DeltaCache(small_list=0)
    deltas.remember_loaded(T, NS, "c49", {"m": "c49-m"}, {"m": found[last]})
    step(deltas, store, "c49", "c50", {"m": [*items, {"n": 50}]})
    cache.add_rows({k: r for k, r in store.rows.items() if k[-1] == "c50-m"})
    decoded.clear()
    newer, _ = cache.lookup([(T, NS, "m", "c50-m")], counting)
    assert newer[(T, NS, "m", "c50-m")].value == [*items, {"n": 50}] and len(decoded) == 1


def test_value_cache_hands_out_fresh_lists() -> None:
    cache, _, items = _filled(3)
    key = (T, NS, "m", "c2-m")
    first = cache.lookup([key], decode)[0][key].value
    first.append("caller's own")
    first[0] = "replaced"
    second = cache.lookup([key], decode)[0][key].value
    assert second == items and second is not first


def test_value_cache_hands_out_independent_dicts() -> None:
    cache = ValueCache()
    tag, data = SERDE.dumps_typed({"a": [1]})
    key = (T, NS, "d", "1")
    cache.add_rows({key: StoredBlob(tag, data)})
    one = cache.lookup([key], decode)[0][key].value
    one["a"].append(2)
    assert cache.lookup([key], decode)[0][key].value == {"a": [1]}


def test_value_cache_misses_what_it_cannot_rebuild() -> None:
    cache, store, _ = _filled(5, ValueCache())
    cache.forget(T)
    assert len(cache) == 0 and cache.bytes == 0
    only_tail = ValueCache()
    only_tail.add_rows({k: r for k, r in store.rows.items() if k[-1] == "c4-m"})
    found, missing = only_tail.lookup([(T, NS, "m", "c4-m"), (T, NS, "x", "1")], decode)
    assert found == {} and missing == [(T, NS, "m", "c4-m"), (T, NS, "x", "1")]


def test_value_cache_is_bounded() -> None:
    small = ValueCache(max_bytes=2_000)
    _filled(200, small)
    assert small.bytes <= 2_000 and 0 < len(small) < 200
    few = ValueCache(max_entries=10)
    _filled(50, few)
    assert len(few) == 10
    off = ValueCache(max_bytes=0)
    _filled(5, off)
    key = (T, NS, "m", "c4-m")
    assert len(off) == 0 and off.lookup([key], decode) == ({}, [key])


def test_value_cache_keeps_resolved_reads() -> None:
    _, store, items = _filled(10)
    cache = ValueCache()
    key = (T, NS, "m", "c9-m")
    resolved = resolve(store.rows, [key], decode)
    cache.add_resolved(store.rows, resolved)
    resolved[key].value.append("caller's own")  # the cache kept a copy
    assert cache.lookup([key], lambda *_: pytest.fail("decoded"))[0][key].value == items


def test_a_print_sees_every_change_of_state_and_nothing_else() -> None:
    """Equal states print equal however their objects are shared (a decoded copy shares
    its field names, a live message may not); any change of state, deep or shallow, of
    class or of fields set, prints differently."""
    from langchain_core.messages import AIMessage, HumanMessage

    call = {"name": "search", "args": {"q": "weather"}, "id": "c1", "type": "tool_call"}
    live = [HumanMessage("hi", id="h1"), AIMessage("", id="a1", tool_calls=[call])]
    cache = DeltaCache(small_list=0)
    printed = cache.print_of(live)
    assert printed is not None and printed.length == 2

    copy = SERDE.loads_typed(SERDE.dumps_typed(live))
    renamed = {"".join(list(name)): value for name, value in copy[0].__dict__.items()}
    object.__setattr__(copy[0], "__dict__", renamed)  # same state, other key objects
    assert cache.print_of(copy) == printed

    copy[1].tool_calls[0]["args"]["q"] = "weather in Paris"  # a deep, in-place change
    assert cache.print_of(copy) != printed
    copy = SERDE.loads_typed(SERDE.dumps_typed(live))
    copy[0] = AIMessage("hi", id="h1")  # another class, the same fields
    assert cache.print_of(copy) != printed
    copy = SERDE.loads_typed(SERDE.dumps_typed(live))
    copy[1].__pydantic_fields_set__.add("name")
    assert cache.print_of(copy) != printed
    assert cache.print_of([(1, 2)]) != cache.print_of([[1, 2]])  # tuples are not lists


def test_an_old_item_changed_in_place_is_seen_at_the_next_full_check() -> None:
    """Older than the tail: seen once the list grew by ``1/verify_growth`` (or at once with
    ``verify_growth=0``); the newest ``tail_items`` are checked at every put."""
    # with 8: once 13 items (>= 100 / 8) were appended, at the put after them
    for growth, seen_after in ((0, 1), (8, 14)):
        cache, store = DeltaCache(small_list=0, verify_growth=growth), Store()
        items: list[Any] = [{"n": i} for i in range(100)]
        step(cache, store, None, "c0", {"m": items})
        items[0]["n"] = "changed"
        for k in range(1, 40):
            items = [*items, {"n": 100 + k}]
            [p] = step(cache, store, f"c{k - 1}", f"c{k}", {"m": items})
            if not p.is_delta:
                break
        assert k == seen_after and store.read("m", f"c{k}-m")[0] == {"n": "changed"}
    cache, store = DeltaCache(small_list=0), Store()
    items = [{"n": i} for i in range(100)]
    step(cache, store, None, "c0", {"m": items})
    items[-cache.tail_items]["n"] = "changed"
    [p] = step(cache, store, "c0", "c1", {"m": [*items, {"n": 100}]})
    assert not p.is_delta


def test_value_cache_listed_leaves_the_lru_order_as_it_was() -> None:
    """A listing walks history once: the versions it reads stay where they were in the
    LRU order, so the next eviction takes them, not the head a run read last."""
    cache = ValueCache(max_entries=3)
    old, head, newer = [(T, NS, "v", str(i)) for i in range(3)]
    for key in (old, head, newer):
        cache.add_rows({key: StoredBlob(*SERDE.dumps_typed(int(key[3])))})
    cache.lookup([head], decode)  # a run reads the head: most recent now
    values, missing = cache.listed([old], decode)
    assert values == [0] and missing == []
    cache.add_rows({(T, NS, "v", "3"): StoredBlob(*SERDE.dumps_typed(3))})  # evicts one
    assert cache.listed([old, head], decode) == ([EMPTY, 1], [old])


def test_value_cache_listed_hands_out_values_without_freezing_them() -> None:
    """``listed`` (a listing's lookup): the values alone - whole rows decoded in one pass,
    delta chains rebuilt, unknown keys missing - each the caller's own, none frozen."""
    cache, _, items = _filled(5)
    whole = (T, NS, "d", "1")
    tag, data = SERDE.dumps_typed({"a": [1]})
    cache.add_rows({whole: StoredBlob(tag, data)})
    chained, unknown = (T, NS, "m", "c4-m"), (T, NS, "x", "9")
    decoded: list[Any] = []

    def counting(key: tuple[Any, ...], row: StoredBlob) -> Any:
        decoded.append(key)
        return decode(key, row)

    values, missing = cache.listed([whole, chained, unknown, unknown], counting)
    # in the order of the keys, EMPTY where not held; each missing key named once
    assert values == [{"a": [1]}, items, EMPTY, EMPTY] and missing == [unknown]
    values[0]["a"].append(2)
    values[1].append("caller's own")
    decoded.clear()
    again, _ = cache.listed([whole, chained], counting)
    assert again == [{"a": [1]}, items]
    assert whole in decoded  # decoded again: the listing did not freeze it
    off = ValueCache(max_bytes=0)
    assert off.listed([whole, whole], counting) == ([EMPTY, EMPTY], [whole])
