"""Compatibility path ``langgraph._internal._timeout``: ``coerce_timeout_policy`` is
:meth:`threadloom.types.TimeoutPolicy.coerce`."""

from threadloom.types import TimeoutPolicy

coerce_timeout_policy = TimeoutPolicy.coerce

__all__ = ["coerce_timeout_policy"]
