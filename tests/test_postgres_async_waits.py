"""The asyncio Postgres saver's waits on its run session's socket: the reader callback
stays registered from one wait to the next instead of being added and removed for each
(``threadloom.checkpoint.postgres._runsession.SocketReader``), and nothing stays
registered once the session is closed - a closed socket's number must never be left in
the event loop's selector for the next socket that gets it.

Against a real server (``THREADLOOM_TEST_POSTGRES_URL``); under CI=true they must not skip.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from helpers import abc, cfg, require_postgres

from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver


def _count_readers(loop: asyncio.AbstractEventLoop) -> Counter[int]:
    """Each ``add_reader`` call on ``loop``, by file descriptor."""
    added: Counter[int] = Counter()
    add_reader = loop.add_reader

    def counting(fd: Any, callback: Any, *args: Any) -> None:
        added[fd if isinstance(fd, int) else fd.fileno()] += 1
        add_reader(fd, callback, *args)

    loop.add_reader = counting  # type: ignore[method-assign]
    return added


async def test_waits_on_the_run_session_keep_one_reader_registered(
    pg_schemas: Callable[[], str],
) -> None:
    require_postgres()
    loop = asyncio.get_running_loop()
    waits: list[Any] = []  # one event per statement or pipeline sent and read
    async with AsyncPostgresSaver.from_conn_string(pg_schemas(), trace=waits.append) as saver:
        await saver.setup()
        graph = abc(checkpointer=saver, is_async=True)
        waits.clear()
        added = _count_readers(loop)
        for i in range(6):
            out = await graph.ainvoke({"log": []}, cfg(f"t{i}"))
            assert out == {"log": ["a", "b", "c"]}
        session_fd, registrations = added.most_common(1)[0] if added else (None, 0)
        run_waits = [e for e in waits if e.connection == "run"]
        # each run locks, writes its steps and unlocks through the session: many waits,
        # a few registrations (again only after a reply arrived with nobody waiting;
        # registering for every wait made 39 for 66 waits here)
        assert len(run_waits) >= 10
        assert registrations <= 6, (registrations, len(run_waits))  # at most one a run
        await saver.aclose_run_locks()
    # closed: the socket's number is no longer watched (remove_reader says whether it was)
    assert session_fd is not None
    assert loop.remove_reader(session_fd) is False
