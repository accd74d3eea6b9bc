"""Run an unchanged LangGraph program on threadloom.

    python -m threadloom.as_langgraph my_agent.py [args...]
    python -m threadloom.as_langgraph -m my_package.main [args...]

Every ``import langgraph...`` in the program, and in the libraries it uses,
is served by threadloom (see :func:`threadloom.install_as_langgraph`).
Importing this module does nothing; only running it does.
"""

from __future__ import annotations

import sys

from threadloom._compat.alias import run_as_langgraph

if __name__ == "__main__":
    run_as_langgraph(sys.argv[1:])
