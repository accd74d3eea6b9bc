"""Assembling a run's ``RunnableConfig`` from the configs it was given.

A graph receives config from several places: ``with_config(...)`` bindings, the caller's
``invoke(..., config)``, and the config of the task it is nested in (the ambient
``var_child_runnable_config``). ``ensure_config`` merges them with these rules:

* ``configurable``, ``metadata``: merged per key, later wins (``metadata["lc_versions"]``
  merges one level deeper); the ambient ``configurable`` is inherited unless an explicit
  one names a checkpoint coordinate (``thread_id``, ``checkpoint_id``, ``checkpoint_ns``),
  which starts a new lineage;
* ``tags`` concatenate (duplicates kept), skipping tags already inherited;
* ``callbacks`` merge (lists concatenate; managers absorb handlers);
* ``recursion_limit``: the default is injected as a marked int, so a later merge can tell
  "nobody set it" from "someone set it to the default value".

It also decides which run identifiers are copied from ``configurable`` into ``metadata``
(and into LangSmith tracing metadata).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.runnables.config import var_child_runnable_config

__all__ = [
    "DEFAULT_RECURSION_LIMIT",
    "ensure_config",
    "merge_configs",
    "merge_callbacks",
    "is_not_empty",
    "callback_manager_for_config",
    "async_callback_manager_for_config",
    "patch_configurable",
]


class _DefaultLimit(int):
    """The default recursion limit as injected by ``ensure_config``: an ``int`` that
    ``merge_configs`` does not let override an explicit limit (survives copy and pickle)."""

    def __repr__(self) -> str:
        return f"{int(self)}"


DEFAULT_RECURSION_LIMIT: int = _DefaultLimit(
    int(os.environ.get("LANGGRAPH_DEFAULT_RECURSION_LIMIT", "10007"))
)

CONFIG_KEYS = (
    "tags",
    "metadata",
    "callbacks",
    "run_name",
    "max_concurrency",
    "recursion_limit",
    "configurable",
    "run_id",
)
_COORDINATES = frozenset({"thread_id", "checkpoint_id", "checkpoint_ns"})
# configurable keys copied into metadata (when metadata does not set them itself)
_METADATA_IDS = (
    "thread_id",
    "checkpoint_id",
    "checkpoint_ns",
    "task_id",
    "run_id",
    "assistant_id",
    "graph_id",
)
_SECRET_MARKS = ("key", "token", "secret", "password", "auth")


def is_not_empty(value: Any) -> bool:
    """A value worth keeping in a merge: not None and not an empty collection."""
    if value is None:
        return False
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return bool(value)
    return True


def merge_callbacks(base: Any, new: Any) -> Any:
    """Combine two ``callbacks`` values (lists of handlers or callback managers)."""
    if base is None:
        return list(new) if isinstance(new, list) else new
    if new is None:
        return list(base) if isinstance(base, list) else base
    if isinstance(base, list) and isinstance(new, list):
        return base + new
    if isinstance(base, list):  # new is a manager
        manager = new.copy()
        for handler in base:
            manager.add_handler(handler, inherit=True)
        return manager
    manager = base.copy()
    if isinstance(new, list):
        for handler in new:
            manager.add_handler(handler, inherit=True)
        return manager
    for handler in new.handlers:
        manager.add_handler(handler, inherit=handler in new.inheritable_handlers)
    manager.add_tags(new.inheritable_tags, inherit=True)
    manager.add_metadata(new.inheritable_metadata, inherit=True)
    return manager


def _merge_metadata(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if k == "lc_versions" and isinstance(v, Mapping) else v)
           for k, v in base.items()}
    for key, value in new.items():
        if key == "lc_versions" and isinstance(value, Mapping):
            old = out.get(key)
            out[key] = {**old, **value} if isinstance(old, Mapping) else dict(value)
        else:
            out[key] = value
    return out


def merge_configs(*configs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge configs left to right (see the module docstring for the per-key rules)."""
    merged: dict[str, Any] = {}
    for config in configs:
        if not config:
            continue
        for key, value in config.items():
            if key == "metadata":
                merged[key] = _merge_metadata(merged.get(key) or {}, value or {})
            elif key == "tags":
                merged[key] = list(merged.get(key) or []) + list(value or [])
            elif key == "configurable":
                merged[key] = {**(merged.get(key) or {}), **(value or {})}
            elif key == "callbacks":
                merged[key] = merge_callbacks(merged.get(key), value)
            elif key == "recursion_limit":
                if key not in merged or not isinstance(value, _DefaultLimit):
                    merged[key] = value
            else:
                merged[key] = value
    return merged


