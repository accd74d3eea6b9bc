"""Durability across real processes, on a SQLite file and on PostgreSQL.

Every run here is a separate Python process (``subprocess``) executing a small script
generated into ``tmp_path`` (``PYTHONPATH`` points at the project), so nothing survives
between steps but what the saver stored:

(a) a thread paused by ``interrupt_before`` and then by ``interrupt()`` is resumed, step by
    step, by fresh processes and ends with the right state;
(b) a process is SIGKILLed in the middle of a superstep - one of two parallel nodes has
    finished (its writes saved as pending writes), the other hangs - and a fresh process
    resumes with ``invoke(None, config)``: the run finishes, and the node whose writes
    were saved is not run again (nodes count their runs in a file);
(c) two processes resume the same paused thread at the same moment: exactly one runs, the
    other gets ``CheckpointConflictError`` before running anything, the resumed node's
    side effect happens once, and the thread's history stays one linear chain.

PostgreSQL comes from ``THREADLOOM_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), one fresh schema per test. When it cannot
be reached its cases are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEP_TIMEOUT = 60  # seconds any one child process may take

# The program every child process runs: ``python proc.py <graph> <action> [arg]``. It
# prints one JSON line - the outcome of the action - and exits 0; any exception other
# than a conflict is a crash (traceback, exit code 1).
SCRIPT = r'''
import json
import operator
import os
import sys
import time
from typing import Annotated, Any, TypedDict

from threadloom.errors import CheckpointConflictError
from threadloom.graph import END, START, StateGraph
from threadloom.types import Command, interrupt

WORK = os.environ["TL_WORK"]
BACKEND = os.environ["TL_BACKEND"]
TARGET = os.environ["TL_TARGET"]
THREAD = os.environ["TL_THREAD"]
CONFIG = {"configurable": {"thread_id": THREAD}}


def path(name):
    return os.path.join(WORK, name)


def mark(name):
    """Count a node run: one line per run, on disk before the node goes on."""
    with open(path("runs.txt"), "a") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())


def open_saver():
    if BACKEND == "sqlite":
        from threadloom.checkpoint.sqlite import SqliteSaver

        return SqliteSaver.from_conn_string(TARGET)
    from threadloom.checkpoint.postgres import PostgresSaver

    return PostgresSaver.from_conn_string(TARGET)


# (a) interrupt_before, then interrupt() ----------------------------------------------


class Approval(TypedDict):
    log: Annotated[list, operator.add]
    decision: str


def approval_graph(saver):
    def draft(state):
        mark("draft")
        return {"log": ["draft"]}

    def approve(state):
        mark("approve")
        return {"log": ["approve"]}

    def review(state):
        mark("review")
        answer = interrupt({"question": "send it?", "log": list(state["log"])})
        return {"log": [f"review:{answer}"], "decision": answer}

    def finish(state):
        mark("finish")
        return {"log": ["finish"]}

    builder = StateGraph(Approval)
    for name, fn in [("draft", draft), ("approve", approve), ("review", review),
                     ("finish", finish)]:
        builder.add_node(name, fn)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "approve")
    builder.add_edge("approve", "review")
    builder.add_edge("review", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=saver, interrupt_before=["approve"])


# (b) two parallel nodes, one of them killed mid-superstep ----------------------------


class Parallel(TypedDict):
    results: Annotated[list, operator.add]


def parallel_graph(saver):
    def fast(state):
        mark("fast")
        return {"results": ["fast"]}

    def slow(state):
        mark("slow")
        if not os.path.exists(path("go")):
            open(path("slow-ready"), "w").close()
            time.sleep(600)  # the test kills the process here
        return {"results": ["slow"]}

    def join(state):
        mark("join")
        return {"results": ["join"]}

    builder = StateGraph(Parallel)
    builder.add_node("fast", fast)
    builder.add_node("slow", slow)
    builder.add_node("join", join)
    builder.add_edge(START, "fast")
    builder.add_edge(START, "slow")
    builder.add_edge(["fast", "slow"], "join")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=saver)


# (c) one pause, two resumes at once --------------------------------------------------


class Send(TypedDict):
    log: Annotated[list, operator.add]


def send_graph(saver):
    def prepare(state):
        mark("prepare")
        return {"log": ["prepared"]}

    def send(state):
        mark("send")
        answer = interrupt("send the email?")
        with open(path("effects.txt"), "a") as f:  # the side effect: once, or a bug
            f.write(f"email sent by {os.getpid()}\n")
        time.sleep(1.0)  # long enough for the other resume to arrive meanwhile
        return {"log": [f"sent:{answer}"]}

    builder = StateGraph(Send)
    builder.add_node("prepare", prepare)
    builder.add_node("send", send)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "send")
    builder.add_edge("send", END)
    return builder.compile(checkpointer=saver)


GRAPHS = {"approval": approval_graph, "parallel": parallel_graph, "send": send_graph}


def snapshot(graph):
    state = graph.get_state(CONFIG)
    return {
        "values": state.values,
        "next": list(state.next),
        "interrupts": [i.value for i in state.interrupts],
    }


def main():
    graph_name, action = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    with open_saver() as saver:
        graph = GRAPHS[graph_name](saver)
        if action == "wait-go":  # start together with a sibling process
            open(path(f"ready-{arg}"), "w").close()
            deadline = time.monotonic() + 30
            while not os.path.exists(path("go")):
                if time.monotonic() > deadline:
                    raise TimeoutError("no go signal")
                time.sleep(0.002)
            action, arg = "resume", "yes"
        try:
            if action == "start":
                graph.invoke(json.loads(arg), CONFIG)
            elif action == "continue":
                graph.invoke(None, CONFIG)
            elif action == "resume":
                graph.invoke(Command(resume=arg), CONFIG)
            elif action != "state":
                raise ValueError(f"unknown action {action!r}")
        except CheckpointConflictError as exc:
            print(json.dumps({"conflict": str(exc), **snapshot(graph)}))
            return
        print(json.dumps({"conflict": None, **snapshot(graph)}))


if __name__ == "__main__":
    main()
'''


# -- plumbing -----------------------------------------------------------------------------


@dataclass
class Store:
    """One backend's storage, as the child processes and this process reach it."""

    backend: str
    target: str  # a SQLite file path or a Postgres URL (with its own search_path)

    def saver(self) -> Any:
        if self.backend == "sqlite":
            from threadloom.checkpoint.sqlite import SqliteSaver

            return SqliteSaver.from_conn_string(self.target)
        from threadloom.checkpoint.postgres import PostgresSaver

        return PostgresSaver.from_conn_string(self.target)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store("sqlite", str(tmp_path / "checkpoints.db"))
        return
    url = request.getfixturevalue("pg_schemas")()  # skips (or fails under CI) without it
    store = Store("postgres", url)
    with store.saver() as saver:
        saver.setup()
    yield store


