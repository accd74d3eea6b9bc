"""Compatibility surfaces for code written against LangGraph.

`alias` serves ``import langgraph...`` from threadloom's own modules (see
:func:`threadloom.install_as_langgraph`). Nothing here runs at import time.
"""
