"""Compatibility path ``langgraph._internal._queue``: the async run's wake-up queue
(:class:`threadloom.engine.drivers.WakeQueue`)."""

from threadloom.engine.drivers import WakeQueue as AsyncQueue

__all__ = ["AsyncQueue"]
