"""Compatibility path ``langgraph.pregel._task_status``: per-task status read from a
checkpoint's pending writes (:mod:`threadloom.engine.task_status`)."""

from threadloom.engine.task_status import TaskStatus
from threadloom.engine.task_status import task_statuses as read_task_statuses

__all__ = ["TaskStatus", "read_task_statuses"]
