"""Build graphs: ``StateGraph``, ``START``, ``END`` and the messages state helpers."""

from threadloom.constants import END, START
from threadloom.graph.message import MessagesState, add_messages
from threadloom.graph.state import StateGraph

__all__ = ["END", "START", "MessagesState", "StateGraph", "add_messages"]
