"""How long the embedded server's run streams are remembered after they close."""

from __future__ import annotations

import asyncio

from threadloom.server.storage.streams import LocalStreams


async def _replay(streams: LocalStreams, run_id: str) -> list[str] | None:
    """The kept events a late reconnect replays; None when the stream was forgotten."""
    asked: list[bool] = []

    async def finished() -> bool:
        asked.append(True)
        return True

    events = [e.event async for e in streams.subscribe(run_id, after="0",
                                                        is_finished=finished)]
    return None if asked else events


def _run(streams: LocalStreams, run_id: str) -> None:
    streams.open(run_id)
    streams.publish(run_id, "metadata", b"{}", keep=True)
    streams.publish(run_id, "values", b"{}", keep=True)
    streams.close(run_id)


async def test_only_the_latest_closed_streams_are_kept() -> None:
    streams = LocalStreams(max_closed=2)
    streams.open("live")  # an open stream is never forgotten
    for run_id in ("a", "b", "c"):
        _run(streams, run_id)
    assert await _replay(streams, "a") is None
    assert await _replay(streams, "b") == ["metadata", "values"]
    assert await _replay(streams, "c") == ["metadata", "values"]
    streams.publish("live", "metadata", b"{}", keep=True)
    _run(streams, "d")
    assert await _replay(streams, "b") is None
    assert await _replay(streams, "d") == ["metadata", "values"]
    streams.close("live")
    assert await _replay(streams, "live") == ["metadata"]


async def test_closed_streams_are_forgotten_after_retain_seconds() -> None:
    streams = LocalStreams(retain_seconds=0.0)
    _run(streams, "a")
    assert await _replay(streams, "a") == ["metadata", "values"]  # until the next close
    await asyncio.sleep(0.01)
    _run(streams, "b")
    assert await _replay(streams, "a") is None
