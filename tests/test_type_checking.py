"""The type checker's configuration keeps its promise: the engine, the channels, the
checkpoint package (savers, serializer, stored values) and the graph API
(``threadloom.graph``: ``StateGraph``, ``CompiledStateGraph``) are checked with mypy's
strict flags, with no error code switched off.

``make test`` runs mypy with ``pyproject.toml``'s configuration; this test reads that
configuration, so a module of those packages cannot quietly leave the strict list or
gain a ``disable_error_code`` entry.
"""

from __future__ import annotations

import pathlib
import tomllib
from typing import Any

import pytest
from test_layers import _modules

ROOT = pathlib.Path(__file__).resolve().parent.parent
STRICT_PACKAGES = (
    "threadloom.engine", "threadloom.channels", "threadloom.checkpoint", "threadloom.graph"
)


def _overrides() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    overrides: list[dict[str, Any]] = config["tool"]["mypy"]["overrides"]
    return overrides


def _names(pattern: str | list[str]) -> list[str]:
    return [pattern] if isinstance(pattern, str) else pattern


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return module == base or module.startswith(base + ".")
    return module == pattern


def test_the_core_packages_are_strict_with_no_error_code_switched_off() -> None:
    overrides = _overrides()
    strict = [p for o in overrides if o.get("disallow_untyped_defs") for p in _names(o["module"])]
    lenient = [p for o in overrides if o.get("disable_error_code") for p in _names(o["module"])]
    core = sorted(m for m in _modules() if m.startswith(STRICT_PACKAGES))
    assert len(core) > 60, core  # the test reads the modules it is about
    not_strict = [m for m in core if not any(_matches(m, p) for p in strict)]
    assert not not_strict, f"not under mypy's strict flags: {not_strict}"
    switched_off = [m for m in core if any(_matches(m, p) for p in lenient)]
    assert not switched_off, f"error codes switched off for: {switched_off}"


USER_PROGRAM = '''
from typing import TypedDict

from langchain_core.runnables import RunnableConfig

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph


class State(TypedDict):
    count: int


def step(state: State) -> dict[str, int]:
    return {"count": state["count"] + 1}


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_edge("step", END)
graph = builder.compile(checkpointer=MemorySaver())
config: RunnableConfig = {"configurable": {"thread_id": "1"}}
graph.invoke({"count": 1}, config)
for chunk in graph.stream({"count": 1}, config, stream_mode="values"):
    print(chunk)
graph.update_state(config, {"count": 3})
print(graph.get_state(config).values)
bound = graph.with_config(config)
'''


def test_a_langgraph_style_program_passes_mypy_strict(tmp_path: pathlib.Path) -> None:
    """What users write (``StateGraph(State)``, a ``RunnableConfig`` handed to ``invoke``,
    ``stream``, ``get_state``) type-checks under ``mypy --strict`` without annotations of
    their own."""
    mypy_api = pytest.importorskip("mypy.api")
    program = tmp_path / "user_program.py"
    program.write_text(USER_PROGRAM)
    out, err, status = mypy_api.run(
        ["--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(ROOT / ".mypy_cache"), str(program)]
    )
    assert status == 0, out + err
