"""Compatibility path ``langgraph.pregel._messages``: see ``threadloom.engine.message_stream``."""

from threadloom.engine.message_stream import StreamMessagesHandler, StreamMessagesHandlerV2

__all__ = ["StreamMessagesHandler", "StreamMessagesHandlerV2"]
