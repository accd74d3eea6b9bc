"""Stored-value markers the engine writes into checkpoints.

``_DeltaSnapshot`` (LangGraph's name; private but imported by tests and tools) wraps the
full value of a ``DeltaChannel`` at the checkpoints where the engine stores it whole.
Checkpoints between two snapshots store nothing for such a channel: its value is rebuilt
from the nearest snapshot (or plain stored value) and the writes recorded since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["_DeltaSnapshot"]


@dataclass(frozen=True, slots=True)
class _DeltaSnapshot:
    """The whole value of a delta channel, stored at a snapshot checkpoint."""

    value: Any
