"""Names LangGraph code imports from ``langgraph.checkpoint.serde.types``.

- The reserved write channels: a task's error, interrupt, resume value and
  scheduled record are pending writes on these channels (see ``base.WRITES_IDX_MAP``).
- ``_DeltaSnapshot`` (LangGraph's name; private but imported by tests and tools) wraps
  the full value of a ``DeltaChannel`` at the checkpoints where the engine stores it
  whole. Checkpoints between two snapshots store nothing for such a channel: its value
  is rebuilt from the nearest snapshot (or plain stored value) and the writes recorded
  since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadloom.constants import ERROR, INTERRUPT, RESUME, TASKS

SCHEDULED = "__scheduled__"

__all__ = ["ERROR", "INTERRUPT", "RESUME", "SCHEDULED", "TASKS", "_DeltaSnapshot"]


@dataclass(frozen=True, slots=True)
class _DeltaSnapshot:
    """The whole value of a delta channel, stored at a snapshot checkpoint."""

    value: Any
