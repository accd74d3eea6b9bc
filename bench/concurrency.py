"""Approval cycles run concurrently: N OS processes on one database, or T asyncio tasks.

``run_processes(lib, kind, target, n, seconds)`` spawns ``n`` processes (``spawn``), each
opening its own saver on ``target`` (one SQLite file, or one PostgreSQL schema), building
the approval graph and running one warm cycle; all then start together (a barrier) and
run approval cycles, each on a new thread, for ``seconds``. ``run_tasks`` does the same
with ``t`` asyncio tasks on one async saver in this process.

Every cycle that counts is checked afterwards: its thread's final snapshot, read back
through a saver of its own, must equal the warm cycle's - so a faster figure is never a
broken one (a lost, half-written or duplicated write shows up as a different snapshot).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench import programs as p
from bench.api import load_api
from bench.normalize import first_difference, normalize
from bench.savers import saver_class


@dataclass
class Outcome:
    """What one concurrent run did: cycles finished in the window, over how long, with
    how much CPU (in the benchmark's processes; a database server's is not counted)."""

    cycles: int
    seconds: float
    cpu: float
    errors: list[str]
    threads: list[str]
    output: Any  # the warm cycle's normalized result

    @property
    def rate(self) -> float:
        """Cycles per second of wall-clock time."""
        return self.cycles / self.seconds

    @property
    def per_cpu(self) -> float:
        """Cycles per CPU-second spent by the processes running them."""
        return self.cycles / self.cpu if self.cpu else 0.0


@contextmanager
def _saver(lib: str, kind: str, target: str) -> Iterator[Any]:
    """``lib``'s sync saver of ``kind`` on an existing, set-up ``target``."""
    with saver_class(lib, kind).from_conn_string(target) as saver:
        yield saver


def _worker(
    lib: str,
    kind: str,
    target: str,
    name: str,
    seconds: float,
    barrier: Any,
    results: Any,
) -> None:
    """One process: warm up, wait for the others, run cycles until the window closes."""
    api = load_api(lib)
    errors: list[str] = []
    threads: list[str] = []
    try:
        with _saver(lib, kind, target) as saver:
            graph = p.approval_graph(api, saver)
            output = normalize(p.run_approval_cycle(api, graph, f"{name}-warm"))
            barrier.wait()
            cpu0 = time.process_time()
            start = time.monotonic()
            end = start + seconds
            k = 0
            while time.monotonic() < end:
                thread_id = f"{name}-{k}"
                k += 1
                try:
                    p.run_approval_cycle(api, graph, thread_id)
                except Exception as exc:  # counted, reported: the other side may fail
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                threads.append(thread_id)
            elapsed = time.monotonic() - start
            cpu = time.process_time() - cpu0
    except BaseException as exc:
        barrier.abort()
        results.put((name, None, f"{type(exc).__name__}: {exc}"))
        return
    results.put((name, (len(threads), elapsed, cpu, errors, threads, output), None))


def run_processes(lib: str, kind: str, target: str, n: int, seconds: float) -> Outcome:
    """``n`` processes running approval cycles on ``target`` at once for ``seconds``."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(lib, kind, target, f"{lib}-n{n}-w{i}", seconds, barrier, results),
        )
        for i in range(n)
    ]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=300 + seconds) for _ in procs]
    for proc in procs:
        proc.join()
    failed = [f"{name}: {error}" for name, result, error in got if result is None]
    if failed:
        raise RuntimeError(f"{lib} on {kind}, {n} processes: " + "; ".join(failed))
    parts = [result for _name, result, _error in got]
    outputs = [part[5] for part in parts]
    for other in outputs[1:]:
        diff = first_difference(outputs[0], other)
        if diff is not None:
            raise AssertionError(f"{lib} on {kind}: warm cycles differ between processes: {diff}")
    return Outcome(
        cycles=sum(part[0] for part in parts),
        seconds=max(part[1] for part in parts),
        cpu=sum(part[2] for part in parts),
        errors=[e for part in parts for e in part[3]],
        threads=[t for part in parts for t in part[4]],
        output=outputs[0],
    )


def check_threads(lib: str, kind: str, target: str, threads: list[str], warm: str) -> None:
    """Every thread in ``threads`` ended as the ``warm`` thread did, read through a saver
    of its own; raise ``AssertionError`` naming the first that did not."""
    api = load_api(lib)
    with _saver(lib, kind, target) as saver:
        graph = p.approval_graph(api, saver)
        expected = normalize(graph.get_state(p.thread(warm)))
        if expected["next"] or not expected["values"].get("approved"):
            raise AssertionError(f"{lib} on {kind}: warm thread {warm} did not finish: {expected}")
        for thread_id in threads:
            got = normalize(graph.get_state(p.thread(thread_id)))
            diff = first_difference(expected, got)
            if diff is not None:
                raise AssertionError(f"{lib} on {kind}: thread {thread_id} differs: {diff}")


async def _task_loop(
    api: Any, graph: Any, name: str, end: float, threads: list[str], errors: list[str]
) -> None:
    k = 0
    while time.monotonic() < end:
        thread_id = f"{name}-{k}"
        k += 1
        try:
            await p.arun_approval_cycle(api, graph, thread_id)
        except Exception as exc:  # counted, reported
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        threads.append(thread_id)


async def run_tasks(lib: str, saver: Any, tasks: int, seconds: float, prefix: str) -> Outcome:
    """``tasks`` asyncio tasks running approval cycles on the async ``saver`` at once for
    ``seconds``, then every finished thread checked against the warm one."""
    api = load_api(lib)
    graph = p.approval_graph(api, saver)
    warm = f"{prefix}-warm"
    output = normalize(await p.arun_approval_cycle(api, graph, warm))
    threads: list[str] = []
    errors: list[str] = []
    cpu0 = time.process_time()
    start = time.monotonic()
    end = start + seconds
    await asyncio.gather(
        *(_task_loop(api, graph, f"{prefix}-t{i}", end, threads, errors) for i in range(tasks))
    )
    elapsed = time.monotonic() - start
    cpu = time.process_time() - cpu0
    expected = normalize(await graph.aget_state(p.thread(warm)))
    for thread_id in threads:
        diff = first_difference(expected, normalize(await graph.aget_state(p.thread(thread_id))))
        if diff is not None:
            raise AssertionError(f"{lib}, {tasks} tasks: thread {thread_id} differs: {diff}")
    return Outcome(len(threads), elapsed, cpu, errors, threads, output)


def alternating(order: list[str], round_: int) -> list[str]:
    """``order`` on even rounds, reversed on odd ones (neither library always goes first)."""
    return order if round_ % 2 == 0 else order[::-1]
