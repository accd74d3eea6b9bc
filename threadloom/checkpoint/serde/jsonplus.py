"""``JsonPlusSerializer``: LangGraph's name for the default checkpoint serializer.

It is :class:`~threadloom.checkpoint.serde.msgpack.MsgpackSerializer` taking LangGraph's
constructor arguments, so code that builds ``JsonPlusSerializer(...)`` runs unchanged:

* ``allowed_msgpack_modules``: extra classes this serializer may rebuild, given as
  classes or ``(module, qualified name)`` pairs (imported when the serializer is made).
  ``None`` or ``True`` add nothing: threadloom's serializer is always strict, rebuilding
  only its built-in allowlist, the process registry (``register_type``) and these.
* ``pickle_fallback``: as ``MsgpackSerializer``'s (unsafe unless every writer is trusted).
* ``allowed_json_modules``: accepted for compatibility; threadloom does not write the
  legacy JSON format, and only reads what its own serializer wrote.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from threadloom.checkpoint.serde.msgpack import MsgpackSerializer

__all__ = ["JsonPlusSerializer"]


def _resolve(entry: Any) -> type:
    if isinstance(entry, type):
        return entry
    if (
        isinstance(entry, tuple | list)
        and len(entry) == 2
        and all(isinstance(part, str) for part in entry)
    ):
        module_name, qualname = entry
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, type):
            return obj
        raise ValueError(f"allowed_msgpack_modules: {module_name}.{qualname} is not a class.")
    raise TypeError(
        "allowed_msgpack_modules entries are classes or (module, qualified name) pairs, "
        f"got {entry!r}."
    )


class JsonPlusSerializer(MsgpackSerializer):
    """``MsgpackSerializer`` under LangGraph's name and constructor signature."""

    def __init__(
        self,
        *,
        pickle_fallback: bool = False,
        allowed_json_modules: Iterable[Any] | bool | None = None,
        allowed_msgpack_modules: Iterable[Any] | bool | None = None,
        **kwargs: Any,
    ) -> None:
        allowed: list[type] = []
        if allowed_msgpack_modules not in (None, True, False):
            allowed = [_resolve(entry) for entry in allowed_msgpack_modules]  # type: ignore[union-attr]
        self.allowed_json_modules = allowed_json_modules
        self.allowed_msgpack_modules = allowed_msgpack_modules
        super().__init__(allowed_types=allowed, pickle_fallback=pickle_fallback, **kwargs)
