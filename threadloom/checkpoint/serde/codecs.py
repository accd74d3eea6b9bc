"""How one allowed class is taken apart for a checkpoint and rebuilt: the codecs.

A ``Codec`` turns an instance into the payload of the serializer's object record
(``[wire key, *state]``) and back, for one class, by the class's kind (``registry.classify``):
pydantic models (their field values, rebuilt like ``model_construct``, without
validation), dataclasses, NamedTuples, enums, exceptions, subclasses of builtin value types
and plain classes (their ``__getstate__`` state), plus ``Send`` and ``Interrupt`` in a
compact form of their own. A class is always rebuilt through the class itself (its
constructor, ``model_construct``, ``cls(value)``, ``__setstate__``), never through pickle's
reduce protocol, so stored bytes cannot name a callable to run.

Why a module of its own: which classes may be stored is the registry's concern
(``registry``), how values are laid out in bytes the serializer's (``msgpack``); a codec
knows only its class. Codecs are made once per class and shared by every serializer.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, Final

from threadloom.checkpoint.serde.base import CorruptCheckpointError
from threadloom.checkpoint.serde.registry import BUILTINS, CAST_BASES, classify, dotted, type_key
from threadloom.types import Interrupt, Send, TimeoutPolicy

__all__ = ["Codec", "as_builtin", "codec_for", "plain_pydantic_model"]

_EMPTY_FACTORIES: Final[frozenset[Any]] = frozenset({list, dict, set, tuple, frozenset, str, bytes})
_SIMPLE_DEFAULT_TYPES: Final[frozenset[type]] = frozenset({type(None), bool, int, str, bytes})
_MISSING: Any = object()


class Codec:
    """How one allowlisted class is stored.

    ``encode(obj)`` returns the ``EXT_OBJECT`` record ``[wire key, *state]``; ``decode``
    takes that record back. Built once per class and shared by all serializers.
    """

    __slots__ = ("cls", "name", "encode", "decode")

    def __init__(
        self,
        cls: type,
        encode: Callable[[Any], list[Any]],
        decode: Callable[[list[Any]], Any],
    ) -> None:
        self.cls = cls
        self.name = dotted(cls)
        self.encode = encode
        self.decode = decode


_CODECS: dict[type, Codec] = {}


def _elidable_default(default: Any, factory: Any) -> Any:
    """The value a field may be left out at, or ``_MISSING``.

    Only immutable simple defaults and *empty builtin* factories (``list``, ``dict``, ...)
    qualify; user factories are never called here.
    """
    if factory is not None and factory is not _MISSING and factory is not dataclasses.MISSING:
        return factory() if factory in _EMPTY_FACTORIES else _MISSING
    if type(default) in _SIMPLE_DEFAULT_TYPES or (type(default) is tuple and not default):
        return default
    return _MISSING


def _state_dict(p: list[Any], what: str) -> dict[str, Any]:
    if len(p) < 2 or type(p[1]) is not dict:
        raise CorruptCheckpointError(f"malformed {what} record in checkpoint data")
    return p[1]


# The instance attributes model_construct sets; the fast rebuild below sets the same ones
# and is only used while pydantic's BaseModel still has exactly these slots.
_PYDANTIC_SLOTS: Final = (
    "__dict__",
    "__pydantic_fields_set__",
    "__pydantic_extra__",
    "__pydantic_private__",
)


def plain_pydantic_model(cls: Any) -> bool:
    """Whether instances of the pydantic model ``cls`` can be rebuilt by setting its four
    slots (what ``model_construct`` does): no ``model_post_init``, not a root model, and
    pydantic's ``BaseModel`` still has exactly those slots."""
    from pydantic import BaseModel

    return (
        getattr(BaseModel, "__slots__", None) == _PYDANTIC_SLOTS
        and getattr(cls, "__pydantic_post_init__", None) is None
        and not getattr(cls, "__pydantic_root_model__", False)
    )


