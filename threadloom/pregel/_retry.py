"""Compatibility path ``langgraph.pregel._retry``: names over ``threadloom.engine.retry``,
``threadloom.engine.timeouts`` and the drivers' ``should_retry_on``."""

from __future__ import annotations

from threadloom.engine.drivers import should_retry_on as _should_retry_on
from threadloom.engine.retry import arun_with_retry, run_with_retry
from threadloom.engine.retry import ensure_execution_info as _ensure_execution_info
from threadloom.engine.retry import parent_namespace as _checkpoint_ns_for_parent_command
from threadloom.engine.timeouts import TimedAttempt as _TimedAttemptScope

__all__ = [
    "_TimedAttemptScope",
    "_checkpoint_ns_for_parent_command",
    "_ensure_execution_info",
    "_should_retry_on",
    "arun_with_retry",
    "run_with_retry",
]