class Procs:
    """Starts the child processes of one test, all on one thread of one store."""

    def __init__(self, store: Store, work: Path) -> None:
        self.store = store
        self.work = work
        self.script = work / "proc.py"
        self.script.write_text(SCRIPT)
        self.thread_id = f"thread-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "TL_BACKEND": store.backend,
            "TL_TARGET": store.target,
            "TL_WORK": str(work),
            "TL_THREAD": self.thread_id,
        }

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(self.script), *args],
            env=self.env,
            cwd=self.work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=STEP_TIMEOUT)
        assert proc.returncode == 0, f"child process failed ({proc.returncode}):\n{err}"
        return json.loads(out.strip().splitlines()[-1])

    def run(self, *args: str) -> dict[str, Any]:
        return self.finish(self.start(*args))

    def runs(self) -> Counter[str]:
        runs = self.work / "runs.txt"
        return Counter(runs.read_text().split()) if runs.exists() else Counter()

    def wait_for(self, what: str, check: Any, proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        while not check():
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"child process ended before {what}:\n{err}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.02)


def _history(store: Store, thread_id: str) -> list[tuple[str, str | None]]:
    """(checkpoint id, parent id) of the thread's root checkpoints, newest first."""
    with store.saver() as saver:
        tuples = list(saver.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}))
    return [
        (
            t.config["configurable"]["checkpoint_id"],
            (t.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
        )
        for t in tuples
    ]


def _assert_linear(history: list[tuple[str, str | None]]) -> None:
    """Each checkpoint's parent is the one before it: one chain, no fork."""
    assert history, "no checkpoints"
    for (_, parent), (older, _) in zip(history, history[1:], strict=False):
        assert parent == older, f"the history forks or skips: {history}"
    assert history[-1][1] is None, history
    parents = [p for _, p in history if p is not None]
    assert len(parents) == len(set(parents)), f"two checkpoints share a parent: {history}"


# -- (a) pause in one process, resume in fresh ones -------------------------------------------


def test_pause_and_resume_across_processes(store: Store, tmp_path: Path) -> None:
    procs = Procs(store, tmp_path)

    paused = procs.run("approval", "start", json.dumps({"log": []}))
    assert paused["next"] == ["approve"]  # interrupt_before
    assert paused["values"]["log"] == ["draft"]

    asked = procs.run("approval", "continue")  # a fresh process picks the thread up
    assert asked["next"] == ["review"]  # paused inside review, by interrupt()
    assert asked["interrupts"] == [{"question": "send it?", "log": ["draft", "approve"]}]

    seen = procs.run("approval", "state")  # yet another process only reads
    assert seen["next"] == ["review"] and seen["interrupts"] == asked["interrupts"]

    done = procs.run("approval", "resume", "yes")
    assert done["conflict"] is None
    assert done["next"] == [] and done["interrupts"] == []
    assert done["values"] == {
        "log": ["draft", "approve", "review:yes", "finish"],
        "decision": "yes",
    }
    # review ran twice (interrupt() re-runs its node on resume), everything else once
    assert procs.runs() == Counter(draft=1, approve=1, review=2, finish=1)
    _assert_linear(_history(store, procs.thread_id))


# -- (b) SIGKILL mid-superstep, resume elsewhere ----------------------------------------------


def test_killed_mid_superstep_resumes_without_rerunning_saved_work(
    store: Store, tmp_path: Path
) -> None:
    procs = Procs(store, tmp_path)
    config = {"configurable": {"thread_id": procs.thread_id}}

    def fast_writes_saved() -> bool:
        with store.saver() as saver:
            tup = saver.get_tuple(config)
        writes = (tup.pending_writes or []) if tup is not None else []
        return any(channel == "results" and value == ["fast"] for _, channel, value in writes)

    victim = procs.start("parallel", "start", json.dumps({"results": []}))
    procs.wait_for("the slow node to start", (tmp_path / "slow-ready").exists, victim)
    procs.wait_for("the fast node's writes to be saved", fast_writes_saved, victim)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=STEP_TIMEOUT)
    assert victim.returncode == -signal.SIGKILL
    assert procs.runs() == Counter(fast=1, slow=1)

    (tmp_path / "go").touch()  # the slow node finishes this time
    done = procs.run("parallel", "continue")
    assert done["conflict"] is None, done["conflict"]  # the killed run left no lock behind
    assert done["next"] == []
    assert sorted(done["values"]["results"]) == ["fast", "join", "slow"]
    # fast's saved writes were used, not redone; slow was cut off, so it ran again
    assert procs.runs() == Counter(fast=1, slow=2, join=1)
    _assert_linear(_history(store, procs.thread_id))


