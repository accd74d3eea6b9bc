"""What a checkpoint's pending writes say about each task of the open superstep.

``task_statuses(writes)`` groups the ``(task_id, channel, value)`` pending writes by
task (see :class:`threadloom.engine.thread.PendingWrites`) and tells, per task, whether it
finished, what it wrote, how it failed and which of its interrupts still wait for an
answer: a task that finished after being resumed keeps its old interrupt recorded, but
that interrupt is no longer pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadloom.engine.thread import PendingWrites
from threadloom.types import Interrupt

__all__ = ["TaskStatus", "task_statuses"]


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """One task's state as its recorded writes show it."""

    finished: bool = False
    output: tuple[tuple[str, Any], ...] = ()
    interrupts: tuple[Interrupt, ...] = ()
    error: Any = None

    @property
    def pending_interrupts(self) -> tuple[Interrupt, ...]:
        """The interrupts still waiting for an answer (none once the task finished)."""
        return () if self.finished else self.interrupts


def task_statuses(writes: Any) -> dict[str, TaskStatus]:
    """``{task_id: TaskStatus}`` for every task named by ``writes`` (not the null task)."""
    pending = writes if isinstance(writes, PendingWrites) else PendingWrites(list(writes))
    ids = [*pending.succeeded, *pending.interrupts, *pending.errors]
    return {
        tid: TaskStatus(
            finished=tid in pending.succeeded,
            output=tuple(pending.succeeded.get(tid, ())),
            interrupts=pending.interrupts.get(tid, ()),
            error=pending.errors.get(tid),
        )
        for tid in dict.fromkeys(ids)
    }
