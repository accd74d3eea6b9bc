"""threadloom.install_as_langgraph(): ``import langgraph.X`` served by ``threadloom.X``.

Each case runs in a fresh interpreter: the alias changes the process's import
system, and the point is what a program sees from its first import on.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(code: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_langgraph_modules_are_threadloom_modules() -> None:
    proc = run(
        """
        import threadloom
        threadloom.install_as_langgraph()
        threadloom.install_as_langgraph()  # idempotent
        from langgraph.graph import StateGraph, START, END
        import langgraph.graph.message as lg_message
        import threadloom.graph.message as tl_message
        import threadloom.graph
        assert lg_message is tl_message
        assert StateGraph is threadloom.graph.StateGraph
        # the shared module keeps its own name and spec
        assert tl_message.__name__ == "threadloom.graph.message"
        assert tl_message.__spec__.name == "threadloom.graph.message"
        # a graph built through the alias runs
        from typing import TypedDict
        class S(TypedDict):
            x: int
        g = StateGraph(S)
        g.add_node("inc", lambda s: {"x": s["x"] + 1})
        g.add_edge(START, "inc")
        g.add_edge("inc", END)
        print(g.compile().invoke({"x": 1})["x"])
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"


def test_importing_threadloom_installs_nothing() -> None:
    proc = run(
        """
        import sys, threadloom, threadloom.graph, threadloom.types
        from threadloom._compat import alias
        assert not alias.is_installed()
        try:
            import langgraph
        except ModuleNotFoundError:
            print("not served")
        else:  # the real one, where `make bench` installed it
            print("not served" if langgraph.__name__ == "langgraph" else "served")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "not served"


def test_a_name_threadloom_lacks_fails_like_any_missing_module() -> None:
    proc = run(
        """
        import threadloom
        threadloom.install_as_langgraph()
        try:
            import langgraph.no_such_module
        except ModuleNotFoundError as e:
            print(e.name)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "langgraph.no_such_module"


def test_refuses_when_the_real_langgraph_is_imported_already() -> None:
    proc = run(
        """
        import sys, types
        sys.modules["langgraph"] = types.ModuleType("langgraph")  # stands for the real one
        import threadloom
        from threadloom._compat.alias import LangGraphConflictError
        try:
            threadloom.install_as_langgraph()
        except LangGraphConflictError as e:
            print("refused:", e)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("refused: the real LangGraph is already imported (langgraph)")
    assert "before anything imports langgraph" in proc.stdout


def test_unchanged_program_runs_with_python_m_threadloom_as_langgraph(tmp_path: Path) -> None:
    program = tmp_path / "agent.py"
    program.write_text(
        textwrap.dedent(
            """
            import sys
            from typing import TypedDict
            from langgraph.checkpoint.memory import MemorySaver
            from langgraph.graph import END, START, StateGraph
            from langgraph.types import Command, interrupt

            class S(TypedDict):
                answer: str

            def ask(state):
                return {"answer": interrupt("name?")}

            g = StateGraph(S)
            g.add_node("ask", ask)
            g.add_edge(START, "ask")
            g.add_edge("ask", END)
            app = g.compile(checkpointer=MemorySaver())
            cfg = {"configurable": {"thread_id": "t"}}
            app.invoke({"answer": ""}, cfg)
            print(app.invoke(Command(resume=sys.argv[1]), cfg)["answer"], type(app).__module__)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "threadloom.as_langgraph", str(program), "ada"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    answer, module = proc.stdout.split()
    assert answer == "ada" and module.startswith("threadloom.")


def test_as_langgraph_without_a_program_prints_usage() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "threadloom.as_langgraph"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "usage: python -m threadloom.as_langgraph" in proc.stderr
