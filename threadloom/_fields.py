"""Field-level facts of a state schema: is a field optional, what is its default, what
does it describe. Used to fill in JSON schemas and defaults for TypedDict, dataclass and
pydantic schemas alike."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, ForwardRef, NotRequired, Required, TypeVar, Union

__all__ = [
    "enhanced_type_hints",
    "field_default",
    "is_optional_type",
    "is_supported_by_pydantic",
    "state_object_to_dict",
]


def is_optional_type(type_: Any) -> bool:
    """True when ``None`` is an allowed value of ``type_`` (``X | None``, ``Optional[X]``,
    a TypeVar bound to such a type). ``None`` itself counts; ``NoneType`` alone does not."""
    if type_ is None:
        return True
    if isinstance(type_, TypeVar):
        return type_.__bound__ is not None and is_optional_type(type_.__bound__)
    origin = typing.get_origin(type_)
    if origin is Annotated:
        return is_optional_type(typing.get_args(type_)[0])
    if origin is Union or origin is types.UnionType:
        return any(
            arg is type(None) or is_optional_type(arg) for arg in typing.get_args(type_)
        )
    return False


def field_default(name: str, type_: Any, schema: type[Any]) -> Any:
    """The default of field ``name``: ``...`` when the field is required, else its default
    value (``None`` for a field that may be left out)."""
    required: bool | None = None
    inner = type_
    while True:
        origin = typing.get_origin(inner)
        if origin is Required:
            required = True if required is None else required
        elif origin is NotRequired:
            required = False if required is None else required
        elif origin is not Annotated:
            break
        inner = typing.get_args(inner)[0]
    if required is True:
        return ...
    if required is False:
        return None
    if name in getattr(schema, "__optional_keys__", ()):
        return None
    if dataclasses.is_dataclass(schema):
        for field in dataclasses.fields(schema):
            if field.name == name:
                if field.default is not dataclasses.MISSING:
                    return field.default
                if field.default_factory is not dataclasses.MISSING:
                    return field.default_factory()
    if hasattr(schema, "__annotations__") and name in vars(schema) and not isinstance(
        getattr(schema, name), (types.FunctionType, property)
    ):
        return getattr(schema, name)
    if is_optional_type(type_):
        return None
    return ...


def enhanced_type_hints(schema: type[Any]) -> Iterator[tuple[str, Any, Any, str | None]]:
    """``(name, type, default, description)`` for every field of ``schema`` (defaults and
    descriptions are None when not given)."""
    fields = getattr(schema, "model_fields", None)
    if isinstance(fields, dict):  # pydantic
        from pydantic_core import PydanticUndefined

        for name, info in fields.items():
            default = info.default
            if default is PydanticUndefined:
                default = None
            yield name, info.annotation, default, info.description
        return
    if dataclasses.is_dataclass(schema):
        for field in dataclasses.fields(schema):
            default = None if field.default is dataclasses.MISSING else field.default
            hint = typing.get_type_hints(schema).get(field.name, field.type)
            yield field.name, hint, default, None
        return
    try:
        hints = typing.get_type_hints(schema)
    except Exception:  # noqa: BLE001 - unresolvable forward refs: use the raw annotations
        hints = {
            k: v for k, v in getattr(schema, "__annotations__", {}).items()
            if not isinstance(v, (str, ForwardRef))
        }
    for name, hint in hints.items():
        yield name, hint, getattr(schema, name, None), None


def is_supported_by_pydantic(type_: Any) -> bool:
    """Whether pydantic can validate values of ``type_``: pydantic models, dataclasses,
    and TypedDicts (``typing.TypedDict`` only from Python 3.12; pydantic needs
    ``typing_extensions.TypedDict`` before that)."""
    import sys

    if dataclasses.is_dataclass(type_):
        return True
    if isinstance(type_, type) and hasattr(type_, "model_fields"):
        return True
    if isinstance(type_, type) and hasattr(type_, "__total__") and hasattr(
        type_, "__annotations__"
    ):
        if sys.version_info >= (3, 12):
            return True
        return type(type_).__module__ == "typing_extensions"
    return False


def state_object_to_dict(obj: Any) -> dict[str, Any] | None:
    """The keys a state object sets, as a dict; None if ``obj`` is not a state object.

    A pydantic model writes every field except one left at a ``None`` default (a ``None``
    passed explicitly is written): an update model's unset optional fields are not updates,
    while a default such as ``Field(default_factory=...)`` is a value the node returns.
    """
    if isinstance(obj, dict):
        return obj
    fields = getattr(type(obj), "model_fields", None)
    if fields is not None and hasattr(obj, "model_fields_set"):
        out = {}
        for name, field in fields.items():
            value = getattr(obj, name)
            if value is not None or field.default is not None or name in obj.model_fields_set:
                out[name] = value
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return None
