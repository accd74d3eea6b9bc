"""Compatibility path: ``langgraph.prebuilt._tool_call_stream`` (see ``tool_call_stream``)."""

from threadloom.prebuilt.tool_call_stream import ToolCallStream, ToolCallTransformer

__all__ = ["ToolCallStream", "ToolCallTransformer"]
