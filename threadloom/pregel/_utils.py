"""Compatibility path ``langgraph.pregel._utils``: what a function reaches by name
(:func:`threadloom.engine.subgraphs.function_references`)."""

from threadloom.engine.subgraphs import function_references as get_function_nonlocals

__all__ = ["get_function_nonlocals"]
