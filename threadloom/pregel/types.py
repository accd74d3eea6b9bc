"""Deprecated path ``langgraph.pregel.types``: the names live in ``threadloom.types``.

Importing a name from here still works, with a deprecation warning.
"""

from __future__ import annotations

import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    import threadloom.types as types_module
    from threadloom.warnings import LangGraphDeprecatedSinceV10

    if name.startswith("__") or not hasattr(types_module, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        "Importing from langgraph.pregel.types is deprecated. Please use 'from "
        "langgraph.types import ...' instead (threadloom.types).",
        LangGraphDeprecatedSinceV10,
        stacklevel=2,
    )
    return getattr(types_module, name)