def _pydantic_codec(cls: Any, wire: int | str) -> Codec:
    from pydantic_core import PydanticUndefined

    fields = cls.__pydantic_fields__
    elide: dict[str, Any] = {}
    # (name, default or factory, is_factory, required); defaults only for elidable fields.
    plan: list[tuple[str, Any, bool, bool]] = []
    for name, info in fields.items():
        default = _MISSING if info.default is PydanticUndefined else info.default
        value = _elidable_default(default, info.default_factory)
        if value is not _MISSING:
            elide[name] = value
            if info.default_factory is not None:
                plan.append((name, info.default_factory, True, False))
            else:
                plan.append((name, value, False, False))
        else:
            plan.append((name, _MISSING, False, info.is_required()))
    is_root = bool(getattr(cls, "__pydantic_root_model__", False))
    allow_extra = cls.model_config.get("extra") == "allow"
    fast = plain_pydantic_model(cls)
    missing = _MISSING
    new = cls.__new__
    setattr_ = object.__setattr__

    def encode(obj: Any) -> list[Any]:
        state = {
            name: value
            for name, value in obj.__dict__.items()
            if (default := elide.get(name, missing)) is missing
            or type(value) is not type(default)
            or value != default
        }
        if not is_root:
            extra = obj.__pydantic_extra__
            if extra:
                state.update(extra)
        fields_set = obj.__pydantic_fields_set__
        if fields_set == state.keys():
            return [wire, state]
        return [wire, state, sorted(fields_set)]

    def rebuild_slow(state: dict[str, Any], fields_set: set[str]) -> Any:
        values = dict(state)
        for name, default, is_factory, _ in plan:
            if name not in values and default is not missing:
                values[name] = default() if is_factory else default
        return cls.model_construct(fields_set, **values)

    # The fast rebuild starts from a template holding every field in declaration order
    # (so ``__dict__``, ``repr`` and ``model_dump`` keep the field order), puts fresh empty
    # containers where a field's default is an empty-builtin factory, and lays the stored
    # values over it with one ``dict.update``: no per-field Python loop on the hot path.
    template: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []  # fields whose elided default is made per object
    required: list[str] = []  # fields without a default: absent ones stay unset
    computed: list[str] = []  # defaults this module cannot elide (user factories, ...)
    for name, default, is_factory, is_required in plan:
        template[name] = missing
        if default is missing:
            (required if is_required else computed).append(name)
        elif is_factory:
            factories.append((name, default))
        else:
            template[name] = default
    n_fields = len(fields)

    def decode(p: list[Any]) -> Any:
        # Same result as model_construct (no validation: the values were validated when
        # the object was made), without its per-call signature inspection of factories.
        state = p[1] if len(p) > 1 else None
        if type(state) is not dict:
            raise CorruptCheckpointError("malformed pydantic model record in checkpoint data")
        fields_set = set(p[2]) if len(p) > 2 else set(state)
        if not fast:
            return rebuild_slow(state, fields_set)
        values = template.copy()
        for name, factory in factories:
            values[name] = factory()
        values.update(state)
        extra = None
        if len(values) != n_fields:  # stored keys that are not fields (any more)
            extra = {k: values.pop(k) for k in list(values) if k not in fields}
            if not allow_extra:
                extra = None
            elif not all(type(k) is str for k in extra):
                raise CorruptCheckpointError("malformed pydantic model record")
        elif allow_extra:
            extra = {}
        for name in required:
            if values[name] is missing:
                del values[name]
        for name in computed:
            if values[name] is missing:
                known = {k: v for k, v in values.items() if v is not missing}
                values[name] = fields[name].get_default(
                    call_default_factory=True, validated_data=known
                )
        obj = new(cls)
        setattr_(obj, "__dict__", values)
        setattr_(obj, "__pydantic_fields_set__", fields_set)
        setattr_(obj, "__pydantic_extra__", extra)
        setattr_(obj, "__pydantic_private__", None)
        return obj

    return Codec(cls, encode, decode)


