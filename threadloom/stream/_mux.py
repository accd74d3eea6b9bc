"""Compatibility path ``langgraph.stream._mux``: see ``threadloom.stream.mux``."""

from threadloom.stream.mux import Factory as TransformerFactory
from threadloom.stream.mux import StreamMux

__all__ = ["StreamMux", "TransformerFactory"]
