"""LangGraph's private module paths, as thin compatibility shims.

Code and tests written for LangGraph import a few names from ``langgraph._internal.*``
(served by this package under ``install_as_langgraph()``). Each module here only
re-exports or renames what threadloom already has in its own modules; none holds logic
of its own. Importing them has no side effects.
"""