def _dataclass_codec(cls: Any, wire: int | str) -> Codec:
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    init_names = [f.name for f in fields if f.init]
    elide = {}
    for f in fields:
        if f.init:
            value = _elidable_default(f.default, f.default_factory)
            if value is not _MISSING:
                elide[f.name] = value
    use_init = bool(getattr(cls, "__dataclass_params__", None) and cls.__dataclass_params__.init)
    if use_init:
        try:  # a hand-written __init__ that does not take the fields: rebuild without it
            inspect.signature(cls).bind_partial(**dict.fromkeys(init_names))
        except (TypeError, ValueError):
            use_init = False
    after_init = [f.name for f in fields if not f.init] if use_init else names
    missing = _MISSING

    def encode(obj: Any) -> list[Any]:
        state: dict[str, Any] = {}
        for name in names:
            value = getattr(obj, name, missing)
            if value is missing:
                continue
            default = elide.get(name, missing)
            if default is not missing and type(value) is type(default) and value == default:
                continue
            state[name] = value
        return [wire, state]

    def decode(p: list[Any]) -> Any:
        state = _state_dict(p, "dataclass")
        if use_init:
            obj = cls(**{k: state[k] for k in init_names if k in state})
        else:
            obj = cls.__new__(cls)
        for name in after_init:
            if name in state:
                object.__setattr__(obj, name, state[name])
        return obj

    return Codec(cls, encode, decode)


def _namedtuple_codec(cls: Any, wire: int | str) -> Codec:
    def encode(obj: Any) -> list[Any]:
        return [wire, *obj]

    def decode(p: list[Any]) -> Any:
        return cls(*p[1:])

    return Codec(cls, encode, decode)


def _enum_codec(cls: Any, wire: int | str) -> Codec:
    def encode(obj: Any) -> list[Any]:
        return [wire, obj.value]

    def decode(p: list[Any]) -> Any:
        if len(p) != 2:
            raise CorruptCheckpointError("malformed enum record in checkpoint data")
        return cls(p[1])

    return Codec(cls, encode, decode)


def _exception_codec(cls: Any, wire: int | str) -> Codec:
    # Builtin exceptions are rebuilt as cls(*args) (their constructors mirror args). Other
    # classes get pickle's state protocol minus the import: BaseException.__new__ with the
    # args, then the instance __dict__, without calling a custom __init__ that may not take
    # its own args back (``MyError(code)`` storing ``args == ("failed with 7",)``).
    call_init = cls.__module__ == "builtins"

    def encode(obj: Any) -> list[Any]:
        state = obj.__dict__
        return [wire, list(obj.args), dict(state)] if state else [wire, list(obj.args)]

    def decode(p: list[Any]) -> Any:
        if len(p) not in (2, 3) or type(p[1]) is not list:
            raise CorruptCheckpointError("malformed exception record in checkpoint data")
        if call_init:
            exc = cls(*p[1])
        else:
            exc = cls.__new__(cls, *p[1])
            exc.args = tuple(p[1])
        if len(p) == 3:
            exc.__dict__.update(_state_dict(p[1:], "exception"))
        return exc

    return Codec(cls, encode, decode)


def _cast_codec(cls: Any, wire: int | str) -> Codec:
    base = next(b for b in CAST_BASES if issubclass(cls, b))
    to_base: Callable[[Any], Any] = _TO_BUILTIN.get(base, base)

    def encode(obj: Any) -> list[Any]:
        return [wire, to_base(obj)]

    def decode(p: list[Any]) -> Any:
        if len(p) != 2:
            raise CorruptCheckpointError("malformed record in checkpoint data")
        return cls(p[1])

    return Codec(cls, encode, decode)


_TO_BUILTIN: Final[dict[type, Callable[[Any], Any]]] = {
    str: str.__str__,
    int: int.__int__,
    float: float.__float__,
    bytes: lambda o: bytes(memoryview(o)),
}


def as_builtin(cls: type) -> tuple[type, Callable[[Any], Any]] | None:
    """For an unregistered plain subclass of a builtin value type (``str``, ``int``,
    ``float``, ``bytes``, ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``): that
    builtin, and a function giving an instance's value as it - what gets stored (and read
    back). None for any other class (enums, NamedTuples, models, ... must be registered)."""
    try:
        kind = classify(cls)
    except TypeError:
        return None
    if kind != "cast":
        return None
    base = next(b for b in CAST_BASES if issubclass(cls, b))
    return base, _TO_BUILTIN.get(base, base)


