"""Compatibility path ``langgraph.stream._types``: see ``threadloom.stream.base``."""

from threadloom.stream.base import ProtocolEvent, ProtocolParams, StreamTransformer

__all__ = ["ProtocolEvent", "ProtocolParams", "StreamTransformer"]
