"""Compatibility path ``langgraph.stream._convert``: see ``threadloom.stream.events``."""

from threadloom.stream.events import to_protocol_event as convert_to_protocol_event

__all__ = ["convert_to_protocol_event"]
