"""Compatibility path ``langgraph.pregel._algo``: planning a superstep.

``prepare_next_tasks`` plans with the engine's own planner (``Loop.plan``);
``task_path_str`` is the engine's task-path format.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from threadloom.engine.loop import Loop, task_path_str
from threadloom.engine.program import Program
from threadloom.engine.scope import Scope
from threadloom.engine.task import ResumeBox

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
    loop = Loop(program, None, dict(config), scope, checkpointer=None, interrupt_before=(),
                interrupt_after=(), durability="exit", recursion_limit=max(stop - step, 1),
                input_writes=None, output=lambda c: None, graph_name="LangGraph", out=deque())
    loop.checkpoint = checkpoint
    loop.channels = dict(channels)
    loop.stop = stop
    return {t.id: t for t in loop.plan(step, for_execution=for_execution)}
