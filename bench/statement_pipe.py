"""One statement's cost to the process sending it: psycopg's pool against the server
storage's statement pipe (``threadloom/server/storage/_statement_pipe.py``).

    .venv/bin/python bench/statement_pipe.py [--statements 4000] [--rounds 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Each way runs the same one-row primary-key read (the shape of the server's hot
statements: a thread, a run) ``--statements`` times, one at a time and 16 at a time,
``--rounds`` times in alternating order, and prints the median CPU time of this process
and wall time per statement. The pool is used as ``PostgresStorage`` used it before the
pipe: ``async with pool.connection() as conn: await conn.execute(...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

SQL = "SELECT k, v FROM bench_statement_pipe WHERE k = %s"


async def _timed(call: Callable[[], Awaitable[object]], count: int, at_once: int
                 ) -> tuple[float, float]:
    """CPU and wall µs per call of ``count`` calls, ``at_once`` at a time."""
    gate = asyncio.Semaphore(at_once)

    async def one() -> None:
        async with gate:
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return (1e6 * (time.process_time() - cpu) / count,
            1e6 * (time.perf_counter() - wall) / count)


async def main(url: str, count: int, rounds: int) -> None:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    from threadloom.server.storage._statement_pipe import StatementPipe

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_statement_pipe")
        await conn.execute("CREATE TABLE bench_statement_pipe (k text PRIMARY KEY, v text)")
        await conn.execute("INSERT INTO bench_statement_pipe VALUES ('a', 'b')")
    pool = AsyncConnectionPool(url, min_size=8, max_size=20, open=False,
                               kwargs={"autocommit": True})
    await pool.open(wait=True)
    pipe = StatementPipe(url)

    async def through_pool() -> object:
        async with pool.connection() as conn:
            cur = await conn.execute(SQL, ("a",))
            return await cur.fetchall()

    async def through_pipe() -> object:
        return await pipe.rows(SQL, ("a",))

    ways = {"psycopg pool": through_pool, "statement pipe": through_pipe}
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for way in ways.values():  # warm up: connections open, statements prepared
            await _timed(way, 200, 16)
        for round_ in range(rounds):
            order = list(ways.items())
            for name, way in order if round_ % 2 == 0 else order[::-1]:
                for at_once in (1, 16):
                    figures.setdefault((name, at_once), []).append(
                        await _timed(way, count, at_once))
    finally:
        await pipe.close()
        await pool.close()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("DROP TABLE IF EXISTS bench_statement_pipe")
    print("| way | at once | CPU µs / statement | wall µs / statement |")
    print("|---|---:|---:|---:|")
    for (name, at_once), values in figures.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        print(f"| {name} | {at_once} | {cpu:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get(
        "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    asyncio.run(main(args.postgres, args.statements, args.rounds))
