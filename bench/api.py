"""One namespace per library, so every benchmark program is written once.

``load_api("threadloom")`` and ``load_api("langgraph")`` return the same set of names from
each library's public modules; the programs in ``bench.programs`` only use these.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any

LIBRARIES = ("threadloom", "langgraph")


@dataclass(frozen=True)
class Api:
    """The public names a benchmark program may use, taken from one library."""

    name: str
    version: str
    StateGraph: Any
    START: str
    END: str
    MemorySaver: Any
    interrupt: Any
    Command: Any
    Send: Any
    add_messages: Any


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # run from the source tree, not installed
        module = importlib.import_module(name)
        return str(getattr(module, "__version__", "source tree"))


def load_api(name: str) -> Api:
    """Import ``name``'s graph API (``threadloom`` or ``langgraph``)."""
    if name not in LIBRARIES:
        raise ValueError(f"unknown library {name!r}; expected one of {LIBRARIES}")
    graph = importlib.import_module(f"{name}.graph")
    types = importlib.import_module(f"{name}.types")
    memory = importlib.import_module(f"{name}.checkpoint.memory")
    message = importlib.import_module(f"{name}.graph.message")
    return Api(
        name=name,
        version=_version(name),
        StateGraph=graph.StateGraph,
        START=graph.START,
        END=graph.END,
        MemorySaver=memory.InMemorySaver,
        interrupt=types.interrupt,
        Command=types.Command,
        Send=types.Send,
        add_messages=message.add_messages,
    )
