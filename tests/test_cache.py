"""The node cache: ``CachePolicy`` on nodes, ``compile(cache=...)`` and the three backends
(``InMemoryCache``, ``SqliteCache``, ``RedisCache``; the last needs ``redis`` and a server
at 127.0.0.1:6379, else its cases are skipped)."""

from __future__ import annotations

import operator
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest

from threadloom.cache.base import BaseCache
from threadloom.cache.memory import InMemoryCache
from threadloom.cache.redis import RedisCache
from threadloom.cache.sqlite import SqliteCache
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.types import CachePolicy, Command, default_cache_key, interrupt


def _redis_client() -> Any:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_connect_timeout=1)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server
        pytest.skip(f"no Redis server at 127.0.0.1:6379 ({exc})")
    return client


@pytest.fixture(params=["memory", "sqlite", "sqlite_file", "redis"])
def cache(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[BaseCache]:
    if request.param == "memory":
        yield InMemoryCache()
    elif request.param == "sqlite":
        yield SqliteCache(path=":memory:")
    elif request.param == "sqlite_file":
        with SqliteCache(path=str(tmp_path / "cache.db")) as c:
            yield c
    else:
        client = _redis_client()
        prefix = f"threadloom-test:{uuid.uuid4().hex}:"
        yield RedisCache(client, prefix=prefix)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


# -- the backends --------------------------------------------------------------------


def test_backend_get_set_clear(cache: BaseCache) -> None:
    a, b, c = (("n", "a"), "k1"), (("n", "b"), "k1"), (("n", "a"), "k2")
    assert cache.get([a, b]) == {}
    cache.set({a: ({"x": [1, 2]}, None), b: ("two", None), c: (3, None)})
    assert cache.get([a, b, c, (("n", "z"), "k")]) == {a: {"x": [1, 2]}, b: "two", c: 3}
    cache.clear([("n", "a")])
    assert cache.get([a, b, c]) == {b: "two"}
    cache.clear()
    assert cache.get([a, b, c]) == {}


def test_backend_values_are_copies(cache: BaseCache) -> None:
    key = (("n",), "k")
    value = {"items": [1]}
    cache.set({key: (value, None)})
    value["items"].append(2)
    got = cache.get([key])[key]
    assert got == {"items": [1]}
    got["items"].append(3)
    assert cache.get([key])[key] == {"items": [1]}


def test_backend_namespaces_do_not_overlap(cache: BaseCache) -> None:
    # ("a", "b") and ("a:b",) and ("a",) with key "b:k" must stay apart
    keys = [(("a", "b"), "k"), (("a:b",), "k"), (("a",), "b:k"), (("a*",), "k")]
    cache.set({k: (i, None) for i, k in enumerate(keys)})
    cache.clear([("a",)])
    assert cache.get(keys) == {keys[0]: 0, keys[1]: 1, keys[3]: 3}


def test_backend_ttl_expires(cache: BaseCache) -> None:
    short, forever = (("n",), "short"), (("n",), "forever")
    cache.set({short: ("s", 0.3), forever: ("f", None)})
    assert cache.get([short, forever]) == {short: "s", forever: "f"}
    time.sleep(0.5)
    assert cache.get([short, forever]) == {forever: "f"}


async def test_backend_async_methods(cache: BaseCache) -> None:
    key = (("n",), "k")
    await cache.aset({key: ([1, "a"], None)})
    assert await cache.aget([key]) == {key: [1, "a"]}
    await cache.aclear()
    assert await cache.aget([key]) == {}


def test_backend_rejects_bad_keys_and_ttls() -> None:
    cache = InMemoryCache()
    with pytest.raises(TypeError, match="namespace tuple"):
        cache.set({("n", "k"): (1, None)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="ttl"):
        cache.set({(("n",), "k"): (1, -1)})


def test_sqlite_cache_persists_in_its_file(tmp_path: Any) -> None:
    path = str(tmp_path / "c.db")
    key = (("n",), "k")
    with SqliteCache(path=path) as first:
        first.set({key: ("kept", None)})
    with SqliteCache(path=path) as second:
        assert second.get([key]) == {key: "kept"}


# -- graphs ----------------------------------------------------------------------------


class State(TypedDict, total=False):
    query: str
    log: Annotated[list, operator.add]


def _graph(cache: BaseCache | None, calls: list[str], **policy: Any) -> Any:
    def rewrite(state: State) -> State:
        calls.append(state["query"])
        return {"query": f"q: {state['query']}", "log": ["rewrite"]}

    def answer(state: State) -> State:
        return {"log": [f"answer {state['query']}"]}

    builder = StateGraph(State)
    builder.add_node("rewrite", rewrite, cache_policy=CachePolicy(**policy))
    builder.add_node("answer", answer)
    builder.add_edge(START, "rewrite")
    builder.add_edge("rewrite", "answer")
    builder.add_edge("answer", END)
    return builder.compile(cache=cache)


def test_cached_node_is_reused_across_runs(cache: BaseCache) -> None:
    calls: list[str] = []
    graph = _graph(cache, calls)
    first = graph.invoke({"query": "sf", "log": []})
    assert first == {"query": "q: sf", "log": ["rewrite", "answer q: sf"]}
    assert list(graph.stream({"query": "sf", "log": []})) == [
        {"rewrite": {"query": "q: sf", "log": ["rewrite"]}, "__metadata__": {"cached": True}},
        {"answer": {"log": ["answer q: sf"]}},
    ]
    assert calls == ["sf"]
    graph.invoke({"query": "nyc", "log": []})  # another input is another entry
    assert calls == ["sf", "nyc"]


def test_clear_cache_runs_nodes_again(cache: BaseCache) -> None:
    calls: list[str] = []
    graph = _graph(cache, calls)
    graph.invoke({"query": "sf", "log": []})
    graph.clear_cache()
    graph.invoke({"query": "sf", "log": []})
    assert calls == ["sf", "sf"]
    graph.clear_cache(["answer"])  # a node without a policy: nothing to clear
    graph.invoke({"query": "sf", "log": []})
    assert calls == ["sf", "sf"]
    with pytest.raises(ValueError, match="unknown nodes"):
        graph.clear_cache(["nope"])


async def test_cache_in_async_runs(cache: BaseCache) -> None:
    calls: list[str] = []
    graph = _graph(cache, calls)
    assert await graph.ainvoke({"query": "sf", "log": []}) == await graph.ainvoke(
        {"query": "sf", "log": []}
    )
    assert calls == ["sf"]
    await graph.aclear_cache()
    await graph.ainvoke({"query": "sf", "log": []})
    assert calls == ["sf", "sf"]


def test_ttl_expires_cached_results(cache: BaseCache) -> None:
    calls: list[str] = []
    graph = _graph(cache, calls, ttl=0.3)
    graph.invoke({"query": "sf", "log": []})
    graph.invoke({"query": "sf", "log": []})
    assert calls == ["sf"]
    time.sleep(0.5)
    graph.invoke({"query": "sf", "log": []})
    assert calls == ["sf", "sf"]


def test_key_func_decides_what_counts_as_the_same_input() -> None:
    calls: list[str] = []
    graph = _graph(InMemoryCache(), calls, key_func=lambda state: state["query"].lower())
    graph.invoke({"query": "SF", "log": []})
    result = graph.invoke({"query": "sf", "log": ["other"]})
    assert calls == ["SF"]
    assert result["query"] == "q: SF"  # the cached writes, replayed


def test_failed_and_interrupted_nodes_are_not_cached() -> None:
    runs: list[str] = []

    def flaky(state: State) -> State:
        runs.append("flaky")
        raise RuntimeError("boom")

    builder = StateGraph(State)
    builder.add_node("flaky", flaky, cache_policy=CachePolicy())
    builder.add_edge(START, "flaky")
    graph = builder.compile(cache=InMemoryCache())
    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            graph.invoke({"query": "x"})
    assert runs == ["flaky", "flaky"]

    def ask(state: State) -> State:
        runs.append("ask")
        return {"query": interrupt("why?")}

    builder = StateGraph(State)
    builder.add_node("ask", ask, cache_policy=CachePolicy())
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=InMemorySaver(), cache=InMemoryCache())
    for thread in ("1", "2"):
        graph.invoke({"query": "x"}, {"configurable": {"thread_id": thread}})
    assert runs[-2:] == ["ask", "ask"]
    done = graph.invoke(Command(resume="because"), {"configurable": {"thread_id": "1"}})
    assert done["query"] == "because"
    # now cached: a third thread with the same input does not ask again
    third = graph.invoke({"query": "x"}, {"configurable": {"thread_id": "3"}})
    assert third["query"] == "because" and runs.count("ask") == 3


def test_cache_hit_is_checkpointed_like_a_run() -> None:
    calls: list[str] = []
    cache = InMemoryCache()

    def rewrite(state: State) -> State:
        calls.append(state["query"])
        return {"log": ["rewritten"]}

    builder = StateGraph(State)
    builder.add_node("rewrite", rewrite, cache_policy=CachePolicy())
    builder.add_edge(START, "rewrite")
    graph = builder.compile(checkpointer=InMemorySaver(), cache=cache)
    graph.invoke({"query": "a", "log": []}, {"configurable": {"thread_id": "1"}})
    config = {"configurable": {"thread_id": "2"}}
    graph.invoke({"query": "a", "log": []}, config)
    assert calls == ["a"]
    assert graph.get_state(config).values == {"query": "a", "log": ["rewritten"]}
    assert len(list(graph.get_state_history(config))) == 3


def test_parallel_cached_node_with_sends() -> None:
    from threadloom.types import Send

    calls: list[int] = []

    class S(TypedDict, total=False):
        items: list[int]
        out: Annotated[list, operator.add]

    def square(x: int) -> dict:
        calls.append(x)
        return {"out": [x * x]}

    builder = StateGraph(S)
    builder.add_node("square", square, cache_policy=CachePolicy())
    builder.add_conditional_edges(START, lambda s: [Send("square", i) for i in s["items"]])
    graph = builder.compile(cache=InMemoryCache())
    assert sorted(graph.invoke({"items": [1, 2, 3]})["out"]) == [1, 4, 9]
    assert sorted(graph.invoke({"items": [2, 3, 4]})["out"]) == [4, 9, 16]
    assert sorted(calls) == [1, 2, 3, 4]


def test_resumed_run_streams_saved_writes_as_cached() -> None:
    def fast(state: State) -> State:
        return {"log": ["fast"]}

    def slow(state: State) -> State:
        return {"log": [interrupt("ok?")]}

    builder = StateGraph(State)
    builder.add_node("fast", fast)
    builder.add_node("slow", slow)
    builder.add_edge(START, "fast")
    builder.add_edge(START, "slow")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"log": []}, config)
    assert list(graph.stream(Command(resume="yes"), config)) == [
        {"fast": {"log": ["fast"]}, "__metadata__": {"cached": True}},
        {"slow": {"log": ["yes"]}},
    ]


def test_cache_and_policy_errors() -> None:
    builder = StateGraph(State)
    with pytest.raises(TypeError, match="must be a CachePolicy"):
        builder.add_node("a", lambda s: s, cache_policy={"ttl": 3})
    builder.add_node("a", lambda s: s)
    builder.add_edge(START, "a")
    with pytest.raises(TypeError, match="BaseCache"):
        builder.compile(cache={})
    with pytest.raises(ValueError, match="No cache is set"):
        builder.compile().clear_cache()


def test_default_cache_key_is_stable_and_value_based() -> None:
    shared = "x" * 50
    a = {"b": [shared, shared], "a": {1, 2, 3}}
    b = {"a": {3, 2, 1}, "b": ["x" * 50, "".join(["x"] * 50)]}
    assert default_cache_key(a) == default_cache_key(b)
    assert default_cache_key(a) != default_cache_key({**a, "c": 1})
    assert default_cache_key([1]) != default_cache_key((1,))
    with pytest.raises(TypeError, match="key_func"):
        default_cache_key({"lock": threading.Lock()})
