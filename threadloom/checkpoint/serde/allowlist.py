"""Which classes a graph's state may hold: found from its type annotations.

``schema_classes(schemas, channels)`` walks type annotations - state schemas, channel
value and update types - and returns the classes a checkpoint of that graph may have to
store: dataclasses, pydantic models, enums, NamedTuples and other user classes, found
through containers (``list[X]``, ``dict[str, X]``, ``deque[X]``, ...), ``Optional``/
unions, ``Annotated``, ``NewType`` and the fields of the classes it finds (forward
references resolved where they can be). ``TypedDict`` schemas contribute their fields,
not themselves (their values are plain dicts); builtins, ``Any`` and ``Literal`` add
nothing. Give the result to ``MsgpackSerializer(allowed_types=...)`` (or, as
``(module, name)`` pairs, to ``JsonPlusSerializer(allowed_msgpack_modules=...)``).

``allow_graph_classes(checkpointer, schemas, channels)`` is what ``StateGraph.compile``
does with that: a *strict* serializer of the checkpointer is allowed the classes the
graph's schemas declare (as LangGraph's strict mode allows them); non-strict serializers
need nothing.

``builtin_classes()`` is the serializer's own allowlist (langchain_core messages and
documents, threadloom's types, builtin exceptions) with the message base classes.
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import sys
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import typing_extensions

from threadloom.checkpoint.serde.msgpack import MsgpackSerializer
from threadloom.checkpoint.serde.registry import BUILTINS

__all__ = ["allow_graph_classes", "builtin_classes", "schema_classes"]

_NOTHING = (Any, typing_extensions.Any)
_WRAPPERS = {
    typing.Annotated, typing.ClassVar, typing.Final, typing_extensions.Annotated,
    typing_extensions.NotRequired, typing_extensions.Required, typing_extensions.ReadOnly,
}  # fmt: skip


def schema_classes(
    schemas: Iterable[Any] = (), channels: Mapping[str, Any] | None = None
) -> set[type]:
    """The classes reachable from ``schemas`` (types or annotations) and from the
    ``ValueType``/``UpdateType`` of ``channels`` (see the module docstring)."""
    found: set[type] = set()
    seen: set[int] = set()
    for schema in schemas:
        _walk(schema, found, seen)
    for channel in (channels or {}).values():
        for attr in ("ValueType", "UpdateType"):
            try:
                tp = getattr(channel, attr)
            except Exception:  # a channel that cannot say: nothing to learn from it
                continue
            _walk(tp, found, seen)
    return found


def allow_graph_classes(
    checkpointer: Any, schemas: Iterable[Any] = (), channels: Mapping[str, Any] | None = None
) -> None:
    """Register the classes reachable from ``schemas``/``channels`` with ``checkpointer``'s
    serializer (looked for as ``checkpointer.serde``, through an ``EncryptedSerializer``'s
    ``.serde``) if it is a strict ``MsgpackSerializer``; otherwise do nothing. Classes the
    serializer cannot store are skipped (writing such a value names them later)."""
    serde = getattr(checkpointer, "serde", None)
    for _ in range(4):  # unwrap wrapping serializers (EncryptedSerializer, ...)
        if isinstance(serde, MsgpackSerializer) or serde is None:
            break
        serde = getattr(serde, "serde", None)
    if not isinstance(serde, MsgpackSerializer) or not serde.strict:
        return
    for cls in schema_classes(schemas, channels):
        if cls in serde.registry:
            continue
        try:
            serde.register(cls)
        except TypeError:
            continue


def builtin_classes() -> set[type]:
    """The classes every threadloom serializer rebuilds without registration, plus the
    langchain_core message base classes they derive from."""
    BUILTINS.ensure()
    found = set(BUILTINS.wire)
    for cls in list(found):
        found.update(
            base
            for base in cls.__mro__
            if base.__module__.startswith("langchain_core.messages")
        )
    return found


def _walk(tp: Any, found: set[type], seen: set[int]) -> None:
    if id(tp) in seen:
        return
    seen.add(id(tp))
    if tp is None or tp in _NOTHING or isinstance(tp, str | typing.ForwardRef):
        return  # an unresolved forward reference: nothing known to add
    supertype = getattr(tp, "__supertype__", None)  # NewType
    if supertype is not None:
        _walk(supertype, found, seen)
        return
    origin = typing.get_origin(tp)
    if origin is not None:
        if origin is typing.Literal or origin is typing_extensions.Literal:
            return
        if origin in _WRAPPERS:
            args = typing.get_args(tp)
            if args:
                _walk(args[0], found, seen)
            return
        for arg in typing.get_args(tp):
            if arg is not Ellipsis:
                _walk(arg, found, seen)
        return
    if not isinstance(tp, type):
        return
    if typing_extensions.is_typeddict(tp):
        _walk_fields(tp, found, seen)
        return
    if tp.__module__ == builtins.__name__ or tp.__module__ in ("typing", "typing_extensions"):
        return
    found.add(tp)
    if (
        dataclasses.is_dataclass(tp)
        or hasattr(tp, "model_fields")
        or hasattr(tp, "__fields__")
        or (issubclass(tp, tuple) and hasattr(tp, "_fields"))
    ) and not issubclass(tp, enum.Enum):
        _walk_fields(tp, found, seen)


def _walk_fields(cls: type, found: set[type], seen: set[int]) -> None:
    """The annotated fields of ``cls``; if its annotations cannot all be resolved (a name
    that does not exist at run time), the ones that can."""
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:
        hints = {}
        for klass in reversed(cls.__mro__):
            for name, annotation in getattr(klass, "__annotations__", {}).items():
                hints[name] = _resolved(annotation, klass)
    for annotation in hints.values():
        _walk(annotation, found, seen)


def _resolved(annotation: Any, owner: type) -> Any:
    """A string annotation of ``owner`` evaluated as ``typing.get_type_hints`` would (in
    its module and class namespace); the string itself if it names something missing."""
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(owner.__module__)
    try:
        return eval(annotation, dict(vars(module)) if module else {}, dict(vars(owner)))  # noqa: S307
    except Exception:
        return annotation  # skipped by _walk
