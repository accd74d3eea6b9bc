"""Reading state schemas: which keys a TypedDict, dataclass or pydantic model declares,
which channel each key gets, and converting between state objects and plain dicts."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import (
    Annotated,
    Any,
    ForwardRef,
    NotRequired,
    Required,
    get_args,
    get_origin,
    get_type_hints,
)

from threadloom.channels import BaseChannel, BinaryOperatorAggregate, LastValue

ROOT = "__root__"


def is_pydantic_model(obj: Any) -> bool:
    return isinstance(obj, type) and hasattr(obj, "model_fields") and hasattr(
        obj, "model_validate"
    )


def is_typeddict(obj: Any) -> bool:
    return isinstance(obj, type) and hasattr(obj, "__annotations__") and hasattr(
        obj, "__total__"
    )


def is_schema_class(obj: Any) -> bool:
    """True when ``obj`` declares named keys (TypedDict, dataclass or pydantic model)."""
    return is_typeddict(obj) or is_pydantic_model(obj) or (
        isinstance(obj, type) and dataclasses.is_dataclass(obj)
    )


def schema_hints(schema: Any) -> dict[str, Any]:
    """Field name -> annotation (with ``Annotated`` extras) for a schema class."""
    if is_pydantic_model(schema):
        hints: dict[str, Any] = {}
        for name, field in schema.model_fields.items():
            ann = field.annotation
            if field.metadata:
                ann = Annotated[(ann, *field.metadata)]
            hints[name] = ann
        return hints
    try:
        return get_type_hints(schema, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - explain which key could not be resolved
        hints = {}
        for cls in reversed(getattr(schema, "__mro__", (schema,))):
            hints.update(getattr(cls, "__annotations__", {}))
        for key, ann in hints.items():
            if isinstance(ann, (str, ForwardRef)):
                text = ann.__forward_arg__ if isinstance(ann, ForwardRef) else ann
                raise TypeError(
                    f"Cannot resolve the annotation {text!r} of key '{key}' in "
                    f"{schema.__qualname__} ({exc}). Define the schema at module level, or "
                    "import the names it uses where it is defined, so its reducers and "
                    "types can be read."
                ) from exc
        return hints


def _is_reducer(fn: Any) -> bool:
    if not callable(fn) or isinstance(fn, type):
        return False
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) == 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)


def channel_for(key: str, annotation: Any) -> BaseChannel | str:
    """The channel a key's annotation asks for, or the name of a managed value."""
    from threadloom.managed import is_managed

    while get_origin(annotation) in (NotRequired, Required):
        annotation = get_args(annotation)[0]
    if managed := is_managed(annotation):
        return managed
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        for extra in reversed(extras):
            if isinstance(extra, BaseChannel):
                with_type = getattr(extra, "with_type", None)  # DeltaChannel: type from here
                chan = with_type(base) if with_type is not None else extra.copy()
                chan.key = key
                return chan
            if isinstance(extra, type) and issubclass(extra, BaseChannel):
                return extra(base, key=key)
            if managed := is_managed(extra):
                return managed
            if callable(extra) and not isinstance(extra, type):
                if not _is_reducer(extra):
                    raise ValueError(
                        f"Invalid reducer signature for key '{key}': a reducer takes exactly "
                        f"two positional arguments (current, update), got {extra!r}."
                    )
                return BinaryOperatorAggregate(base, extra, key=key)
        return LastValue(base, key=key)
    return LastValue(annotation, key=key)


def make_coercer(schema: Any) -> Callable[[dict[str, Any]], Any]:
    """A function turning a dict of channel values into what a node expects as input."""
    if is_pydantic_model(schema):
        return lambda values: schema(**values)
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        return lambda values: schema(**values)
    return _identity


def _identity(values: Any) -> Any:
    return values


def first_param_schema(fn: Any) -> Any | None:
    """The schema class annotated on a callable's first parameter, if any."""
    try:
        target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else fn.__call__
        params = list(inspect.signature(target).parameters.values())
        if not params:
            return None
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - no usable hints: the node reads the whole state
        return None
    ann = hints.get(params[0].name)
    return ann if is_schema_class(ann) else None


def _plain(annotation: Any) -> Any:
    """The value type of a key's annotation: no Required/NotRequired, no Annotated extras."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Required, NotRequired):
            annotation = get_args(annotation)[0]
        else:
            return annotation


def _optional(annotation: Any) -> bool:
    import types
    import typing

    origin = get_origin(annotation)
    return origin in (typing.Union, types.UnionType) and type(None) in get_args(annotation)


def typeddict_required(schema: Any, hints: dict[str, Any]) -> set[str]:
    """The required keys of a TypedDict: ``__required_keys__``, corrected by the
    resolved ``hints`` - under ``from __future__ import annotations`` the class cannot
    see a ``NotRequired[...]`` / ``Required[...]`` written as a string, its resolved
    hint can (as pydantic reads them)."""
    required = set(getattr(schema, "__required_keys__", hints))
    for key, hint in hints.items():
        qualifier = getattr(get_origin(hint), "_name", None)
        if qualifier == "NotRequired":
            required.discard(key)
        elif qualifier == "Required":
            required.add(key)
    return required


def io_model(schema: Any, skip: Any = ()) -> Any:
    """A pydantic model describing ``schema``'s keys for JSON Schema (managed keys left
    out): a TypedDict key is required as the TypedDict says, a dataclass field when it
    has no default (an ``...`` default counts as none) and is not Optional."""
    from pydantic import BaseModel, create_model

    if is_pydantic_model(schema):
        return schema
    if not is_schema_class(schema):
        return None
    hints = schema_hints(schema)
    defaults: dict[str, Any] = {}
    if is_typeddict(schema):
        required = typeddict_required(schema, hints)
    else:
        required = set()
        for f in dataclasses.fields(schema):
            has_default = (f.default is not dataclasses.MISSING and f.default is not ...) or (
                f.default_factory is not dataclasses.MISSING
            )
            if has_default:
                defaults[f.name] = (
                    f.default if f.default is not dataclasses.MISSING else None
                )
            elif not _optional(_plain(hints.get(f.name))):
                required.add(f.name)
    fields: dict[str, Any] = {}
    for key, annotation in hints.items():
        if key in skip:
            continue
        plain = _plain(annotation)
        fields[key] = (plain, ...) if key in required else (plain, defaults.get(key))
    return create_model(schema.__name__, __base__=BaseModel, **fields)
