"""Thread search as threads grow: ``threads.search`` / ``threads.count`` by metadata over
many threads, through HTTP with the official client.

    .venv/bin/python bench/thread_search.py [--threads 20000] [--repeat 5]
        [--postgres postgresql://postgres@127.0.0.1/test] [--no-postgres]
        [--reference-venv .venv-reference-server]

For each setup - ``threadloom serve`` on SQLite; ``threadloom serve`` + 1 ``worker`` on a
new PostgreSQL database (dropped afterwards; analyzed once filled, see ``drive``); with
``--reference-venv``, the reference server (``langgraph dev``, in-memory) - the client
creates ``--threads`` threads (50 requests at a time), each with metadata
``{"owner": "user-<i mod threads/6>", "team": <one of 3>, "prefs": {"lang": "l<i mod
1000>"}}`` - an auth handler's owner filter, a common value, a nested one - then times
each search (the median of ``--repeat``, in ms):

* ``owner``: ``threads.search(metadata={"owner": ...}, limit=10)`` - 6 threads match;
* ``nested``: ``metadata={"prefs": {"lang": ...}}`` - one thread in 1,000;
* ``team``: ``metadata={"team": ...}``, a page of 10 of a third of all threads;
* ``count``: ``threads.count(metadata={"owner": ...})``;
* ``all``: a page of 10, no filter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import (  # noqa: E402  (the repository on the path first)
    SETUP_LABELS,
    add_setup_args,
    setup_kinds,
    started,
)

SEARCHES = ("owner", "nested", "team", "count", "all")
TEAMS = ("red", "green", "blue")


async def drive(url: str, threads: int, repeat: int, database: str | None = None
                ) -> tuple[float, dict[str, float]]:
    """Fill the server with ``threads`` threads; seconds that took, and the median ms of
    each search. ``database``: the PostgreSQL database the server stores in, analyzed
    once filled - as autovacuum does within a minute of a table's growth (the bench
    fills it faster): the planner then knows how rare a filter's value is."""
    from langgraph_sdk import get_client

    client = get_client(url=url, api_key=None, timeout=600)
    owners = max(1, threads // 6)
    start = time.perf_counter()
    for first in range(0, threads, 50):
        await asyncio.gather(*(client.threads.create(metadata={
            "owner": f"user-{i % owners}", "team": TEAMS[i % 3],
            "prefs": {"lang": f"l{i % 1000}"},
        }) for i in range(first, min(threads, first + 50))))
    filled = time.perf_counter() - start
    if database is not None:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("ANALYZE")
    calls: dict[str, Any] = {
        "owner": lambda: client.threads.search(metadata={"owner": "user-7"}, limit=10),
        "nested": lambda: client.threads.search(metadata={"prefs": {"lang": "l7"}},
                                                limit=10),
        "team": lambda: client.threads.search(metadata={"team": "green"}, limit=10),
        "count": lambda: client.threads.count(metadata={"owner": "user-7"}),
        "all": lambda: client.threads.search(limit=10),
    }
    took: dict[str, float] = {}
    for name in SEARCHES:
        times = []
        for _ in range(repeat):
            begin = time.perf_counter()
            found = await calls[name]()
            times.append(time.perf_counter() - begin)
        want = {"owner": min(6, threads), "count": min(6, threads)}.get(name)
        got = found if name == "count" else len(found)
        if want is not None and got != want:
            raise SystemExit(f"{name}: {got} threads found, {want} expected")
        took[name] = 1000 * statistics.median(times)
    await client.aclose()
    return filled, took


def _setup(kind: str, args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    with started(kind, args) as (url, _, database):
        return asyncio.run(drive(url, args.threads, args.repeat, database))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    add_setup_args(parser)
    args = parser.parse_args()
    kinds = setup_kinds(args)
    labels = SETUP_LABELS
    print(f"{args.threads} threads, each search the median of {args.repeat}; "
          f"cpu count {os.cpu_count()}")
    rows = []
    for kind in kinds:
        filled, took = _setup(kind, args)
        print(f"{labels[kind]}: filled in {filled:.1f} s; "
              + ", ".join(f"{s} {took[s]:.1f} ms" for s in SEARCHES), flush=True)
        rows.append((labels[kind], filled, took))
    print()
    print("| setup | threads/s created | " + " | ".join(f"{s} ms" for s in SEARCHES) + " |")
    print("|---|---:|" + "---:|" * len(SEARCHES))
    for label, filled, took in rows:
        print(f"| {label} | {args.threads / filled:.0f} | "
              + " | ".join(f"{took[s]:.1f}" for s in SEARCHES) + " |")


if __name__ == "__main__":
    main()
