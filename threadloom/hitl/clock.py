"""Time for approvals: one notion of "now", injectable, and stable request times.

Deadlines must be testable without sleeping and must not move when a node re-runs on
resume. So:

* "now" is read from ``config["configurable"]["hitl_now"]`` (a datetime, or a function
  returning one) when given, else the system clock - tests and ``sweep(now=...)`` set it;
* the time a request was asked is read from the checkpoint id it was asked on
  (checkpoint ids are time-ordered UUIDs), so every re-run computes the same deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["NOW_KEY", "checkpoint_time", "from_iso", "now_from_config", "to_iso", "utcnow"]

NOW_KEY = "hitl_now"
"""Config key (under ``configurable``) that overrides the clock for one run."""

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


def now_from_config(config: Mapping[str, Any] | None) -> datetime:
    """The run's "now": ``configurable["hitl_now"]`` if set, else the system clock."""
    conf = (config or {}).get("configurable") or {}
    value = conf.get(NOW_KEY)
    if value is None:
        return utcnow()
    if callable(value):
        value = value()
    if isinstance(value, str):
        return from_iso(value)
    if not isinstance(value, datetime):
        raise TypeError(
            f"config['configurable'][{NOW_KEY!r}] must be a datetime, an ISO string or a "
            f"function returning a datetime; got {type(value).__name__}."
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
