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
