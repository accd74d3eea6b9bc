"""Time for approvals: one clock, owned by the deployment, and stable request times.

Deadlines must be testable without sleeping, must not move when a node re-runs on
resume, and must not be settable by whoever sends a request. So:

* "now" is the clock of the graph's ``ApprovalHooks(clock=...)`` (a function returning
  a datetime; default the system clock). The same clock stamps when a request was asked,
  when an answer arrived and whether a deadline passed. A run's config cannot set it:
  ``config["configurable"]["hitl_now"]`` is refused (``ClockOverrideError``);
* the time a request was asked is fixed when it is first asked: a re-run of the node
  reads it back from the pending request (with the system clock, from the checkpoint id
  it was asked on: checkpoint ids are time-ordered UUIDs).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["NOW_KEY", "checkpoint_time", "from_iso", "read_clock", "to_iso", "utcnow"]

NOW_KEY = "hitl_now"
"""The config key (under ``configurable``) that earlier versions read as the clock; a run
that sets it is refused, since the clock belongs to the deployment."""

_UUID_EPOCH = 0x01B21DD213814000  # 100 ns intervals from 1582-10-15 to 1970-01-01


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def to_iso(value: datetime) -> str:
    return aware(value).astimezone(UTC).isoformat()


def from_iso(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return aware(value)
    return aware(datetime.fromisoformat(value))


def read_clock(clock: Callable[[], Any]) -> datetime:
    """``clock()`` as an aware datetime (ISO strings accepted), or a typed error."""
    value = clock()
    if isinstance(value, str):
        return from_iso(value)
    if not isinstance(value, datetime):
        raise TypeError(
            f"The approval clock must return a datetime (or an ISO string); got "
            f"{type(value).__name__}."
        )
    return aware(value)


def checkpoint_time(checkpoint_id: str | None) -> datetime | None:
    """When the checkpoint with this id was created, read from the id itself.

    Works for the time-ordered ids threadloom mints (UUID version 6 layout); returns
    None for ids of another shape.
    """
    if not checkpoint_id:
        return None
    parts = checkpoint_id.split("-")
    if len(parts) != 5 or len(parts[2]) != 4 or parts[2][0] != "6":
        return None
    try:
        high = int(parts[0] + parts[1], 16)
        low = int(parts[2][1:], 16)
    except ValueError:
        return None
    ticks = (high << 12) | low
    seconds = (ticks - _UUID_EPOCH) / 10_000_000
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC)


Clock = Callable[[], datetime]
