"""Compatibility path ``langgraph._internal._timeout``: timeout policy coercion.

The policy itself is ``threadloom.types.TimeoutPolicy``.
"""

from __future__ import annotations

from typing import Any

from threadloom.types import TimeoutPolicy

__all__ = ["TimeoutPolicy", "coerce_timeout_policy"]


def coerce_timeout_policy(value: Any) -> TimeoutPolicy | None:
    """None, a ``TimeoutPolicy`` (returned as is), or seconds/timedelta as a run timeout."""
    return TimeoutPolicy.coerce(value)