# -- (c) two resumes of one pause at once -----------------------------------------------------


def test_two_processes_resuming_one_pause_one_runs(store: Store, tmp_path: Path) -> None:
    procs = Procs(store, tmp_path)
    paused = procs.run("send", "start", json.dumps({"log": []}))
    assert paused["next"] == ["send"] and paused["interrupts"] == ["send the email?"]

    racers = [procs.start("send", "wait-go", str(n)) for n in range(2)]
    for n, proc in enumerate(racers):  # both have imported and opened the store
        procs.wait_for(f"racer {n} to be ready", (tmp_path / f"ready-{n}").exists, proc)
    (tmp_path / "go").touch()
    outcomes = [procs.finish(proc) for proc in racers]

    conflicts = [o["conflict"] for o in outcomes if o["conflict"] is not None]
    assert len(conflicts) == 1, outcomes  # exactly one was refused ...
    assert "another process or run" in conflicts[0]
    winner = next(o for o in outcomes if o["conflict"] is None)
    assert winner["next"] == [] and winner["values"]["log"] == ["prepared", "sent:yes"]
    effects = (tmp_path / "effects.txt").read_text().splitlines()
    assert len(effects) == 1, effects  # ... before running anything: one email
    # send ran once to pause and once to finish; the refused resume ran nothing
    assert procs.runs() == Counter(prepare=1, send=2)

    final = procs.run("send", "state")
    assert final["values"]["log"] == ["prepared", "sent:yes"] and final["next"] == []
    _assert_linear(_history(store, procs.thread_id))
