"""``langgraph._internal._serde``: the serializer allowlist helpers under LangGraph's
private path, as ``(module, name)`` pairs. The logic is
``threadloom.checkpoint.serde.allowlist``'s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from threadloom.checkpoint.serde.allowlist import builtin_classes, schema_classes

__all__ = ["collect_allowlist_from_schemas", "curated_core_allowlist"]


def _pairs(classes: Iterable[type]) -> set[tuple[str, str]]:
    return {(cls.__module__, cls.__name__) for cls in classes}


def collect_allowlist_from_schemas(
    *, schemas: Iterable[Any] | None = None, channels: Mapping[str, Any] | None = None
) -> set[tuple[str, str]]:
    """The classes reachable from ``schemas`` and ``channels`` (see ``schema_classes``)."""
    return _pairs(schema_classes(schemas or (), channels))


def curated_core_allowlist() -> set[tuple[str, str]]:
    """The classes the serializer rebuilds without registration (``builtin_classes``)."""
    return _pairs(builtin_classes())