def _slot_names(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    return names - {"__dict__", "__weakref__"}


def _object_codec(cls: Any, wire: int | str) -> Codec:
    # The state half of pickle's protocol (__getstate__/__setstate__), never __reduce__.
    has_setstate = hasattr(cls, "__setstate__")
    slot_names = _slot_names(cls)

    def encode(obj: Any) -> list[Any]:
        return [wire, obj.__getstate__()]

    def decode(p: list[Any]) -> Any:
        if len(p) != 2:
            raise CorruptCheckpointError("malformed object record in checkpoint data")
        obj = cls.__new__(cls)
        state = p[1]
        if has_setstate:
            obj.__setstate__(state)
            return obj
        slots: Any = None
        if type(state) is tuple and len(state) == 2:
            state, slots = state
        if state is not None:
            if type(state) is not dict:
                raise CorruptCheckpointError("malformed object state in checkpoint data")
            obj.__dict__.update(state)
        if slots is not None:
            if type(slots) is not dict:
                raise CorruptCheckpointError("malformed object state in checkpoint data")
            if not slot_names.issuperset(slots):
                raise CorruptCheckpointError(
                    f"object state in checkpoint data names slots {dotted(cls)} lacks"
                )
            for name, value in slots.items():
                object.__setattr__(obj, name, value)
        return obj

    return Codec(cls, encode, decode)


def _send_codec(cls: Any, wire: int | str) -> Codec:
    def encode(obj: Any) -> list[Any]:
        if obj.timeout is None:
            return [wire, obj.node, obj.arg]
        t = obj.timeout  # a TimeoutPolicy, stored as its three fields
        return [wire, obj.node, obj.arg, [t.run_timeout, t.idle_timeout, t.refresh_on]]

    def decode(p: list[Any]) -> Any:
        if len(p) not in (3, 4):
            raise CorruptCheckpointError("malformed Send record in checkpoint data")
        if len(p) == 3:
            return cls(p[1], p[2])
        t = p[3]
        if isinstance(t, (int, float)):  # written before timeouts were policies
            return cls(p[1], p[2], timeout=t)
        if not isinstance(t, list) or len(t) != 3:
            raise CorruptCheckpointError("malformed Send timeout in checkpoint data")
        return cls(p[1], p[2], timeout=TimeoutPolicy(t[0], t[1], t[2]))

    return Codec(cls, encode, decode)


def _interrupt_codec(cls: Any, wire: int | str) -> Codec:
    def encode(obj: Any) -> list[Any]:
        schema = getattr(obj, "response_schema", None)
        return [wire, obj.value, obj.id] if schema is None else [wire, obj.value, obj.id, schema]

    def decode(p: list[Any]) -> Any:
        if len(p) not in (3, 4):
            raise CorruptCheckpointError("malformed Interrupt record in checkpoint data")
        return cls(p[1], p[2]) if len(p) == 3 else cls(p[1], p[2], response_schema=p[3])

    return Codec(cls, encode, decode)


_KIND_CODECS: Final[dict[str, Callable[[Any, int | str], Codec]]] = {
    "enum": _enum_codec,
    "pydantic": _pydantic_codec,
    "dataclass": _dataclass_codec,
    "namedtuple": _namedtuple_codec,
    "exception": _exception_codec,
    "cast": _cast_codec,
    "object": _object_codec,
}
_SPECIAL_CODECS: Final[dict[type, Callable[[Any, int | str], Codec]]] = {
    Send: _send_codec,
    Interrupt: _interrupt_codec,
}


def codec_for(cls: type) -> Codec:
    codec = _CODECS.get(cls)
    if codec is None:
        BUILTINS.ensure()
        wire = BUILTINS.wire.get(cls)
        key = type_key(cls)
        make = _SPECIAL_CODECS.get(cls) if wire is not None else None
        if make is None:
            make = _KIND_CODECS[classify(cls)]
        codec = make(cls, key if wire is None else wire)
        _CODECS[cls] = codec
    return codec

