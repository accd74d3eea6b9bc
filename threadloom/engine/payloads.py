"""What the stream events of a run carry: the payloads, built apart from when they are sent.

The run loop (``threadloom.engine.loop``) decides when an event is emitted; this module
says what it holds:

- ``tasks`` / ``debug``: a task's start (``task_start_payload``: ``{"id", "name",
  "input", "triggers"}``, plus ``metadata`` when the task's config has metadata a
  listener can use - the caller's own keys, ``lc_agent_name`` / ``ls_integration`` and
  its tags, LangChain's ``seq:step:N`` markers and the engine's own keys left out: the
  event's namespace and fields already say them) and its end (``task_result_payload``);
- ``updates``: a task's writes by state key (``update_payload``);
- ``checkpoints`` / ``debug``: a checkpoint with the tasks it plans
  (``checkpoint_payload``); ``debug`` wraps each in ``debug_payload``;
- ``messages``: the metadata a message a node returned streams with
  (``message_metadata``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from threadloom.constants import RETURN
from threadloom.engine.task import Task

__all__ = [
    "as_dict",
    "checkpoint_payload",
    "debug_payload",
    "message_ids",
    "message_metadata",
    "task_result",
    "task_result_payload",
    "task_start_payload",
    "task_start_payloads",
    "update_payload",
]

# configurable keys that identify a run, shown with the messages its nodes return
_MESSAGE_META_KEYS = ("thread_id", "checkpoint_id", "checkpoint_ns", "task_id", "run_id",
                      "assistant_id", "graph_id")


def _own_key(key: str) -> bool:
    return not (key.startswith("langgraph_") or key.startswith("checkpoint_")
                or key == "thread_id")


def _listener_metadata(config: Any) -> dict[str, Any] | None:
    if not config:
        return None
    source = config.get("metadata") or {}
    metadata = {k: v for k, v in source.items() if _own_key(k)}
    tags = [t for t in config.get("tags") or () if not str(t).startswith("seq:step:")]
    if tags:
        metadata["tags"] = tags
    return metadata or None


def task_start_payload(task: Any) -> dict[str, Any]:
    """The start payload of ``task`` (anything with id, name, input, triggers, config)."""
    payload = {
        "id": task.id,
        "name": task.name,
        "input": task.input,
        "triggers": task.triggers or ("__pregel_push",),
    }
    metadata = _listener_metadata(getattr(task, "config", None))
    if metadata is not None:
        payload["metadata"] = metadata
    return payload


def task_start_payloads(tasks: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for task in tasks:
        yield task_start_payload(task)


def task_result(writes: Iterable[tuple[str, Any]], keys: Any) -> dict[str, Any] | None:
    """What a task wrote to the state, by key (several writes to one key: ``$writes``)."""
    out: dict[str, Any] = {}
    many: dict[str, list[Any]] = {}
    for channel, value in writes:
        if channel not in keys:
            continue
        if channel in many:
            many[channel].append(value)
        elif channel in out:
            many[channel] = [out[channel], value]
            out[channel] = {"$writes": many[channel]}
        else:
            out[channel] = value
    return out or None


def task_result_payload(task: Task, state_keys: frozenset[str]) -> dict[str, Any]:
    """The ``tasks`` / ``debug`` payload of a task that ended (``state_keys``: the
    program's)."""
    return {
        "id": task.id,
        "name": task.name,
        "error": task.error,
        "result": task_result(task.writes, state_keys | {RETURN}) or {},
        "interrupts": [{"value": i.value, "id": i.id, "response_schema": i.response_schema}
                       for i in task.interrupts],
    }


def update_payload(
    task: Task, state_keys: frozenset[str], output_channels: Sequence[str] | str,
    shown_keys: Any = None,
) -> Any:
    """A task's ``updates`` chunk: its writes by key; a list of such dicts when it wrote
    one key more than once (each repeat starts the next dict). ``shown_keys``: the run's
    ``output_keys`` (only those keys; one key named alone: its values, not dicts)."""
    writes = task.writes
    if len(writes) == 1 and writes[0][0] == RETURN:  # a called task: what it returned
        return writes[0][1]
    if isinstance(shown_keys, str):
        values = [value for ch, value in writes if ch == shown_keys]
        return (values[0] if len(values) == 1 else values) if values else None
    keys = state_keys if shown_keys is None else set(shown_keys)
    groups: list[dict[str, Any]] = [{}]
    for ch, value in writes:
        if ch in keys:
            if ch in groups[-1]:
                groups.append({})
            groups[-1][ch] = value
    single = output_channels
    shown: list[Any]
    if shown_keys is None and isinstance(single, str) and len(keys) == 1:
        # a graph whose state is one bare value
        shown = [g[single] if single in g else g for g in groups]
    else:
        shown = list(groups)
    if len(shown) > 1:
        return shown
    return shown[0] or None


def checkpoint_payload(
    config: Any, parent: Any, values: Any, metadata: dict[str, Any], next_tasks: list[Task],
    interrupts: Mapping[str, tuple[Any, ...]] | None, task_states: list[Any],
) -> dict[str, Any]:
    """The ``checkpoints`` / ``debug`` payload of a checkpoint: its config and parent's,
    the values it shows, its metadata and the tasks it plans (``interrupts``: those they
    already raised, by task id; ``task_states``: each one's subgraph config or None)."""
    return {
        "config": config,
        "parent_config": parent,
        "values": values,
        "metadata": metadata,
        "next": [t.name for t in next_tasks],
        "tasks": [{"id": t.id, "name": t.name,
                   "interrupts": tuple(
                       {"id": i.id, "response_schema": i.response_schema, "value": i.value}
                       for i in (interrupts or {}).get(t.id, ())),
                   "state": state} for t, state in zip(next_tasks, task_states, strict=True)],
    }


def debug_payload(kind: str, step: int, payload: Any) -> dict[str, Any]:
    """A ``debug`` event: ``kind`` ("checkpoint", "task" or "task_result") of ``step``."""
    return {
        "step": step,
        "timestamp": datetime.now(UTC).isoformat(),
        "type": kind,
        "payload": payload,
    }


def as_dict(value: Any) -> dict[str, Any]:
    """A run's output as the keys of a ``values`` event (a bare value: ``__root__``)."""
    return value if isinstance(value, dict) else {"__root__": value}


def message_ids(value: Any, kind: type) -> set[str]:
    """Ids of the messages in a node's input (a state dict, a model, or a message list)."""
    items: Any
    if isinstance(value, dict):
        items = value.values()
    elif hasattr(value, "__dict__") and not isinstance(value, kind):
        items = vars(value).values()
    else:
        items = (value,)
    ids: set[str] = set()
    for item in items:
        for message in item if isinstance(item, list) else (item,):
            if isinstance(message, kind):
                mid = getattr(message, "id", None)
                if mid is not None:
                    ids.add(mid)
    return ids


def message_metadata(run_config: Mapping[str, Any], task: Task) -> dict[str, Any]:
    """The metadata a message a node returned streams with: the run's identifying
    configurable keys, then the node's ``langgraph_*`` keys."""
    conf = run_config.get("configurable") or {}
    meta: dict[str, Any] = {k: conf[k] for k in _MESSAGE_META_KEYS if k in conf}
    meta["ls_integration"] = "langgraph"
    source = task.config.get("metadata") or {}
    meta.update((k, v) for k, v in source.items() if k.startswith("langgraph_"))
    return meta
