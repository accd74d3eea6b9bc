"""The worker threads that run sync nodes of an async run (``threadloom.engine.worker_threads``):
off the event loop, concurrently when a step has several, failures raised at the await,
a job cancelled before it started never run, and a default executor the program set on
its loop used instead (as LangGraph uses it)."""

from __future__ import annotations

import asyncio
import operator
import threading
from typing import Annotated, TypedDict

import pytest

from threadloom.engine.worker_threads import WorkerThreads
from threadloom.graph import END, START, StateGraph


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


async def test_sync_nodes_of_one_step_run_at_once_off_the_loop() -> None:
    loop_thread = threading.get_ident()
    barrier = threading.Barrier(3, timeout=5)  # breaks unless all three run together
    threads: list[str] = []

    def node(name: str):  # noqa: ANN202
        def run(state: Log) -> dict:
            assert threading.get_ident() != loop_thread
            threads.append(threading.current_thread().name)
            barrier.wait()
            return {"log": [name]}
        return run

    g = StateGraph(Log)
    for name in "abc":
        g.add_node(name, node(name))
        g.add_edge(START, name)
        g.add_edge(name, END)
    out = await g.compile().ainvoke({"log": []})
    assert out == {"log": ["a", "b", "c"]}
    assert all(name.startswith("threadloom-node") for name in threads)


async def test_a_sync_node_failure_is_raised_with_its_own_type() -> None:
    class Refused(Exception):
        pass

    def boom(state: Log) -> dict:
        raise Refused("no")

    g = StateGraph(Log)
    g.add_node("boom", boom)
    g.add_edge(START, "boom")
    g.add_edge("boom", END)
    with pytest.raises(Refused, match="no"):
        await g.compile().ainvoke({"log": []})


async def test_a_job_cancelled_before_a_worker_took_it_never_runs() -> None:
    pool = WorkerThreads(max_threads=1)
    loop = asyncio.get_running_loop()
    release = threading.Event()
    ran: list[str] = []

    def blocks() -> None:
        release.wait(5)
        ran.append("first")

    try:
        first = pool.run(loop, blocks)
        second = pool.run(loop, ran.append, "second")  # waits: the one worker is busy
        second.cancel()
        release.set()
        await first
        third = await pool.run(loop, lambda: "third")  # the worker went on past it
        assert third == "third"
        assert ran == ["first"]
    finally:
        pool.close()


async def test_a_stop_iteration_reaches_the_caller_as_a_runtime_error() -> None:
    pool = WorkerThreads(max_threads=1)

    def stops() -> None:
        raise StopIteration

    try:
        with pytest.raises(RuntimeError, match="StopIteration"):
            await pool.run(asyncio.get_running_loop(), stops)
    finally:
        pool.close()


def test_a_pool_of_no_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="max_threads must be at least 1"):
        WorkerThreads(max_threads=0)


async def test_a_closed_pool_refuses_new_jobs() -> None:
    pool = WorkerThreads(max_threads=1)
    pool.close()
    with pytest.raises(RuntimeError, match="is closed: it runs no more calls"):
        pool.run(asyncio.get_running_loop(), print)
