"""``langgraph._internal._config``: merging run configs, callback managers for a config.

Re-exports :mod:`threadloom.engine.runconfig` under LangGraph's names.
"""

from threadloom.engine.runconfig import (
    CONFIG_KEYS,
    DEFAULT_RECURSION_LIMIT,
    ensure_config,
    merge_configs,
    patch_configurable,
)
from threadloom.engine.runconfig import (
    async_callback_manager_for_config as get_async_callback_manager_for_config,
)
from threadloom.engine.runconfig import (
    callback_manager_for_config as get_callback_manager_for_config,
)
from threadloom.engine.runconfig import is_not_empty as _is_not_empty
from threadloom.engine.runconfig import merge_callbacks as _merge_callbacks

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_RECURSION_LIMIT",
    "_is_not_empty",
    "_merge_callbacks",
    "ensure_config",
    "get_async_callback_manager_for_config",
    "get_callback_manager_for_config",
    "merge_configs",
    "patch_configurable",
]
