"""The context variable that tells library code which task it is running in.

It lives at the bottom of the layer stack so that ``threadloom.types.interrupt`` and
``threadloom.config.get_config`` can find the running task without importing the engine.
The engine sets it around every node call; contextvars carry it into async code and
(because the engine copies the context) into thread-pool workers.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

current_task: ContextVar[Any] = ContextVar("threadloom_current_task", default=None)

# The clock of the running timed node attempt (``threadloom.engine.timeouts.TimedAttempt``),
# so that ``Runtime.heartbeat()`` can reach it; None outside a timed attempt.
current_attempt: ContextVar[Any] = ContextVar("threadloom_timed_attempt", default=None)
