"""``threadloom.pregel``: LangGraph's ``langgraph.pregel`` import path.

Only the private modules that published code imports live here, as thin re-exports of
threadloom's own code (the runtime itself is ``threadloom.engine``).
"""
