"""The private lifecycle names LangChain's ``SubagentTransformer`` relies on.

``langchain.agents._subagent_transformer.SubagentTransformer`` (langchain 1.5)
subclasses ``langgraph.stream.transformers._TasksLifecycleBase`` and, in its
async lane, repeats the base's bookkeeping step by step through private names;
it also marks and reads the subgraph handles it builds. These mixins give
threadloom's own lifecycle base (:class:`threadloom.stream.transformers._TasksLifecycleBase`)
and subgraph handles (:mod:`threadloom.stream.run_stream`) those names, each a
one-line delegation to the step threadloom already has; nothing is
re-implemented here.

=============================== ================================================
name used by the subclass        threadloom's step
=============================== ================================================
``_lc_by_ns``                    ``_agent_names``: agent name per namespace
``_record_identity(ns, data)``   ``_note_agent_name``: a task start's agent name
``_record_pending_tool_calls``   ``_note_task_input``: a started task's input
``_handle_task_start(ns, data)`` ``_discover``: the subgraph start, ``_on_started``
``_pop_terminal_transitions``    ``_ended_by``: the subgraphs a task result ends
``_aon_terminal``                ``_on_terminal`` (threadloom's hooks are sync)
``handle._observe_event``        nothing: a handle reads its own child mux
=============================== ================================================

(``_on_register``, ``_pending_cause``, ``handle._seen_terminal`` and
``StreamMux.is_async`` are threadloom's own names already.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SubgraphHandleSurface", "TasksLifecycleSurface"]

Transition = tuple[tuple[str, ...], str, "str | None"]


class TasksLifecycleSurface:
    """LangGraph's private names for the steps of threadloom's lifecycle base."""

    # provided by threadloom.stream.transformers._TasksLifecycleBase
    _agent_names: dict[tuple[str, ...], str | None]
    _note_agent_name: Any
    _note_task_input: Any
    _discover: Any
    _ended_by: Any
    _on_terminal: Any

    @property
    def _lc_by_ns(self) -> dict[tuple[str, ...], str | None]:
        """The agent name (``lc_agent_name``) each namespace's first task start carried."""
        return self._agent_names

    def _record_identity(self, ns: tuple[str, ...], data: Any) -> None:
        self._note_agent_name(ns, data)

    def _record_pending_tool_calls(self, data: Any) -> None:
        self._note_task_input(data)

    def _handle_task_start(self, ns: tuple[str, ...], data: Any) -> None:
        self._discover(ns, data)

    def _pop_terminal_transitions(self, ns: tuple[str, ...], data: Any) -> Iterable[Transition]:
        ended: Iterable[Transition] = self._ended_by(ns, data)
        return ended

    async def _aon_terminal(self, ns: tuple[str, ...], status: str, error: str | None) -> None:
        self._on_terminal(ns, status, error)


class SubgraphHandleSurface:
    """LangGraph's private names on a subgraph run-stream handle."""

    def _observe_event(self, event: Any) -> None:
        """Nothing to do: a threadloom handle's state comes from its own child mux,
        which sees every event forwarded to it."""
