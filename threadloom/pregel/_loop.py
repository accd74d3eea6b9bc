"""Compatibility path ``langgraph.pregel._loop``.

threadloom has one run loop for both drivers, :class:`threadloom.engine.loop.Loop` (the
sync and async drivers in :mod:`threadloom.engine.drivers` only differ in how they await
its I/O). LangGraph's three names all refer to it, so ``isinstance`` checks and patches of
``PregelLoop.put_writes`` reach the engine's loop.
"""

from __future__ import annotations

from threadloom.engine.loop import Loop

PregelLoop = Loop
SyncPregelLoop = Loop
AsyncPregelLoop = Loop

__all__ = ["AsyncPregelLoop", "PregelLoop", "SyncPregelLoop"]
