"""Deprecation warning classes, named as LangGraph names them.

Code that filters or asserts LangGraph's deprecation warnings (``pytest.warns(
LangGraphDeprecatedSinceV10)``, ``warnings.filterwarnings(..., category=...)``) keeps
working after the import rename. Each class says since which release an API is
deprecated; all are ``DeprecationWarning`` subclasses.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = [
    "LangGraphDeprecationWarning",
    "LangGraphDeprecatedSinceV05",
    "LangGraphDeprecatedSinceV10",
    "LangGraphDeprecatedSinceV11",
]


class LangGraphDeprecationWarning(DeprecationWarning):
    """An API that still works but will be removed; the message names its replacement."""

    message: str
    since: tuple[int, int]
    expected_removal: tuple[int, int]

    def __init__(
        self,
        message: str,
        *args: object,
        since: tuple[int, int],
        expected_removal: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message, *args)
        self.message = message.rstrip(".")
        self.since = since
        self.expected_removal = (
            expected_removal if expected_removal is not None else (since[0] + 1, 0)
        )

    def __str__(self) -> str:
        return (
            f"{self.message}. Deprecated in LangGraph V{self.since[0]}.{self.since[1]} to be "
            f"removed in V{self.expected_removal[0]}.{self.expected_removal[1]}."
        )


class LangGraphDeprecatedSinceV05(LangGraphDeprecationWarning):
    """Deprecated since LangGraph 0.5 (``retry=``, ``input=``, ``output=`` keywords, ...)."""

    def __init__(self, message: str, *args: object) -> None:
        super().__init__(message, *args, since=(0, 5), expected_removal=(2, 0))


class LangGraphDeprecatedSinceV10(LangGraphDeprecationWarning):
    """Deprecated since LangGraph 1.0 (``config_schema``, ``NodeInterrupt``, ...)."""

    def __init__(self, message: str, *args: object) -> None:
        super().__init__(message, *args, since=(1, 0), expected_removal=(2, 0))


class LangGraphDeprecatedSinceV11(LangGraphDeprecationWarning):
    """Deprecated since LangGraph 1.1 (dict-style access to ``GraphOutput``, ...)."""

    def __init__(self, message: str, *args: object) -> None:
        super().__init__(message, *args, since=(1, 1), expected_removal=(2, 0))


def pop_deprecated_argument(
    kwargs: dict[str, Any],
    old: str,
    new: str,
    category: type[LangGraphDeprecationWarning],
    *,
    stacklevel: int = 3,
) -> Any:
    """Take the renamed keyword ``old`` out of ``kwargs`` (None if not given), warning
    (``category``) that ``new`` replaces it. ``stacklevel`` 3: the caller's caller."""
    if old not in kwargs:
        return None
    warnings.warn(
        f"`{old}` is deprecated and will be removed. Please use `{new}` instead.",
        category,
        stacklevel=stacklevel,
    )
    return kwargs.pop(old)


def warn_config_schema_method(*, stacklevel: int = 3) -> None:
    """Warn that the ``config_schema()`` method gave way to ``get_context_jsonschema``."""
    warnings.warn(
        "`config_schema` is deprecated. Use `get_context_jsonschema` for the relevant "
        "schema instead.",
        LangGraphDeprecatedSinceV10,
        stacklevel=stacklevel,
    )
