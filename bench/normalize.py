"""Library-neutral forms of outputs, so the two libraries' results can be compared.

Messages become ``(type, content, ((tool name, args), ...))``: ids (random per run) and
class identity (each library builds its own wrappers) are left out on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage


def normalize(value: Any) -> Any:
    """A plain, comparable form of a state, snapshot or interrupt."""
    if isinstance(value, BaseMessage):
        calls = tuple((c["name"], normalize(c["args"])) for c in getattr(value, "tool_calls", ()))
        return (value.type, normalize(value.content), calls)
    if type(value).__name__ == "StateSnapshot":  # a NamedTuple: before the tuple case
        return snapshot(value)
    if isinstance(value, Mapping):
        return {str(k): normalize(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if type(value).__name__ == "Interrupt":
        return ("Interrupt", normalize(value.value))
    return value


def snapshot(snap: Any) -> dict[str, Any]:
    """What a person reads from a ``StateSnapshot``: values, next nodes, step and source."""
    metadata = snap.metadata or {}
    return {
        "values": normalize(snap.values),
        "next": list(snap.next),
        "step": metadata.get("step"),
        "source": metadata.get("source"),
        "interrupts": [normalize(i) for i in getattr(snap, "interrupts", ())],
    }


def first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Where ``a`` and ``b`` first differ, as ``path: a != b``; None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'threadloom' if key in a else 'langgraph'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}"
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"
