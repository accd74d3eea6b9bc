"""What ``compat/server_diff.py`` asks of a server: scenarios through the official client.

Each scenario is an ``async def`` taking the official async client (``langgraph_sdk``)
and a ``Recorder``, and records what the server answers, one labelled observation at a
time: a resource, a list, a stream's events, or the status of an error. The same
scenarios run against the reference server and against threadloom; ``server_diff``
compares the two recordings.

Scenarios avoid races a recording could catch either way: a run is joined before it is
read, and a run meant to be busy sleeps long enough for the calls made during it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Scenario = Callable[[Any, "Recorder"], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def error_of(exc: BaseException) -> dict[str, Any]:
    """An error as recorded: its HTTP status (the SDK's exception classes map from it),
    or, for a run that failed (the SDK raises ``Exception("<error>: <message>")`` from
    ``wait``), the error's class name."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        return {"raised": type(exc).__name__, "error": str(exc).split(":", 1)[0]}
    return {"error_status": status}


class Recorder:
    """The observations of one scenario, and the names given to the ids it made (so the
    recordings of two servers, whose ids differ, compare equal where they should)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.observations: list[tuple[str, Any]] = []

    def name(self, value: Any, label: str) -> Any:
        """Record ``value`` (an id) as ``<label>`` wherever it appears from now on."""
        if value is not None:
            self.names.setdefault(str(value), f"<{label}>")
        return value

    def put(self, label: str, value: Any) -> Any:
        self.observations.append((label, value))
        return value

    async def do(self, label: str, call: Awaitable[Any]) -> Any:
        """Await ``call``; record its answer, or its error's status (and return None)."""
        try:
            value = await call
        except Exception as exc:
            self.put(label, error_of(exc))
            return None
        return self.put(label, value)

    async def stream(self, label: str, parts: AsyncIterator[Any]) -> list[Any]:
        """Record a stream's events: ``[event, data]`` each (``id`` too when sent)."""
        events: list[Any] = []
        try:
            async for part in parts:
                event = [part.event, part.data]
                if getattr(part, "id", None) is not None:
                    event.append("<has id>")
                events.append(event)
        except Exception as exc:
            events.append(error_of(exc))
        self.put(label, events)
        return events


def _system(graph_id: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), graph_id))


async def _thread(c: Any, r: Recorder, label: str = "thread", **kwargs: Any) -> str:
    thread = await c.threads.create(**kwargs)
    return str(r.name(thread["thread_id"], label))


def _name_systems(r: Recorder) -> None:
    from server_graphs import GRAPHS

    for graph_id in GRAPHS:
        r.name(_system(graph_id), f"system assistant {graph_id}")


# -- meta and assistants ---------------------------------------------------------------

@scenario
async def assistants_system(c: Any, r: Recorder) -> None:
    _name_systems(r)
    await r.do("search echo", c.assistants.search(graph_id="echo"))
    await r.do("get", c.assistants.get(_system("echo")))
    await r.do("get graph", c.assistants.get_graph(_system("steps")))
    await r.do("get graph xray", c.assistants.get_graph(_system("nested"), xray=True))
    await r.do("get missing", c.assistants.get("00000000-0000-4000-8000-000000000000"))
    await r.do("count echo", c.assistants.count(graph_id="echo"))


@scenario
async def assistants_lifecycle(c: Any, r: Recorder) -> None:
    _name_systems(r)
    made = await r.do("create", c.assistants.create(
        "echo", config={"configurable": {"tone": "dry"}}, metadata={"team": "a"},
        name="dry echo", description="an echo"))
    aid = r.name(made["assistant_id"], "assistant")
    await r.do("update", c.assistants.update(aid, metadata={"team": "b"},
                                             config={"configurable": {"tone": "wet"}}))
    await r.do("versions", c.assistants.get_versions(aid))
    await r.do("set latest 1", c.assistants.set_latest(aid, 1))
    await r.do("get", c.assistants.get(aid))
    await r.do("search by metadata", c.assistants.search(metadata={"team": "a"}))
    await r.do("create again (do nothing)", c.assistants.create(
        "echo", assistant_id=aid, if_exists="do_nothing"))
    await r.do("create again (raise)", c.assistants.create("echo", assistant_id=aid))
    await r.do("create unknown graph", c.assistants.create("no_such_graph"))
    await r.do("delete", c.assistants.delete(aid))
    await r.do("get deleted", c.assistants.get(aid))


# -- threads -----------------------------------------------------------------------------

