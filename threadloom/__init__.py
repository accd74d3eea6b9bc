"""threadloom: stateful agent workflows with people in the loop.

Importing this package changes nothing; the public API lives in its
submodules at LangGraph's paths (``threadloom.graph``, ``threadloom.types``, ...).
"""

from __future__ import annotations

__all__ = ["install_as_langgraph"]


def install_as_langgraph() -> None:
    """Serve every ``import langgraph...`` in this process from threadloom.

    Call it once at program start, before anything imports ``langgraph``, in
    the spirit of ``pymysql.install_as_MySQLdb()``: libraries built on
    LangGraph (LangChain agents, supervisor, swarm, ...) then run on
    threadloom. ``langgraph.X`` is the module ``threadloom.X`` itself.

    Raises:
        threadloom._compat.alias.LangGraphConflictError: the real LangGraph
            was imported already; mixing the two is refused.
    """
    from threadloom._compat import alias

    alias.install()