def ensure_config(*configs: Mapping[str, Any] | None) -> dict[str, Any]:
    """A complete config: defaults, then the ambient task config, then ``configs``."""
    explicit = [c for c in configs if c]
    ambient: Mapping[str, Any] = var_child_runnable_config.get() or {}
    config: dict[str, Any] = {
        "tags": [],
        "metadata": {},
        "callbacks": None,
        "recursion_limit": DEFAULT_RECURSION_LIMIT,
        "configurable": {},
    }
    new_lineage = any(_COORDINATES & set(c.get("configurable") or ()) for c in explicit)
    for key, value in ambient.items():
        if value is None or key == "run_id":
            continue
        if key == "configurable":
            if not new_lineage:
                config[key] = dict(value)
        elif key == "metadata":
            config[key] = _merge_metadata({}, value)
        elif key == "tags":
            config[key] = list(value)
        else:
            config[key] = value
    inherited_tags = set(config["tags"])
    for c in explicit:
        for key, value in c.items():
            if value is None:
                continue
            if key == "configurable":
                config[key] = {**config[key], **value}
            elif key == "metadata":
                config[key] = _merge_metadata(config[key], value)
            elif key == "tags":
                config[key] = config[key] + [t for t in value if t not in inherited_tags]
            elif key == "callbacks":
                config[key] = merge_callbacks(config[key], value)
            elif key == "recursion_limit":
                if not isinstance(value, _DefaultLimit):
                    config[key] = value
            else:
                config[key] = value
    metadata = config["metadata"]
    for key in _METADATA_IDS:
        value = config["configurable"].get(key)
        if value is not None and key not in metadata:
            metadata[key] = value
    return config


def _tracing_metadata(configurable: Mapping[str, Any]) -> dict[str, Any]:
    """The configurable values safe and useful to show on traces (no secrets, no objects)."""
    return {
        k: v
        for k, v in configurable.items()
        if not k.startswith("__")
        and not k.startswith("langgraph_")
        and isinstance(v, (str, int, float, bool))
        and not any(mark in k.lower() for mark in _SECRET_MARKS)
    }


def _manager_args(config: Mapping[str, Any], tags: Sequence[str] | None) -> dict[str, Any]:
    all_tags = list(config.get("tags") or [])
    if tags:
        all_tags += [t for t in tags if t not in all_tags]
    return {
        "inheritable_callbacks": config.get("callbacks"),
        "inheritable_tags": all_tags,
        "inheritable_metadata": config.get("metadata"),
        "langsmith_inheritable_metadata": _tracing_metadata(config.get("configurable") or {})
        or None,
    }


def callback_manager_for_config(
    config: Mapping[str, Any], tags: Sequence[str] | None = None
) -> CallbackManager:
    """A sync callback manager for ``config`` (its callbacks, tags and metadata)."""
    return CallbackManager.configure(**_manager_args(config, tags))


def async_callback_manager_for_config(
    config: Mapping[str, Any], tags: Sequence[str] | None = None
) -> AsyncCallbackManager:
    """An async callback manager for ``config``."""
    return AsyncCallbackManager.configure(**_manager_args(config, tags))


def patch_configurable(
    config: Mapping[str, Any] | None, patch: Mapping[str, Any]
) -> dict[str, Any]:
    """A copy of ``config`` whose ``configurable`` is updated with ``patch``."""
    config = dict(config or {})
    config["configurable"] = {**(config.get("configurable") or {}), **patch}
    return config

