"""The payload a ``tasks`` / ``debug`` stream event carries when a task starts.

``{"id", "name", "input", "triggers"}``, plus ``metadata`` when the task's config has
metadata a listener can use: the caller's own keys and ``lc_agent_name`` /
``ls_integration``, and its tags (LangChain's ``seq:step:N`` markers left out). The
engine's own keys (``langgraph_*``, ``thread_id``, ``checkpoint_*``) are dropped: the
event's namespace and fields already say them. The metadata is a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["task_start_payload", "task_start_payloads"]


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
