"""``JsonPlusSerializer``: LangGraph's name for the default checkpoint serializer.

It is :class:`~threadloom.checkpoint.serde.msgpack.MsgpackSerializer` taking LangGraph's
constructor arguments, so code that builds ``JsonPlusSerializer(...)`` runs unchanged:

* ``allowed_msgpack_modules``: which classes beyond the built-in allowlist and the
  process registry (``register_type``) this serializer stores and rebuilds:

  - left out (the default): like LangGraph's default, non-strict
    (``MsgpackSerializer(strict=False)``): pydantic models, dataclasses, NamedTuples and
    enums are stored by name and rebuilt if their module is already imported, with a
    warning; ``THREADLOOM_STRICT_MSGPACK``/``LANGGRAPH_STRICT_MSGPACK`` set to ``true``
    makes the default strict;
  - ``True``: non-strict, whatever the environment says;
  - ``None`` (or ``False``): strict, only the built-in allowlist and the registry;
  - classes or ``(module, qualified name)`` pairs (imported when the serializer is made,
    never from stored bytes): strict, plus these.
* ``pickle_fallback``: as ``MsgpackSerializer``'s (unsafe unless every writer is trusted).
* ``allowed_json_modules``: accepted for compatibility; threadloom does not write the
  legacy JSON format, and only reads what its own serializer wrote.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from threadloom.checkpoint.serde.msgpack import MsgpackSerializer, strict_by_default

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


_DEFAULT: Any = object()


class JsonPlusSerializer(MsgpackSerializer):
    """``MsgpackSerializer`` under LangGraph's name and constructor signature."""

    def __init__(
        self,
        *,
        pickle_fallback: bool = False,
        allowed_json_modules: Iterable[Any] | bool | None = None,
        allowed_msgpack_modules: Iterable[Any] | bool | None = _DEFAULT,
        **kwargs: Any,
    ) -> None:
        allowed: list[type] = []
        if allowed_msgpack_modules is _DEFAULT:
            strict = strict_by_default()
        elif allowed_msgpack_modules is True:
            strict = False
        elif allowed_msgpack_modules is None or allowed_msgpack_modules is False:
            strict = True
        else:
            strict = True
            allowed = [_resolve(entry) for entry in allowed_msgpack_modules]
        kwargs.setdefault("strict", strict)
        self.allowed_json_modules = allowed_json_modules
        self.allowed_msgpack_modules = (  # the default, as what it resolved to
            (None if strict else True)
            if allowed_msgpack_modules is _DEFAULT
            else allowed_msgpack_modules
        )
        super().__init__(allowed_types=allowed, pickle_fallback=pickle_fallback, **kwargs)
