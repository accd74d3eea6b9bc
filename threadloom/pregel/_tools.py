"""Compatibility path ``langgraph.pregel._tools``: see ``threadloom.engine.tools``."""

from threadloom.engine.tools import StreamToolCallHandler, _tool_call_writer

__all__ = ["StreamToolCallHandler", "_tool_call_writer"]
