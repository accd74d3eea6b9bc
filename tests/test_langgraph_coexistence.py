"""Importing threadloom without ``install_as_langgraph()`` changes nothing for a process
that also uses the real LangGraph.

Every case runs in a fresh interpreter, importing threadloom (all of its modules that
import here) before or after ``langgraph``, and checks that ``langgraph`` is still the
package on the path: the import system is untouched (``sys.meta_path``), no
``langgraph.*`` module is one of threadloom's, the two libraries' classes stay apart and
both run graphs side by side. ``install_as_langgraph()`` then refuses to mix the two.

Where LangGraph is not installed (``.venv``, CI), a stand-in ``langgraph`` package on the
path plays its part for the import checks; the cases with the real LangGraph skip there
and run in ``.venv-reference`` (``compat/run.py --reference`` runs this file and records
the outcome in ``compat/reference.json``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _real_langgraph_installed() -> bool:
    spec = importlib.util.find_spec("langgraph")
    if spec is None or not spec.submodule_search_locations:
        return False
    return importlib.util.find_spec("langgraph.graph") is not None


needs_real_langgraph = pytest.mark.skipif(
    not _real_langgraph_installed(),
    reason="the real LangGraph is not installed in this environment; "
    "`compat/run.py --reference` runs these cases in .venv-reference",
)

# Imports threadloom and every module of it that imports here (some need optional extras).
IMPORT_THREADLOOM = """
import importlib, pkgutil, threadloom
skipped = []
for info in pkgutil.walk_packages(threadloom.__path__, "threadloom."):
    if info.name.endswith(".__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except ImportError:  # an optional extra (redis, cryptography, ...) is not installed
        skipped.append(info.name)
"""

CHECK_UNTOUCHED = """
import sys
from pathlib import Path
import langgraph, langgraph.graph
import threadloom, threadloom.graph
from threadloom._compat import alias
tl_root = Path(threadloom.__file__).resolve().parent
assert not alias.is_installed()
assert [type(f) for f in sys.meta_path] == finders_before, sys.meta_path
for name, module in list(sys.modules.items()):
    if name == "langgraph" or name.startswith("langgraph."):
        assert module.__name__ == name, (name, module.__name__)
        for where in [getattr(module, "__file__", None), *getattr(module, "__path__", ())]:
            if where:
                assert tl_root not in Path(where).resolve().parents, (name, where)
assert langgraph.graph.StateGraph is not threadloom.graph.StateGraph
"""

CHECK_REFUSED = """
from threadloom._compat.alias import LangGraphConflictError
try:
    threadloom.install_as_langgraph()
except LangGraphConflictError:
    print("refused")
else:
    raise AssertionError("install_as_langgraph() mixed the real LangGraph with threadloom")
"""

RUN_BOTH = """
from typing import TypedDict

class S(TypedDict):
    n: int

def run(graph_mod, types_mod, memory_mod):
    def ask(state):
        return {"n": state["n"] + types_mod.interrupt("how many?")}
    g = graph_mod.StateGraph(S)
    g.add_node("ask", ask)
    g.add_edge(graph_mod.START, "ask")
    g.add_edge("ask", graph_mod.END)
    app = g.compile(checkpointer=memory_mod.InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    app.invoke({"n": 1}, cfg)
    return type(app).__module__.split(".")[0], app.invoke(types_mod.Command(resume=2), cfg)["n"]

import langgraph.checkpoint.memory, langgraph.types
import threadloom.checkpoint.memory, threadloom.types
print(*run(langgraph.graph, langgraph.types, langgraph.checkpoint.memory))
print(*run(threadloom.graph, threadloom.types, threadloom.checkpoint.memory))
"""


def _script(*, langgraph_first: bool, run_graphs: bool) -> str:
    head = "import sys\nfinders_before = [type(f) for f in sys.meta_path]\n"
    body = ("import langgraph.graph\n" + IMPORT_THREADLOOM) if langgraph_first else (
        IMPORT_THREADLOOM + "import langgraph.graph\n")
    tail = CHECK_UNTOUCHED + (RUN_BOTH if run_graphs else "") + CHECK_REFUSED
    return head + textwrap.dedent(body) + textwrap.dedent(tail)


def _run(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    paths = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def stand_in_langgraph(tmp_path: Path) -> Path:
    """A third-party package named ``langgraph`` (not threadloom), first on the path."""
    pkg = tmp_path / "langgraph"
    (pkg / "graph").mkdir(parents=True)
    (pkg / "__init__.py").write_text('WHO = "stand-in"\n')
    (pkg / "graph" / "__init__.py").write_text("class StateGraph:\n    pass\n")
    return tmp_path


@pytest.mark.parametrize("langgraph_first", [False, True], ids=["threadloom-first",
                                                                 "langgraph-first"])
def test_a_stand_in_langgraph_stays_itself(stand_in_langgraph: Path,
                                           langgraph_first: bool) -> None:
    code = _script(langgraph_first=langgraph_first, run_graphs=False)
    code += 'assert langgraph.WHO == "stand-in"\n'
    proc = _run(code, stand_in_langgraph)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["refused"]


@needs_real_langgraph
@pytest.mark.parametrize("langgraph_first", [False, True], ids=["threadloom-first",
                                                                 "langgraph-first"])
def test_the_real_langgraph_stays_itself(langgraph_first: bool) -> None:
    proc = _run(_script(langgraph_first=langgraph_first, run_graphs=True))
    assert proc.returncode == 0, proc.stderr
    # each library ran its own graph, paused and resumed, on its own saver
    assert proc.stdout.splitlines() == ["langgraph 3", "threadloom 3", "refused"]