@scenario
async def threads_crud(c: Any, r: Recorder) -> None:
    made = await r.do("create", c.threads.create(metadata={"owner": "ann"}))
    tid = r.name(made["thread_id"], "thread")
    await r.do("get", c.threads.get(tid))
    await r.do("update", c.threads.update(tid, metadata={"stage": "two"}))
    await r.do("search by metadata", c.threads.search(metadata={"owner": "ann",
                                                                 "stage": "two"}))
    await r.do("count by metadata", c.threads.count(metadata={"owner": "ann"}))
    await r.do("create same id (raise)", c.threads.create(thread_id=tid))
    await r.do("create same id (do nothing)", c.threads.create(thread_id=tid,
                                                                if_exists="do_nothing"))
    await r.do("delete", c.threads.delete(tid))
    await r.do("get deleted", c.threads.get(tid))
    await r.do("get not a uuid", c.threads.get("not-a-uuid"))


@scenario
async def thread_after_run(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await r.do("wait", c.runs.wait(tid, "echo", input={"messages": [
        {"role": "user", "content": "hi", "id": "user-1"}]}))
    await r.do("thread", c.threads.get(tid))
    await r.do("state", c.threads.get_state(tid))
    await r.do("history", c.threads.get_history(tid))
    await r.do("history limit 1", c.threads.get_history(tid, limit=1))
    await r.do("search idle", c.threads.search(metadata={"graph_id": "echo"},
                                               status="idle", limit=1))
    copied = await r.do("copy", c.threads.copy(tid))
    if copied:
        r.name(copied["thread_id"], "copy")
        await r.do("copy state", c.threads.get_state(copied["thread_id"]))


@scenario
async def thread_config_after_run(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await c.runs.wait(tid, "steps", input={"log": []},
                      config={"configurable": {"tone": "dry"}, "tags": ["t1"]})
    await r.do("thread", c.threads.get(tid))
    await c.runs.wait(tid, "steps", input={"log": []}, config={"configurable": {"mood": 1}})
    await r.do("thread after a second run", c.threads.get(tid))


@scenario
async def state_update(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await c.runs.wait(tid, "steps", input={"log": ["start"]})
    updated = await r.do("update as first", c.threads.update_state(
        tid, {"log": ["edited"]}, as_node="first"))
    if updated:
        r.name(updated["checkpoint"]["checkpoint_id"], "update checkpoint")
    await r.do("state", c.threads.get_state(tid))
    await r.do("update unknown node", c.threads.update_state(tid, {"log": ["x"]},
                                                             as_node="nope"))
    await r.do("state at the update", c.threads.get_state(
        tid, checkpoint_id=updated["checkpoint"]["checkpoint_id"] if updated else None))


# -- runs --------------------------------------------------------------------------------

@scenario
async def runs_lifecycle(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    run = await r.do("create", c.runs.create(tid, "steps", input={"log": ["a"]},
                                             metadata={"purpose": "test"}))
    rid = r.name(run["run_id"], "run")
    await r.do("join", c.runs.join(tid, rid))
    await r.do("get", c.runs.get(tid, rid))
    await r.do("list", c.runs.list(tid))
    await r.do("cancel finished", c.runs.cancel(tid, rid))
    await r.do("delete", c.runs.delete(tid, rid))
    await r.do("get deleted", c.runs.get(tid, rid))
    await r.do("create on missing thread", c.runs.create(
        "00000000-0000-4000-8000-000000000000", "steps", input={"log": []}))
    await r.do("create with unknown assistant", c.runs.create(tid, "no_such_graph",
                                                              input={"log": []}))


@scenario
async def runs_stateless(c: Any, r: Recorder) -> None:
    await r.do("wait", c.runs.wait(None, "echo", input={"messages": [
        {"role": "user", "content": "hi", "id": "user-1"}]}))
    await r.stream("stream values", c.runs.stream(None, "steps", input={"log": ["s"]}))


@scenario
async def run_failing(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await r.stream("stream", c.runs.stream(tid, "failing", input={"log": []}))
    await r.do("thread", c.threads.get(tid))
    await r.do("wait", c.runs.wait(tid, "failing", input={"log": []}))
    runs = await c.runs.list(tid)
    r.put("run statuses", [run["status"] for run in runs])


# -- streaming ---------------------------------------------------------------------------

async def _stream(c: Any, r: Recorder, graph: str, mode: Any, payload: dict[str, Any],
                  **kwargs: Any) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await r.stream(f"stream {mode}", c.runs.stream(tid, graph, input=payload,
                                                    stream_mode=mode, **kwargs))


_STEPS_IN = {"log": ["in"]}
_CHAT_IN = {"messages": [{"role": "user", "content": "hi", "id": "user-1"}]}


@scenario
async def stream_values(c: Any, r: Recorder) -> None:
    await _stream(c, r, "steps", "values", _STEPS_IN)


@scenario
async def stream_updates(c: Any, r: Recorder) -> None:
    await _stream(c, r, "steps", "updates", _STEPS_IN)


@scenario
async def stream_several_modes(c: Any, r: Recorder) -> None:
    await _stream(c, r, "steps", ["values", "updates"], _STEPS_IN)


@scenario
async def stream_debug(c: Any, r: Recorder) -> None:
    await _stream(c, r, "steps", "debug", _STEPS_IN)


@scenario
async def stream_tasks(c: Any, r: Recorder) -> None:
    await _stream(c, r, "steps", "tasks", _STEPS_IN)


@scenario
async def stream_checkpoints(c: Any, r: Recorder) -> None:
    await _stream(c, r, "steps", "checkpoints", _STEPS_IN)


@scenario
async def stream_custom(c: Any, r: Recorder) -> None:
    await _stream(c, r, "chat", "custom", _CHAT_IN)


@scenario
async def stream_messages_tuple(c: Any, r: Recorder) -> None:
    await _stream(c, r, "chat", "messages-tuple", _CHAT_IN)


@scenario
async def stream_messages_legacy(c: Any, r: Recorder) -> None:
    await _stream(c, r, "chat", "messages", _CHAT_IN)


@scenario
async def stream_subgraphs(c: Any, r: Recorder) -> None:
    await _stream(c, r, "nested", ["values", "updates"], {"log": []}, stream_subgraphs=True)


@scenario
async def stream_resumable(c: Any, r: Recorder) -> None:
    await _stream(c, r, "steps", "values", _STEPS_IN, stream_resumable=True)


# -- people in the loop --------------------------------------------------------------

@scenario
async def interrupt_and_resume(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await r.do("wait (pauses)", c.runs.wait(tid, "approval", input={"amount": 5}))
    thread = await r.do("thread", c.threads.get(tid))
    for task_id in (thread or {}).get("interrupts") or {}:
        r.name(task_id, "paused task")
    await r.do("state", c.threads.get_state(tid))
    await r.do("search interrupted", c.threads.search(metadata={"graph_id": "approval"},
                                                      status="interrupted", limit=1))
    await r.stream("resume (stream updates)", c.runs.stream(
        tid, "approval", command={"resume": "approve"}, stream_mode="updates"))
    await r.do("thread after", c.threads.get(tid))
    await r.do("resume again", c.runs.wait(tid, "approval", command={"resume": "approve"}))


@scenario
async def interrupt_stream_values(c: Any, r: Recorder) -> None:
    await _stream(c, r, "approval", "values", {"amount": 7})


@scenario
async def interrupt_stream_updates(c: Any, r: Recorder) -> None:
    await _stream(c, r, "approval", "updates", {"amount": 7})


@scenario
async def parallel_interrupts(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    paused = await r.do("wait (pauses)", c.runs.wait(tid, "parallel", input={"topic": "x"}))
    state = await r.do("state", c.threads.get_state(tid))
    ids = {task["name"]: [i["id"] for i in task["interrupts"]]
           for task in (state or {}).get("tasks", [])}
    r.put("interrupt count in output", len((paused or {}).get("__interrupt__", [])))
    await r.do("ambiguous resume", c.runs.wait(tid, "parallel", command={"resume": "ok"}))
    await r.do("thread after ambiguous resume", c.threads.get(tid))
    if ids.get("legal"):
        await r.do("answer legal", c.runs.wait(
            tid, "parallel", command={"resume": {ids["legal"][0]: "fine"}}))
        await r.do("state after legal", c.threads.get_state(tid))
    if ids.get("finance"):
        await r.do("answer finance", c.runs.wait(
            tid, "parallel", command={"resume": {ids["finance"][0]: "paid"}}))
    await r.do("thread done", c.threads.get(tid))


@scenario
async def static_breakpoint(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await r.do("wait (breaks before second)", c.runs.wait(
        tid, "steps", input={"log": []}, interrupt_before=["second"]))
    await r.do("thread", c.threads.get(tid))
    await r.do("state", c.threads.get_state(tid))
    await r.stream("continue (updates)", c.runs.stream(tid, "steps", input=None,
                                                       stream_mode="updates"))
    await r.do("thread after", c.threads.get(tid))
    tid2 = await _thread(c, r, "thread 2")
    await r.stream("break after first (updates)", c.runs.stream(
        tid2, "steps", input={"log": []}, interrupt_after=["first"], stream_mode="updates"))
    await r.do("thread 2", c.threads.get(tid2))


@scenario
async def command_goto_and_update(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await r.do("router", c.runs.wait(tid, "goto", input={"log": []}))
    await r.do("update + goto", c.runs.wait(tid, "steps", command={
        "update": {"log": ["updated"]}, "goto": "third"}))
    await r.do("state", c.threads.get_state(tid))


# -- busy threads ------------------------------------------------------------------------

async def _until_second(c: Any, tid: str) -> None:
    """Until the thread's run is in ``second`` (its step-1 checkpoint is saved): a run
    may take a while to start, and what a cancel finds depends on where it is."""
    for _ in range(100):
        state = await c.threads.get_state(tid)
        if state["next"] == ["second"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the run did not reach 'second' within 5 s")


async def _busy(c: Any, r: Recorder, strategy: str) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    first = await c.runs.create(tid, "steps", input={"log": ["A"], "delay": 2.0})
    r.name(first["run_id"], "run A")
    await _until_second(c, tid)
    second = await r.do(f"second run ({strategy})", c.runs.create(
        tid, "steps", input={"log": ["B"]}, multitask_strategy=strategy))
    if second:
        r.name(second["run_id"], "run B")
        await r.do("join B", c.runs.join(tid, second["run_id"]))
    await r.do("join A", c.runs.join(tid, first["run_id"]))
    await r.do("run A", c.runs.get(tid, first["run_id"]))
    await r.do("state", c.threads.get_state(tid))
    runs = await c.runs.list(tid)
    r.put("run statuses", sorted(run["status"] for run in runs))


@scenario
async def busy_reject(c: Any, r: Recorder) -> None:
    await _busy(c, r, "reject")


@scenario
async def busy_enqueue(c: Any, r: Recorder) -> None:
    await _busy(c, r, "enqueue")


@scenario
async def busy_interrupt(c: Any, r: Recorder) -> None:
    await _busy(c, r, "interrupt")


@scenario
async def busy_rollback(c: Any, r: Recorder) -> None:
    await _busy(c, r, "rollback")


@scenario
async def cancel_running(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    run = await c.runs.create(tid, "steps", input={"log": ["A"], "delay": 2.0})
    rid = r.name(run["run_id"], "run")
    await _until_second(c, tid)
    await r.do("thread while busy", c.threads.get(tid))
    await r.do("update state while busy", c.threads.update_state(tid, {"log": ["x"]}))
    await r.do("cancel", c.runs.cancel(tid, rid, wait=True))
    await r.do("run", c.runs.get(tid, rid))
    await r.do("thread", c.threads.get(tid))
    await r.do("state", c.threads.get_state(tid))


# -- store -------------------------------------------------------------------------------

@scenario
async def store_items(c: Any, r: Recorder) -> None:
    await r.do("put", c.store.put_item(["diff", "a"], "k1", {"color": "red", "n": 1}))
    await c.store.put_item(["diff", "a"], "k2", {"color": "blue", "n": 2})
    await c.store.put_item(["diff", "b"], "k3", {"color": "red", "n": 3})
    await r.do("get", c.store.get_item(["diff", "a"], "k1"))
    await r.do("get missing", c.store.get_item(["diff", "a"], "nope"))
    await r.do("search prefix", c.store.search_items(["diff"]))
    await r.do("search filter", c.store.search_items(["diff"], filter={"color": "red"}))
    await r.do("search limit offset", c.store.search_items(["diff"], limit=1, offset=1))
    await r.do("namespaces", c.store.list_namespaces(prefix=["diff"]))
    await r.do("namespaces max depth", c.store.list_namespaces(prefix=["diff"],
                                                               max_depth=1))
    await r.do("delete", c.store.delete_item(["diff", "a"], "k1"))
    await r.do("get deleted", c.store.get_item(["diff", "a"], "k1"))
    for ns, key in ((["diff", "a"], "k2"), (["diff", "b"], "k3")):
        await c.store.delete_item(ns, key)


# -- more of the surface -----------------------------------------------------------------

@scenario
async def assistant_schemas(c: Any, r: Recorder) -> None:
    _name_systems(r)
    schemas = await r.do("schemas", c.assistants.get_schemas(_system("approval")))
    if schemas:  # the state schema's shape: its properties and what is required
        state = schemas.get("state_schema") or {}
        r.put("state schema properties", sorted(state.get("properties") or {}))
        r.put("input schema required", sorted((schemas.get("input_schema") or {}).get(
            "required") or []))


@scenario
async def state_of_a_paused_subgraph(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    await r.do("wait (breaks before inner)", c.runs.wait(
        tid, "nested", input={"log": []}, interrupt_before=["inner"]))
    await r.do("state with subgraphs", c.threads.get_state(tid, subgraphs=True))


@scenario
async def crons_on_a_thread(c: Any, r: Recorder) -> None:
    _name_systems(r)
    tid = await _thread(c, r)
    cron = await r.do("create", c.crons.create_for_thread(
        tid, "steps", schedule="0 3 * * *", input={"log": []}))
    if cron:
        r.name(cron["cron_id"], "cron")
        found = await c.crons.search(thread_id=tid)
        r.put("search ids", [x["cron_id"] for x in found])
        await r.do("delete", c.crons.delete(cron["cron_id"]))
        found = await c.crons.search(thread_id=tid)
        r.put("search after delete", [x["cron_id"] for x in found])
