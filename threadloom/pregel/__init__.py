"""``threadloom.pregel``: graphs built from channels and nodes (LangGraph's low-level API).

``Pregel`` and ``NodeBuilder`` build a graph directly (see :mod:`threadloom.pregel.main`);
the private modules here (``_checkpoint``, ``_algo``) are thin re-exports of threadloom's
own code at the paths published code imports them from.
"""

from threadloom.pregel.main import NodeBuilder, Pregel

__all__ = ["NodeBuilder", "Pregel"]
