"""Compatibility path ``langgraph.pregel._algo``: planning a superstep.

``prepare_next_tasks`` plans with the engine's own planner (``ThreadState.plan``);
``task_path_str`` is the engine's task-path format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threadloom.engine.program import Program
from threadloom.engine.scope import Scope
from threadloom.engine.task import ResumeBox, task_path_str
from threadloom.engine.thread import ThreadState

__all__ = ["prepare_next_tasks", "task_path_str"]


def prepare_next_tasks(
    checkpoint: Any,
    pending_writes: Any,
    processes: Mapping[str, Any],
    channels: Mapping[str, Any],
    managed: Any,
    config: Mapping[str, Any],
    step: int,
    stop: int,
    *,
    for_execution: bool,
    **kwargs: Any,
) -> dict[str, Any]:
    """The tasks of superstep ``step`` of ``processes`` (threadloom ``PregelNode``s) over
    ``channels`` at ``checkpoint``, keyed by task id."""
    if not processes:
        return {}
    program = Program(nodes=dict(processes), channels=dict(channels), output_channels=(),
                      state_keys=frozenset(channels), managed={})
    scope = Scope(modes=frozenset(), sink=None, resume_box=ResumeBox(), store=None,
                  context=None, checkpointer=None, ns="", nested=False)
    state = ThreadState(program, dict(config), scope, checkpointer=None, durability="exit")
    state.checkpoint = checkpoint
    state.channels = dict(channels)
    state.stop = stop
    return {t.id: t for t in state.plan(step, for_execution=for_execution)}
