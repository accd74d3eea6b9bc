"""The functional API: ``@entrypoint`` graphs and the ``@task`` calls they make."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, TypedDict

import pytest

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.func import entrypoint, task
from threadloom.graph import START, StateGraph
from threadloom.store.memory import InMemoryStore
from threadloom.types import Command, RetryPolicy, interrupt


def thread(name: str = "1") -> dict[str, Any]:
    return {"configurable": {"thread_id": name}}


# -- running and resuming ------------------------------------------------------------------


def test_tasks_run_in_parallel_and_are_not_rerun_after_an_interrupt() -> None:
    calls: list[int] = []
    both_started = threading.Barrier(2, timeout=5)

    @task
    def mapper(x: int) -> str:
        calls.append(x)
        both_started.wait()  # only passes if the two calls run at the same time
        return str(x) * 2

    @entrypoint(checkpointer=InMemorySaver())
    def graph(numbers: list[int]) -> list[str]:
        futures = [mapper(n) for n in numbers]
        mapped = [f.result() for f in futures]
        answer = interrupt("question")
        return [m + answer for m in mapped]

    chunks = list(graph.stream([0, 1], thread()))
    assert sorted(chunks[:-1], key=str) == [{"mapper": "00"}, {"mapper": "11"}]
    assert chunks[-1]["__interrupt__"][0].value == "question"
    assert graph.invoke(Command(resume="!"), thread()) == ["00!", "11!"]
    assert sorted(calls) == [0, 1]  # the resumed run replayed both results


def test_interrupt_inside_a_task_resumes_that_task_only() -> None:
    runs: list[str] = []

    @task
    def fetch(state: dict) -> dict:
        runs.append("fetch")
        return {"a": state["a"] + "fetched"}

    @task
    def ask(state: dict) -> dict:
        runs.append("ask")
        return {"a": state["a"] + interrupt("value?")}

    @entrypoint(checkpointer=InMemorySaver())
    def graph(inputs: dict) -> dict:
        return ask(fetch(inputs).result()).result()

    paused = graph.invoke({"a": ""}, thread())
    assert [i.value for i in paused["__interrupt__"]] == ["value?"]
    state = graph.get_state(thread())
    assert state.next == ("graph",)
    assert [i.value for i in state.tasks[0].interrupts] == ["value?"]
    assert graph.invoke(Command(resume="!"), thread()) == {"a": "fetched!"}
    assert runs == ["fetch", "ask", "ask"]


def test_the_same_task_interrupts_once_per_call() -> None:
    @task
    def ask(text: str) -> str:
        return text + interrupt("more?")

    @entrypoint(checkpointer=InMemorySaver())
    def graph(text: str) -> str:
        return ask(ask(text).result()).result()

    assert "__interrupt__" in graph.invoke("a", thread())
    assert "__interrupt__" in graph.invoke(Command(resume="b"), thread())
    assert graph.invoke(Command(resume="c"), thread()) == "abc"


def test_interrupts_in_the_entrypoint_between_tasks() -> None:
    doubled: list[int] = []

    @task
    def double(x: int) -> int:
        doubled.append(x)
        return 2 * x

    @entrypoint(checkpointer=InMemorySaver())
    def graph(_: Any) -> list[Any]:
        values: list[Any] = []
        for n in (1, 2, 3):
            values += [double(n).result(), interrupt(n)]
        return values

    graph.invoke({}, thread())
    for answer in "ab":
        graph.invoke(Command(resume=answer), thread())
    assert graph.invoke(Command(resume="c"), thread()) == [2, "a", 4, "b", 6, "c"]
    assert doubled == [1, 2, 3]


def test_parallel_tasks_that_both_interrupt_are_both_reported() -> None:
    calls = {"a": 0, "b": 0}

    @task
    def ask(name: str) -> str:
        calls[name] += 1
        return interrupt(name.upper())

    @entrypoint(checkpointer=InMemorySaver())
    def graph(_: Any) -> list[str]:
        first, second = ask("a"), ask("b")
        return [first.result(), second.result()]

    paused = graph.invoke(1, thread())
    assert sorted(i.value for i in paused["__interrupt__"]) == ["A", "B"]
    pending = graph.get_state(thread()).interrupts
    assert sorted(i.value for i in pending) == ["A", "B"]
    by_value = {i.value: i.id for i in pending}
    with pytest.raises(RuntimeError, match="multiple pending interrupts"):
        graph.invoke(Command(resume="x"), thread())
    # answer A only: B asks again, A's result is kept
    graph.invoke(Command(resume={by_value["A"]: "x"}), thread())
    assert [i.value for i in graph.get_state(thread()).interrupts] == ["B"]
    assert graph.invoke(Command(resume={by_value["B"]: "y"}), thread()) == ["x", "y"]
    assert calls == {"a": 2, "b": 3}


def test_a_task_finished_with_none_is_not_rerun() -> None:
    runs: list[str] = []

    @task
    def side_effect() -> None:
        runs.append("side_effect")

    @entrypoint(checkpointer=InMemorySaver())
    def graph(_: Any) -> str:
        side_effect().result()
        return interrupt("go on?")

    graph.invoke(1, thread())
    assert graph.invoke(Command(resume="yes"), thread()) == "yes"
    assert runs == ["side_effect"]


def test_resume_with_durability_exit() -> None:
    runs: list[int] = []

    @task
    def step(x: int) -> int:
        runs.append(x)
        return x + 1

    @entrypoint(checkpointer=InMemorySaver())
    def graph(x: int) -> int:
        return step(x).result() + interrupt("add?")

    graph.invoke(1, thread(), durability="exit")
    assert graph.invoke(Command(resume=10), thread(), durability="exit") == 12
    assert runs == [1]


def test_nested_task_calls_do_not_exhaust_the_pool() -> None:
    @task
    def leaf(x: int) -> int:
        return x

    @task
    def branch(x: int) -> int:
        return sum(f.result() for f in [leaf(x), leaf(x + 1)])

    @entrypoint()
    def graph(n: int) -> int:
        return sum(f.result() for f in [branch(i) for i in range(n)])

    assert graph.invoke(40) == sum(2 * i + 1 for i in range(40))


# -- previous, final, state ----------------------------------------------------------------


def test_previous_is_the_last_saved_value() -> None:
    seen: list[Any] = []

    @entrypoint(checkpointer=InMemorySaver())
    def counter(step: int, *, previous: Any) -> Any:
        seen.append(previous)
        total = (previous or 0) + step
        return entrypoint.final(value=f"total {total}", save=total)

    assert counter.invoke(1, thread()) == "total 1"
    assert counter.invoke(2, thread()) == "total 3"
    counter.update_state(thread(), 10)  # sets what the next run sees as previous
    assert counter.invoke(1, thread()) == "total 11"
    assert seen == [None, 1, 10]
    assert counter.get_state(thread()).values == "total 11"


def test_previous_without_checkpointer_is_none() -> None:
    @entrypoint()
    def echo(value: Any, *, previous: Any) -> Any:
        return {"previous": previous, "current": value}

    assert echo.invoke(1, thread()) == {"previous": None, "current": 1}
    assert echo.invoke(2, thread()) == {"previous": None, "current": 2}


def test_stream_yields_task_results_then_the_return_value() -> None:
    @task
    def foo(state: dict) -> tuple:
        return state["a"] + "foo", "bar"

    @task
    def bar(a: str, b: str, c: str | None = None) -> dict:
        return {"a": a + b, "c": (c or "") + "bark"}

    @entrypoint(checkpointer=InMemorySaver())
    def graph(state: dict) -> dict:
        return bar(*foo(state).result()).result()

    assert list(graph.stream({"a": "0"}, thread())) == [
        {"foo": ("0foo", "bar")},
        {"bar": {"a": "0foobar", "c": "bark"}},
        {"graph": {"a": "0foobar", "c": "bark"}},
    ]
    assert graph.get_state(thread()).values == {"a": "0foobar", "c": "bark"}


def test_task_results_stream_while_the_entrypoint_runs() -> None:
    @task
    def slow() -> float:
        time.sleep(0.05)
        return time.monotonic()

    @entrypoint()
    def graph(_: Any) -> list[float]:
        return [slow().result(), slow().result()]

    arrivals = [time.monotonic() for chunk in graph.stream({}) if "slow" in chunk]
    assert len(arrivals) == 2
    assert arrivals[1] - arrivals[0] > 0.04


def test_task_names_and_injected_arguments() -> None:
    store = InMemoryStore()

    class Greeter:
        def greet(self, name: str) -> str:
            return f"hello {name}"

    greet = task(Greeter().greet, name="custom_greet")

    @task
    def check(store: Any, value: Any) -> str:
        return "same" if store is value else "different"

    @entrypoint(store=store)
    def main(name: str, *, store: Any, config: dict) -> list[str]:
        assert store is not None and config["configurable"]
        return [greet(name).result(), check(value=store).result(),
                check(store=None, value=None).result()]

    assert list(main.stream("ann", stream_mode="updates"))[-1] == {
        "main": ["hello ann", "same", "same"]
    }


def test_entrypoint_schemas_come_from_the_annotations() -> None:
    @entrypoint()
    def graph(numbers: list[int]) -> entrypoint.final[str, int]:
        return entrypoint.final(value="x", save=1)

    assert graph.get_input_jsonschema()["type"] == "array"
    assert graph.get_output_jsonschema() == {"title": "LangGraphOutput", "type": "string"}


# -- errors -----------------------------------------------------------------------------


def test_generators_are_refused() -> None:
    with pytest.raises(NotImplementedError):

        @entrypoint()
        def gen(inputs: Any) -> Any:
            yield inputs


def test_a_task_called_outside_a_run_says_so() -> None:
    @task
    def lonely() -> int:
        return 1

    with pytest.raises(RuntimeError, match="outside of a running graph"):
        lonely()


def test_a_failing_task_can_be_caught_and_retries_by_policy() -> None:
    attempts: list[int] = []

    @task(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False))
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        return x

    @task
    def broken() -> None:
        raise KeyError("always")

    @entrypoint()
    def graph(x: int) -> str:
        try:
            broken().result()
        except KeyError:
            pass
        return f"got {flaky(x).result()}"

    assert graph.invoke(5) == "got 5"
    assert attempts == [5, 5, 5]


# -- tasks from graph nodes, async ---------------------------------------------------------


def test_a_graph_node_can_call_tasks() -> None:
    class State(TypedDict):
        value: int

    @task
    def double(x: int) -> int:
        return 2 * x

    def node(state: State) -> dict:
        return {"value": double(state["value"]).result()}

    graph = StateGraph(State).add_node("node", node).add_edge(START, "node").compile()
    assert graph.invoke({"value": 21}) == {"value": 42}


async def test_async_entrypoint_gathers_tasks_and_resumes() -> None:
    calls: list[int] = []

    @task
    async def mapper(x: int) -> str:
        calls.append(x)
        await asyncio.sleep(0.01 * x)
        return str(x) * 2

    @task
    def sync_suffix(text: str) -> str:
        return text + "."

    @entrypoint(checkpointer=InMemorySaver())
    async def graph(numbers: list[int]) -> list[str]:
        mapped = await asyncio.gather(*[mapper(n) for n in numbers])
        answer = interrupt("question")
        return [await sync_suffix(m + answer) for m in mapped]

    chunks = [c async for c in graph.astream([1, 2], thread())]
    assert chunks[:2] == [{"mapper": "11"}, {"mapper": "22"}]
    assert "__interrupt__" in chunks[-1]
    assert await graph.ainvoke(Command(resume="!"), thread()) == ["11!.", "22!."]
    assert calls == [1, 2]


async def test_async_interrupt_in_task_and_sync_entrypoint_under_ainvoke() -> None:
    @task
    async def ask(name: str) -> str:
        return f"{name}: {interrupt(name)}"

    @entrypoint(checkpointer=InMemorySaver())
    async def program(_: Any) -> list[str]:
        return [await ask("James"), await ask("Will")]

    first = await program.ainvoke("x", thread())
    assert [i.value for i in first["__interrupt__"]] == ["James"]
    state = await program.aget_state(thread())
    assert [i.value for i in state.tasks[0].interrupts] == ["James"]
    second = await program.ainvoke(Command(resume="yes"), thread())
    assert [i.value for i in second["__interrupt__"]] == ["Will"]
    assert await program.ainvoke(Command(resume="no"), thread()) == ["James: yes", "Will: no"]

    @task
    def plus(x: int) -> int:
        return x + 1

    @entrypoint(checkpointer=InMemorySaver())
    def sync_graph(x: int) -> int:
        return plus(plus(x).result()).result()

    assert [c async for c in sync_graph.astream(1, thread("s"))] == [
        {"plus": 2}, {"plus": 3}, {"sync_graph": 3}
    ]


async def test_a_cancelled_task_runs_again_on_resume() -> None:
    started: list[int] = []

    @task
    async def slow(x: int) -> int:
        started.append(x)
        await asyncio.sleep(0 if x == 0 else 5)
        return x

    @entrypoint(checkpointer=InMemorySaver())
    async def graph(_: Any) -> list[int]:
        futures = [slow(0), slow(1)]
        await asyncio.sleep(0.05)
        futures.pop().cancel()
        done = list(await asyncio.gather(*futures))
        return done + [interrupt("more?")]

    await graph.ainvoke(0, thread())
    assert await graph.ainvoke(Command(resume=9), thread()) == [0, 9]
    assert started == [0, 1, 1]


# -- retries: attempts and what retry_on accepts -------------------------------------------


def test_a_retried_node_sees_its_attempt_number() -> None:
    from unittest.mock import patch

    from threadloom.runtime import Runtime

    class State(TypedDict):
        foo: str

    seen: list[tuple[int, float | None, str | None]] = []

    def flaky(state: State, runtime: Runtime) -> dict:
        info = runtime.execution_info
        seen.append((info.node_attempt, info.node_first_attempt_time, info.thread_id))
        if len(seen) < 3:
            raise ValueError("again")
        return {"foo": "ok"}

    policy = RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False,
                         retry_on=ValueError)
    graph = (StateGraph(State).add_node("flaky", flaky, retry_policy=policy)
             .add_edge(START, "flaky").compile(checkpointer=InMemorySaver()))
    with patch("time.sleep") as sleep:
        assert graph.invoke({"foo": ""}, thread("r")) == {"foo": "ok"}
    assert [args[0][0] for args in sleep.call_args_list] == [0.01, 0.02]
    assert [attempt for attempt, _, _ in seen] == [1, 2, 3]
    first_times = {first for _, first, _ in seen}
    assert len(first_times) == 1 and isinstance(first_times.pop(), float)
    assert {thread_id for _, _, thread_id in seen} == {"r"}


def test_retry_on_accepts_classes_sequences_and_predicates() -> None:
    from threadloom.engine.drivers import should_retry_on

    assert should_retry_on(RetryPolicy(retry_on=ValueError), KeyError()) is False
    assert should_retry_on(RetryPolicy(retry_on=(ValueError, KeyError)), KeyError()) is True
    assert should_retry_on(RetryPolicy(retry_on=()), ValueError()) is False
    assert should_retry_on(RetryPolicy(retry_on=lambda e: "retry" in str(e)),
                           ValueError("retry me")) is True
    assert should_retry_on(RetryPolicy(), ConnectionError()) is True
    assert should_retry_on(RetryPolicy(), ValueError()) is False
    with pytest.raises(TypeError, match="retry_on must be an Exception class"):
        should_retry_on(RetryPolicy(retry_on=123), ValueError())  # type: ignore[arg-type]


def test_a_retried_caller_replays_the_tasks_it_already_called() -> None:
    from unittest.mock import patch

    runs: list[str] = []

    @task
    def fetch() -> str:
        runs.append("fetch")
        return "data"

    @entrypoint(retry_policy=RetryPolicy(max_attempts=2, jitter=False,
                                         retry_on=ConnectionError))
    def graph(_: Any) -> str:
        value = fetch().result()
        runs.append("body")
        if runs.count("body") == 1:
            raise ConnectionError("flaky network")
        return value

    with patch("time.sleep"):
        assert graph.invoke(1) == "data"
    assert runs == ["fetch", "body", "body"]


def test_a_task_with_a_cache_policy_is_served_from_the_cache() -> None:
    from threadloom.cache.memory import InMemoryCache
    from threadloom.types import CachePolicy

    runs: list[int] = []
    cache = InMemoryCache()

    @task(cache_policy=CachePolicy())
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    @entrypoint(cache=cache)
    def graph(numbers: list[int]) -> list[int]:
        return [double(n).result() for n in numbers]

    assert graph.invoke([1, 2, 1]) == [2, 4, 2]
    assert graph.invoke([2, 1]) == [4, 2]
    assert runs == [1, 2]
    double.clear_cache(cache)
    assert graph.invoke([1]) == [2]
    assert runs == [1, 2, 1]
