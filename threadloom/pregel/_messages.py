"""Compatibility path ``langgraph.pregel._messages``: see ``threadloom.engine.messages``."""

from threadloom.engine.messages import StreamMessagesHandler, StreamMessagesHandlerV2

__all__ = ["StreamMessagesHandler", "StreamMessagesHandlerV2"]
