"""``langgraph.utils.config``: run-config helpers (an older import path).

Re-exports :mod:`threadloom._internal._config` and the in-node accessors of
:mod:`threadloom.config`.
"""

from threadloom._internal._config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
    merge_configs,
    patch_configurable,
)
from threadloom.config import get_config, get_store, get_stream_writer

__all__ = [
    "ensure_config",
    "get_async_callback_manager_for_config",
    "get_callback_manager_for_config",
    "get_config",
    "get_store",
    "get_stream_writer",
    "merge_configs",
    "patch_configurable",
]
