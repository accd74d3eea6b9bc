"""Compatibility path ``langgraph.pregel._runner``.

``FuturesDict`` and ``_should_stop_others`` are :mod:`threadloom.engine.futures`'s.
threadloom runs a superstep's tasks with the functions of :mod:`threadloom.engine.drivers`
and keeps no runner object: ``PregelRunner`` names that role so code which imports it (or
checks that no runner outlives a run) finds a class, of which no instance is ever made.
"""

from __future__ import annotations

from threadloom.engine.futures import FuturesDict
from threadloom.engine.futures import should_stop_others as _should_stop_others

__all__ = ["FuturesDict", "PregelRunner", "_should_stop_others"]


class PregelRunner:
    """Placeholder for LangGraph's task runner; threadloom's drivers are plain functions."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "threadloom has no PregelRunner object: tasks are run by threadloom.engine.drivers."
        )
