"""The default checkpoint serializer: compact msgpack with an explicit type allowlist.

Why not pickle
--------------
Checkpoints outlive the process that wrote them and usually sit in a shared store (a
database, a file, an object store). Unpickling runs whatever code the bytes ask for, so
anyone able to write to the store could run code in every worker that reads it. This
serializer only ever rebuilds

* msgpack's native values (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``,
  ``list``, ``dict``),
* a fixed set of standard-library value types (tuples, sets, datetimes, UUIDs, ...),
* classes on an allowlist: the built-in one (langchain_core messages and ``Document``,
  threadloom's ``Send``/``Interrupt``/``Command``/..., builtin exceptions) plus the classes
  registered with :func:`register_type` or ``MsgpackSerializer(allowed_types=...)``,
* and, unless the serializer is strict (the savers' default serializer is not, like
  LangGraph's), pydantic models, dataclasses, NamedTuples and enums of modules the reading
  process has *already imported* (or classes it stored itself), rebuilt through their
  codecs; see ``MsgpackSerializer(strict=...)``.

A stored object names its class by a key (``"module:qualname"``, or a small integer for
the built-in allowlist). On load the key is only *looked up* in the registry; an unknown
key is an :class:`UnknownTypeError`. No module named by stored bytes is ever imported and
no callable named by stored bytes is ever called. Pickle is used in exactly one case: the
caller built the serializer with ``pickle_fallback=True`` (see :class:`MsgpackSerializer`).

Why msgpack
-----------
Binary and compact: small ints take one byte, strings carry a length prefix instead of
quotes and escapes, ``bytes`` are stored raw. Values msgpack has no native type for are
msgpack *extension* records (``ExtType(code, payload)``) whose payload is itself msgpack.
Registered objects store only their fields, and fields still at a simple default (``None``,
``""``, ``[]``, ``{}``, ...) are left out, so a ``HumanMessage("hi")`` costs about 14 bytes.

Wire format (``"msgpack"`` tag)
-------------------------------
========  ===========================================================================
ext code  payload
========  ===========================================================================
1         int outside 64 bits: big-endian two's complement bytes
2/3/4     tuple / set / frozenset: packed list of items
5         bytearray: raw bytes (read only; see below)
6         datetime: ``[y, mo, d, h, mi, s, us]`` + ``[tzinfo]`` + ``[fold]`` if needed
7/8/9     date ``[y, m, d]`` / time ``[h, m, s, us, tz?, fold?]`` / timedelta ``[d, s, us]``
10        datetime.timezone: ``[offset_us]`` or ``[offset_us, name]``
11        zoneinfo.ZoneInfo: key (str)
12        UUID: 16 raw bytes
13        Decimal: ASCII text
14        pathlib path: ``[flavour, str]``
15        deque: ``[items, maxlen]``
16        complex: ``[real, imag]``
17        OrderedDict: packed map
32        allowlisted object: ``[type key, *state]`` (see ``_Codec``)
========  ===========================================================================

``bytearray`` and ``memoryview`` values are packed by msgpack's C packer as ``bin`` before
any hook can see them, so they are read back as ``bytes``.

Nesting depth
-------------
Every extension record is packed and unpacked by a nested msgpack call, and each nested
call costs tens of kilobytes of C stack: a few hundred levels exhaust a thread's stack and
kill the process outright (no Python exception can catch that). So extension records may
nest at most :data:`MAX_NESTING_DEPTH` levels deep (plain lists and dicts do not count:
msgpack nests those without recursion). Writing a deeper value raises
:class:`~threadloom.checkpoint.serde.base.NestingTooDeepError`; reading deeper bytes (only
forged or damaged data can be) raises
:class:`~threadloom.checkpoint.serde.base.CorruptCheckpointError`.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import importlib
import inspect
import logging
import os
import pathlib
import sys
import threading
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import msgpack

from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.serde.base import (
    CorruptCheckpointError,
    NestingTooDeepError,
    PickleNotAllowedError,
    SerdeError,
    UnknownTypeError,
    UnregisteredTypeError,
)
from threadloom.types import Interrupt, Send, TimeoutPolicy

__all__ = [
    "DEFAULT_REGISTRY",
    "MAX_NESTING_DEPTH",
    "MsgpackSerializer",
    "TypeRegistry",
    "default_serializer",
    "register_type",
    "strict_by_default",
    "type_key",
]

logger = logging.getLogger("threadloom.checkpoint.serde")

T = TypeVar("T", bound=type)

# -- extension codes (part of the stored format: never renumber) -------------------------

EXT_BIGINT: Final = 1
EXT_TUPLE: Final = 2
EXT_SET: Final = 3
EXT_FROZENSET: Final = 4
EXT_BYTEARRAY: Final = 5
EXT_DATETIME: Final = 6
EXT_DATE: Final = 7
EXT_TIME: Final = 8
EXT_TIMEDELTA: Final = 9
EXT_TIMEZONE: Final = 10
EXT_ZONEINFO: Final = 11
EXT_UUID: Final = 12
EXT_DECIMAL: Final = 13
EXT_PATH: Final = 14
EXT_DEQUE: Final = 15
EXT_COMPLEX: Final = 16
EXT_ORDEREDDICT: Final = 17
EXT_OBJECT: Final = 32

MAX_NESTING_DEPTH: Final = 64
"""How deep extension records (tuples, sets, datetimes, registered objects, ...) may nest
inside one another, on write and on read (see the module docstring)."""


class _Depth(threading.local):
    """How many nested msgpack calls this thread is inside (per serializer)."""

    value = 0

# Compact ids of the built-in allowlist, written instead of the "module:qualname" key.
# APPEND ONLY: an index, once released, is part of the stored format.
_BUILTIN_TABLE: Final[tuple[str, ...]] = (
    "langchain_core.messages:AIMessage",  # 0
    "langchain_core.messages:AIMessageChunk",
    "langchain_core.messages:HumanMessage",
    "langchain_core.messages:HumanMessageChunk",
    "langchain_core.messages:SystemMessage",
    "langchain_core.messages:SystemMessageChunk",  # 5
    "langchain_core.messages:ChatMessage",
    "langchain_core.messages:ChatMessageChunk",
    "langchain_core.messages:FunctionMessage",
    "langchain_core.messages:FunctionMessageChunk",
    "langchain_core.messages:ToolMessage",  # 10
    "langchain_core.messages:ToolMessageChunk",
    "langchain_core.messages:RemoveMessage",
    "langchain_core.documents:Document",
    "threadloom.types:Send",
    "threadloom.types:Interrupt",  # 15
    "threadloom.types:Command",
    "threadloom.types:Overwrite",
    "threadloom.types:PregelTask",
    "threadloom.types:StateSnapshot",
    "threadloom.types:StateUpdate",  # 20
    "threadloom.types:GraphOutput",
    "threadloom.checkpoint.serde.types:_DeltaSnapshot",
)

# Modules whose every message class / exception class is allowlisted by name.
_MESSAGES_MODULE: Final = "langchain_core.messages"
_ERRORS_MODULE: Final = "threadloom.errors"

# Types msgpack or this module encode without a registry entry; registering them is a no-op.
_NATIVE_TYPES: Final[frozenset[type]] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        str,
        bytes,
        list,
        dict,
        tuple,
        set,
        frozenset,
        bytearray,
        complex,
        dt.datetime,
        dt.date,
        dt.time,
        dt.timedelta,
        dt.timezone,
        ZoneInfo,
        uuid.UUID,
        decimal.Decimal,
        deque,
        OrderedDict,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        pathlib.PosixPath,
        pathlib.WindowsPath,
    }
)

_PATH_FLAVOURS: Final[tuple[type[pathlib.PurePath], ...]] = (
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.PosixPath,
    pathlib.WindowsPath,
)
_PATH_INDEX: Final = {cls: i for i, cls in enumerate(_PATH_FLAVOURS)}

_CAST_BASES: Final[tuple[type, ...]] = (dict, list, tuple, set, frozenset, str, bytes, int, float)
_EMPTY_FACTORIES: Final[frozenset[Any]] = frozenset({list, dict, set, tuple, frozenset, str, bytes})
_SIMPLE_DEFAULT_TYPES: Final[frozenset[type]] = frozenset({type(None), bool, int, str, bytes})
_HEAPTYPE: Final = 1 << 9
_MISSING: Any = object()


def type_key(cls: type) -> str:
    """The registry key of ``cls``: ``"module:qualname"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- what kind of class is this? --------------------------------------------------------


def _is_pydantic_model(cls: type) -> bool:
    if not hasattr(cls, "__pydantic_fields__"):
        return False
    from pydantic import BaseModel

    return issubclass(cls, BaseModel)


def _classify(cls: type) -> str:
    """How instances of ``cls`` are stored; raises ``TypeError`` if they cannot be."""
    if not isinstance(cls, type):
        raise TypeError(f"register_type() takes classes, got {cls!r}.")
    if issubclass(cls, enum.Enum):
        return "enum"
    if _is_pydantic_model(cls):
        return "pydantic"
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return "namedtuple"
    if issubclass(cls, BaseException):
        return "exception"
    if issubclass(cls, defaultdict):
        raise TypeError(
            f"{_dotted(cls)} cannot be stored: its default_factory cannot be rebuilt "
            "safely. Convert it with dict(value) before returning it from a node."
        )
    if not cls.__flags__ & _HEAPTYPE:
        raise TypeError(
            f"{_dotted(cls)} cannot be registered: it is a built-in/extension type with no "
            "field state to store. Store plain data (a name, an id, a dict) instead."
        )
    if issubclass(cls, _CAST_BASES):
        return "cast"
    return "object"


# -- registries --------------------------------------------------------------------------

_registry_lock = threading.RLock()
# Bumped by every registration anywhere, so serializers can drop caches that may be stale
# (a class re-registered under the same key after a module reload).
_generation = 0


class TypeRegistry:
    """A set of classes whose instances may be written to and rebuilt from checkpoints.

    Keys are ``"module:qualname"``; registering a second class under the same key (a
    module reload, a class redefined in a notebook) replaces the first for loading.
    """

    def __init__(self, types: Iterable[type] = ()) -> None:
        self._by_key: dict[str, type] = {}
        self._keys: dict[type, str] = {}
        self.add(*types)

    def add(self, *types: type) -> None:
        """Allow ``types``. Raises ``TypeError`` for classes that cannot be stored."""
        global _generation
        for cls in types:
            if isinstance(cls, type) and cls in _NATIVE_TYPES:
                continue
            _classify(cls)
            key = type_key(cls)
            with _registry_lock:
                self._keys[cls] = key
                self._by_key[key] = cls
                _generation += 1

    def get(self, key: str) -> type | None:
        """The class registered under ``key``, if any."""
        return self._by_key.get(key)

    def __contains__(self, cls: object) -> bool:
        return cls in self._keys

    def __iter__(self) -> Iterator[type]:
        return iter(list(self._keys))

    def __len__(self) -> int:
        return len(self._keys)


DEFAULT_REGISTRY: Final = TypeRegistry()
"""The process-wide registry every :class:`MsgpackSerializer` consults."""


def register_type(*types: T) -> T:
    """Allow instances of ``types`` in every checkpoint serializer of this process.

    Call it at import time, next to the class definitions, so that both the process that
    writes a checkpoint and the one that reads it know the class::

        from threadloom.checkpoint.serde import register_type

        @register_type
        class Ticket(BaseModel):
            id: int
            title: str

        register_type(Priority, Invoice)  # several at once

    Supported: pydantic v2 models, dataclasses, NamedTuples, Enum classes, exceptions,
    subclasses of dict/list/str/int/..., and plain classes (their ``__dict__``/slots or
    ``__getstate__``/``__setstate__`` state). Returns the first type, so it works as a
    class decorator. To allow a class for one saver only, use
    ``MsgpackSerializer(allowed_types=[...])`` or ``serializer.register(...)`` instead.
    """
    if not types:
        raise TypeError("register_type() needs at least one class.")
    DEFAULT_REGISTRY.add(*types)
    return types[0]


class _Builtins:
    """The built-in allowlist, loaded on first need (it imports langchain_core)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = False
        self.wire: dict[type, int | str] = {}
        self.by_key: dict[int | str, type] = {}

    def ensure(self) -> None:
        if self.loaded:
            return
        with self.lock:
            if not self.loaded:
                self._load()
                self.loaded = True

    def _add(self, cls: type, wire: int | str, *aliases: str) -> None:
        self.wire.setdefault(cls, wire)
        self.by_key.setdefault(wire, cls)
        for alias in (*aliases, type_key(cls)):
            self.by_key.setdefault(alias, cls)

    def _load(self) -> None:
        for name, obj in vars(builtins).items():
            if isinstance(obj, type) and issubclass(obj, BaseException):
                self._add(obj, f"builtins:{name}")
        # Only the constant module names of this file are imported here.
        for index, key in enumerate(_BUILTIN_TABLE):
            module_name, _, attr = key.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError:  # pragma: no cover - optional dependency missing
                continue
            cls = getattr(module, attr, None)
            if isinstance(cls, type):
                self._add(cls, index, key)
        try:
            messages = importlib.import_module(_MESSAGES_MODULE)
            base_message = messages.BaseMessage
        except (ImportError, AttributeError):  # pragma: no cover - langchain_core missing
            pass
        else:
            for name in getattr(messages, "__all__", ()):
                obj = getattr(messages, name, None)
                if isinstance(obj, type) and issubclass(obj, base_message):
                    key = f"{_MESSAGES_MODULE}:{name}"
                    self._add(obj, key)
        try:
            errors = importlib.import_module(_ERRORS_MODULE)
        except ImportError:  # pragma: no cover
            return
        for obj in vars(errors).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__ == _ERRORS_MODULE
            ):
                self._add(obj, type_key(obj))


_BUILTINS = _Builtins()


# -- unregistered classes (non-strict serializers) ----------------------------------------

# The kinds of class a non-strict serializer stores without registration: their codecs
# rebuild them from field values through the class itself (constructor, model_construct,
# ``cls(value)``), never through pickle's reduce protocol.
_AUTO_KINDS: Final = frozenset({"enum", "pydantic", "dataclass", "namedtuple"})
_STRICT_ENV: Final = ("THREADLOOM_STRICT_MSGPACK", "LANGGRAPH_STRICT_MSGPACK")

# Classes this process stored without registration, by key: a later read of that key gets
# the same class back even when it cannot be found by name (a class defined in a function).
_written: dict[str, type] = {}
_warned: set[str] = set()


def strict_by_default() -> bool:
    """Whether the default serializers are strict: ``THREADLOOM_STRICT_MSGPACK`` (or
    LangGraph's ``LANGGRAPH_STRICT_MSGPACK``) set to ``1``/``true``/``yes``."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in _STRICT_ENV
    )


def default_serializer() -> MsgpackSerializer:
    """The serializer savers, caches and ``EncryptedSerializer`` use when given none:
    ``MsgpackSerializer(strict=False)`` (LangGraph's default behaviour), or a strict one
    if :func:`strict_by_default` says so."""
    return MsgpackSerializer(strict=strict_by_default())


def _auto_kind(cls: type) -> str | None:
    """The codec kind of ``cls`` if a non-strict serializer may store it unregistered."""
    try:
        kind = _classify(cls)
    except TypeError:
        return None
    return kind if kind in _AUTO_KINDS else None


def _remember_written(cls: type) -> None:
    global _generation
    key = type_key(cls)
    with _registry_lock:
        previous = _written.get(key)
        if previous is not cls:
            _written[key] = cls
            if previous is not None:  # redefined under the same name: drop cached decoders
                _generation += 1


def _resolve_loaded(key: str) -> type | None:
    """The class named by ``key`` (``"module:qualname"``) if this process already has it:
    one it stored itself, or one found by plain dictionary lookups in a module that is
    already imported. Never imports, never calls ``__getattr__`` hooks; only pydantic
    models, dataclasses, NamedTuples and enums qualify, under their own canonical key."""
    cls = _written.get(key)
    if cls is not None:
        return cls
    module_name, sep, qualname = key.partition(":")
    module = sys.modules.get(module_name) if sep else None
    if module is None:
        return None
    obj: Any = module
    for part in qualname.split("."):
        namespace = getattr(obj, "__dict__", None)
        if namespace is None or not hasattr(namespace, "get"):
            return None
        obj = namespace.get(part)
        if obj is None:
            return None
    if not isinstance(obj, type) or type_key(obj) != key or _auto_kind(obj) is None:
        return None
    return obj


# -- per-class codecs ---------------------------------------------------------------------


class _Codec:
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
        self.name = _dotted(cls)
        self.encode = encode
        self.decode = decode


_CODECS: dict[type, _Codec] = {}


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


def _pydantic_codec(cls: Any, wire: int | str) -> _Codec:
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

    return _Codec(cls, encode, decode)


def _dataclass_codec(cls: Any, wire: int | str) -> _Codec:
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

    return _Codec(cls, encode, decode)


def _namedtuple_codec(cls: Any, wire: int | str) -> _Codec:
    def encode(obj: Any) -> list[Any]:
        return [wire, *obj]

    def decode(p: list[Any]) -> Any:
        return cls(*p[1:])

    return _Codec(cls, encode, decode)


def _enum_codec(cls: Any, wire: int | str) -> _Codec:
    def encode(obj: Any) -> list[Any]:
        return [wire, obj.value]

    def decode(p: list[Any]) -> Any:
        if len(p) != 2:
            raise CorruptCheckpointError("malformed enum record in checkpoint data")
        return cls(p[1])

    return _Codec(cls, encode, decode)


def _exception_codec(cls: Any, wire: int | str) -> _Codec:
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

    return _Codec(cls, encode, decode)


def _cast_codec(cls: Any, wire: int | str) -> _Codec:
    base = next(b for b in _CAST_BASES if issubclass(cls, b))
    to_base: Callable[[Any], Any] = _TO_BUILTIN.get(base, base)

    def encode(obj: Any) -> list[Any]:
        return [wire, to_base(obj)]

    def decode(p: list[Any]) -> Any:
        if len(p) != 2:
            raise CorruptCheckpointError("malformed record in checkpoint data")
        return cls(p[1])

    return _Codec(cls, encode, decode)


_TO_BUILTIN: Final[dict[type, Callable[[Any], Any]]] = {
    str: str.__str__,
    int: int.__int__,
    float: float.__float__,
    bytes: lambda o: bytes(memoryview(o)),
}


def _as_builtin(cls: type) -> tuple[type, Callable[[Any], Any]] | None:
    """For an unregistered plain subclass of a builtin value type (``str``, ``int``,
    ``float``, ``bytes``, ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``): that
    builtin, and a function giving an instance's value as it - what gets stored (and read
    back). None for any other class (enums, NamedTuples, models, ... must be registered)."""
    try:
        kind = _classify(cls)
    except TypeError:
        return None
    if kind != "cast":
        return None
    base = next(b for b in _CAST_BASES if issubclass(cls, b))
    return base, _TO_BUILTIN.get(base, base)


def _slot_names(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.update((slots,) if isinstance(slots, str) else slots)
    return names - {"__dict__", "__weakref__"}


def _object_codec(cls: Any, wire: int | str) -> _Codec:
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
                    f"object state in checkpoint data names slots {_dotted(cls)} lacks"
                )
            for name, value in slots.items():
                object.__setattr__(obj, name, value)
        return obj

    return _Codec(cls, encode, decode)


def _send_codec(cls: Any, wire: int | str) -> _Codec:
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

    return _Codec(cls, encode, decode)


def _interrupt_codec(cls: Any, wire: int | str) -> _Codec:
    def encode(obj: Any) -> list[Any]:
        schema = getattr(obj, "response_schema", None)
        return [wire, obj.value, obj.id] if schema is None else [wire, obj.value, obj.id, schema]

    def decode(p: list[Any]) -> Any:
        if len(p) not in (3, 4):
            raise CorruptCheckpointError("malformed Interrupt record in checkpoint data")
        return cls(p[1], p[2]) if len(p) == 3 else cls(p[1], p[2], response_schema=p[3])

    return _Codec(cls, encode, decode)


_KIND_CODECS: Final[dict[str, Callable[[Any, int | str], _Codec]]] = {
    "enum": _enum_codec,
    "pydantic": _pydantic_codec,
    "dataclass": _dataclass_codec,
    "namedtuple": _namedtuple_codec,
    "exception": _exception_codec,
    "cast": _cast_codec,
    "object": _object_codec,
}
_SPECIAL_CODECS: Final[dict[type, Callable[[Any, int | str], _Codec]]] = {
    Send: _send_codec,
    Interrupt: _interrupt_codec,
}


def _codec_for(cls: type) -> _Codec:
    codec = _CODECS.get(cls)
    if codec is None:
        _BUILTINS.ensure()
        wire = _BUILTINS.wire.get(cls)
        key = type_key(cls)
        make = _SPECIAL_CODECS.get(cls) if wire is not None else None
        if make is None:
            make = _KIND_CODECS[_classify(cls)]
        codec = make(cls, key if wire is None else wire)
        _CODECS[cls] = codec
    return codec


def _unregistered(cls: type, *, strict: bool = True) -> UnregisteredTypeError:
    name = _dotted(cls)
    try:
        _classify(cls)
    except TypeError as exc:
        return UnregisteredTypeError(
            f"Cannot store a value of type {name} in a checkpoint. {exc} "
            "Only if you fully trust the checkpoint store, you can opt in to pickle for "
            "such values with MsgpackSerializer(pickle_fallback=True)."
        )
    short = cls.__qualname__
    why = (
        "this serializer is strict (it stores only registered types)"
        if strict and _auto_kind(cls) is not None
        else "only pydantic models, dataclasses, NamedTuples and enums are stored without "
        "registration"
    )
    return UnregisteredTypeError(
        f"Cannot store a value of type {name} in a checkpoint: the type is not registered "
        f"with the serializer and {why}, so that stored bytes can never name arbitrary "
        "code to run. Register it once at import time with "
        f"`from threadloom.checkpoint.serde import register_type; register_type({short})`, "
        f"or for one saver only with `MsgpackSerializer(allowed_types=[{short}])`. "
        "Alternatively, and only if you fully trust the checkpoint store, opt in to pickle "
        "with MsgpackSerializer(pickle_fallback=True)."
    )


# -- the serializer -----------------------------------------------------------------------


def _int_to_bytes(n: int) -> bytes:
    return n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True)


def _expect_list(value: Any, low: int, high: int, what: str) -> list[Any]:
    if type(value) is not list or not low <= len(value) <= high:
        raise CorruptCheckpointError(f"malformed {what} record in checkpoint data")
    return value


def _tz_or_none(value: Any) -> dt.tzinfo | None:
    if value is not None and not isinstance(value, dt.tzinfo):
        raise CorruptCheckpointError("malformed tzinfo in checkpoint data")
    return value


class MsgpackSerializer(SerializerProtocol):
    """Serialize checkpoint values to compact msgpack, rebuilding only allowlisted types.

    ``dumps_typed(obj)`` returns ``(tag, data)``: ``("null", b"")`` for ``None``,
    ``("bytes", obj)`` for ``bytes`` and ``("msgpack", ...)`` for everything else (and
    ``("pickle", ...)`` only with ``pickle_fallback=True``). See the module docstring for
    the supported types and the format.

    Args:
        allowed_types: classes this serializer may store in addition to the built-in
            allowlist and the process-wide registry (:func:`register_type`). More can be
            added later with :meth:`register`.
        pickle_fallback: when a value contains an unregistered type anywhere, pickle the
            whole value (tag ``"pickle"``) instead of raising, and load ``"pickle"``
            values. **Unsafe** unless every writer of the checkpoint store is trusted:
            unpickling runs code chosen by the bytes. Serializers without it refuse
            ``"pickle"`` data and never call into ``pickle``.
        strict: ``True`` (the default of this class): store and rebuild only the allowlist
            above. ``False`` (the savers' default, see :func:`default_serializer`, and
            LangGraph's): also store unregistered pydantic models, dataclasses,
            NamedTuples and enums by their ``"module:qualname"``, and on reading rebuild
            such a class if this process stored it itself or its module is *already
            imported* (looked up in ``sys.modules``; stored bytes never cause an import,
            and the class is rebuilt through its codec, never pickle), logging a warning
            once per class read that way. Any other name is an :class:`UnknownTypeError`.

    How allowlisted classes are stored (only exact classes match, not subclasses):

    * pydantic v2 models: their field values (each encoded by this same serializer, so
      nested registered types survive; fields still at a simple default are left out),
      extra fields and ``model_fields_set``. They are rebuilt like ``model_construct``,
      i.e. **without validation**: the values were validated when the object was made,
      and re-validating would be slow and could change them (coercing or defaulting
      validators). Private attributes are not stored. Message ``tool_calls``, ``id``,
      ``additional_kwargs``, ``response_metadata``, ``usage_metadata`` all round-trip.
    * dataclasses: the fields, rebuilt by calling the class with the ``init`` fields and
      then setting the others (or, if ``__init__`` does not take the fields, setting all).
    * NamedTuples: the items, rebuilt with ``cls(*items)``. Enums: the value, ``cls(value)``.
    * exceptions: ``args`` and ``__dict__``; plain classes: their ``__getstate__`` state.

    A value whose class is an *unregistered* plain subclass of a builtin value type
    (``str``, ``int``, ``float``, ``bytes``, ``dict``, ``list``, ``tuple``, ``set``,
    ``frozenset``; e.g. langchain_core's ``AIMessage.text``, a ``str`` subclass) is stored
    as that builtin and read back as it; register the class to keep it. Enums and
    NamedTuples are not plain subclasses: a strict serializer refuses them unregistered.

    For pydantic models and dataclasses, unknown stored fields are ignored (kept as extras
    by models that allow extras) and missing ones take their defaults, so classes can gain
    and lose fields between writing and reading.
    """

    def __init__(
        self,
        *,
        allowed_types: Iterable[type] = (),
        pickle_fallback: bool = False,
        strict: bool = True,
    ) -> None:
        self.pickle_fallback = pickle_fallback
        self.strict = strict
        self.registry = TypeRegistry(allowed_types)
        self._packb: Callable[[Any], bytes] = functools.partial(
            # A small starting buffer (it grows as needed): the default allocates 256 KiB
            # per call, which dominates peak memory when values nest.
            msgpack.packb, default=self._default, use_bin_type=True, strict_types=True,
            buf_size=1024,
        )
        self._unpackb: Callable[[bytes], Any] = functools.partial(
            msgpack.unpackb,
            ext_hook=self._ext_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )
        self._depth = _Depth()
        self._native_encoders = self._make_native_encoders()
        self._ext_decoders = self._make_ext_decoders()
        self._encoders: dict[type, Callable[[Any], Any]] = {}
        self._decoders: dict[int | str, _Codec] = {}
        self._generation = -1
        self._sync()

    def register(self, *types: type) -> None:
        """Allow instances of ``types`` in this serializer only (see :func:`register_type`)."""
        self.registry.add(*types)

    # -- public protocol ---------------------------------------------------------------

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Encode ``obj`` as ``(tag, data)``.

        Raises :class:`UnregisteredTypeError` (a ``TypeError``) naming any value whose type
        is not allowed, and ``ValueError`` for reference cycles.
        """
        if obj is None:
            return "null", b""
        if type(obj) is bytes:
            return "bytes", obj
        if self._generation != _generation:
            self._sync()
        try:
            return "msgpack", self._packb(obj)
        except UnregisteredTypeError:
            if not self.pickle_fallback:
                raise
        except NestingTooDeepError:
            raise
        except RecursionError:
            raise ValueError(
                "Cannot store the value in a checkpoint: it is nested too deeply or contains "
                "a reference cycle."
            ) from None
        except ValueError as exc:
            if "recursion limit" in str(exc):
                raise ValueError(
                    "Cannot store the value in a checkpoint: it is nested too deeply or "
                    "contains a reference cycle."
                ) from None
            raise
        import pickle  # only reachable with pickle_fallback=True

        return "pickle", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Decode a ``(tag, data)`` pair made by :meth:`dumps_typed`.

        Every failure is a ``ValueError``: :class:`CorruptCheckpointError` for undecodable
        bytes, :class:`UnknownTypeError` for a class not on the allowlist,
        :class:`PickleNotAllowedError` for pickle data without ``pickle_fallback=True``.
        """
        try:
            tag, payload = data
        except (TypeError, ValueError):
            raise CorruptCheckpointError(
                "loads_typed() expects a (type_tag, bytes) pair."
            ) from None
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise CorruptCheckpointError(
                f"checkpoint data must be bytes, got {type(payload).__name__}."
            )
        if tag == "msgpack":
            if self._generation != _generation:
                self._sync()
            try:
                return self._unpackb(payload)
            except SerdeError:
                raise
            except Exception as exc:
                raise CorruptCheckpointError(
                    f"Checkpoint data (tag 'msgpack') is corrupt or was not written by "
                    f"this serializer: {type(exc).__name__}: {exc}"
                ) from exc
        if tag == "null":
            return None
        if tag == "bytes":
            return bytes(payload)
        if tag == "pickle":
            if not self.pickle_fallback:
                raise PickleNotAllowedError(
                    "Refusing to load checkpoint data tagged 'pickle': unpickling runs code "
                    "chosen by whoever wrote the bytes. If this checkpoint store is fully "
                    "trusted, read it with MsgpackSerializer(pickle_fallback=True)."
                )
            import pickle

            try:
                return pickle.loads(payload)
            except Exception as exc:
                raise CorruptCheckpointError(
                    f"Checkpoint data (tag 'pickle') could not be unpickled: {exc}"
                ) from exc
        hint = ""
        if isinstance(tag, str) and "+" in tag:
            hint = " It looks encrypted: read it through an EncryptedSerializer."
        raise CorruptCheckpointError(
            f"Unknown checkpoint type tag {tag!r}: this serializer reads 'null', 'bytes', "
            f"'msgpack' (and 'pickle' with pickle_fallback=True).{hint}"
        )

    def payload_loader(self) -> Callable[[bytes], Any] | None:
        """What ``loads_typed(("msgpack", payload))`` does to a ``bytes`` payload, without
        its per-call checks, for a read that decodes many rows at once (a listing); None
        when a subclass decodes otherwise. Its errors are raw: the caller decodes a row
        that fails through ``loads_typed`` again, for the error that names it. Take a new
        one per batch of rows (it is synchronised with the type registries when taken).
        """
        if type(self).loads_typed is not MsgpackSerializer.loads_typed:
            return None
        if self._generation != _generation:
            self._sync()
        return self._unpackb

    # -- nesting ------------------------------------------------------------------------

    def _pack_nested(self, obj: Any) -> bytes:
        """Pack the payload of an extension record, one level deeper."""
        depth = self._depth
        level = depth.value
        if level >= MAX_NESTING_DEPTH:
            raise NestingTooDeepError(
                f"Cannot store the value in a checkpoint: tuples, sets, datetimes or objects "
                f"in it nest more than {MAX_NESTING_DEPTH} levels deep, or it contains a "
                "reference cycle (a deeper value could not be read back safely). Flatten it, "
                "or use lists and dicts for deep trees."
            )
        depth.value = level + 1
        try:
            return self._packb(obj)
        finally:
            depth.value = level

    def _unpack_nested(self, data: bytes) -> Any:
        """Unpack the payload of an extension record, one level deeper."""
        depth = self._depth
        level = depth.value
        if level >= MAX_NESTING_DEPTH:
            raise CorruptCheckpointError(
                f"Checkpoint data nests extension records more than {MAX_NESTING_DEPTH} "
                "levels deep; no value this serializer writes does, so it is forged or "
                "damaged."
            )
        depth.value = level + 1
        try:
            return msgpack.unpackb(
                data, ext_hook=self._ext_hook, raw=False, strict_map_key=False
            )
        finally:
            depth.value = level

    # -- encoding ----------------------------------------------------------------------

    def _sync(self) -> None:
        self._encoders = dict(self._native_encoders)
        self._decoders = {}
        self._generation = _generation

    def _default(self, obj: Any) -> Any:
        encoder = self._encoders.get(obj.__class__)
        if encoder is None:
            encoder = self._encoder_for(obj.__class__)
        return encoder(obj)

    def _encoder_for(self, cls: type) -> Callable[[Any], Any]:
        if cls not in self.registry and cls not in DEFAULT_REGISTRY:
            _BUILTINS.ensure()
            if cls not in _BUILTINS.wire:
                found = _as_builtin(cls)
                if found is None:
                    if self.strict or _auto_kind(cls) is None:
                        raise _unregistered(cls, strict=self.strict)
                    _remember_written(cls)
                    return self._object_encoder(cls)
                base, to_base = found
                native = self._native_encoders.get(base)  # tuple, set, frozenset
                as_builtin = to_base if native is None else lambda o: native(to_base(o))
                self._encoders[cls] = as_builtin
                return as_builtin
        return self._object_encoder(cls)

    def _object_encoder(self, cls: type) -> Callable[[Any], Any]:
        encode = _codec_for(cls).encode
        pack = self._pack_nested
        ext = msgpack.ExtType

        def encoder(obj: Any) -> msgpack.ExtType:
            return ext(EXT_OBJECT, pack(encode(obj)))

        self._encoders[cls] = encoder
        return encoder

    def _make_native_encoders(self) -> dict[type, Callable[[Any], msgpack.ExtType]]:
        pack = self._pack_nested
        ext = msgpack.ExtType

        def enc_datetime(o: dt.datetime) -> msgpack.ExtType:
            parts: list[Any] = [o.year, o.month, o.day, o.hour, o.minute, o.second, o.microsecond]
            if o.tzinfo is not None or o.fold:
                parts.append(o.tzinfo)
            if o.fold:
                parts.append(o.fold)
            return ext(EXT_DATETIME, pack(parts))

        def enc_time(o: dt.time) -> msgpack.ExtType:
            parts: list[Any] = [o.hour, o.minute, o.second, o.microsecond]
            if o.tzinfo is not None or o.fold:
                parts.append(o.tzinfo)
            if o.fold:
                parts.append(o.fold)
            return ext(EXT_TIME, pack(parts))

        def enc_timezone(o: dt.timezone) -> msgpack.ExtType:
            args = o.__getinitargs__()  # type: ignore[attr-defined]
            offset = args[0] // dt.timedelta(microseconds=1)
            return ext(EXT_TIMEZONE, pack([offset, *args[1:]]))

        def enc_zoneinfo(o: ZoneInfo) -> msgpack.ExtType:
            if o.key is None:
                raise UnregisteredTypeError(
                    "Cannot store a ZoneInfo built from a file (it has no key); use "
                    "ZoneInfo('Area/City')."
                )
            return ext(EXT_ZONEINFO, o.key.encode())

        def enc_path(o: pathlib.PurePath) -> msgpack.ExtType:
            return ext(EXT_PATH, pack([_PATH_INDEX[type(o)], str(o)]))

        encoders: dict[type, Callable[[Any], msgpack.ExtType]] = {
            int: lambda o: ext(EXT_BIGINT, _int_to_bytes(o)),
            tuple: lambda o: ext(EXT_TUPLE, pack(list(o))),
            set: lambda o: ext(EXT_SET, pack(list(o))),
            frozenset: lambda o: ext(EXT_FROZENSET, pack(list(o))),
            dt.datetime: enc_datetime,
            dt.date: lambda o: ext(EXT_DATE, pack([o.year, o.month, o.day])),
            dt.time: enc_time,
            dt.timedelta: lambda o: ext(EXT_TIMEDELTA, pack([o.days, o.seconds, o.microseconds])),
            dt.timezone: enc_timezone,
            ZoneInfo: enc_zoneinfo,
            uuid.UUID: lambda o: ext(EXT_UUID, o.bytes),
            decimal.Decimal: lambda o: ext(EXT_DECIMAL, str(o).encode()),
            deque: lambda o: ext(EXT_DEQUE, pack([list(o), o.maxlen])),
            complex: lambda o: ext(EXT_COMPLEX, pack([o.real, o.imag])),
            OrderedDict: lambda o: ext(EXT_ORDEREDDICT, pack(dict(o))),
        }
        for cls in _PATH_FLAVOURS:
            encoders[cls] = enc_path
        return encoders

    # -- decoding ----------------------------------------------------------------------

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == EXT_OBJECT:  # the hot path: one per stored message
            return self._decode_object(data)
        decoder = self._ext_decoders.get(code)
        if decoder is None:
            raise CorruptCheckpointError(
                f"Checkpoint data contains unknown msgpack extension type {code}; it is "
                "corrupt or was written by an incompatible serializer."
            )
        return decoder(data)

    def _make_ext_decoders(self) -> dict[int, Callable[[bytes], Any]]:
        unpack = self._unpack_nested

        def items(data: bytes, what: str) -> list[Any]:
            value = unpack(data)
            if type(value) is not list:
                raise CorruptCheckpointError(f"malformed {what} record in checkpoint data")
            return value

        def dec_bigint(data: bytes) -> int:
            if not data:
                raise CorruptCheckpointError("empty integer record in checkpoint data")
            return int.from_bytes(data, "big", signed=True)

        def dec_datetime(data: bytes) -> dt.datetime:
            v = _expect_list(unpack(data), 7, 9, "datetime")
            tz = _tz_or_none(v[7]) if len(v) > 7 else None
            year, month, day, hour, minute, second, micro = v[:7]
            fold = v[8] if len(v) > 8 else 0
            return dt.datetime(year, month, day, hour, minute, second, micro, tz, fold=fold)

        def dec_time(data: bytes) -> dt.time:
            v = _expect_list(unpack(data), 4, 6, "time")
            tz = _tz_or_none(v[4]) if len(v) > 4 else None
            hour, minute, second, micro = v[:4]
            return dt.time(hour, minute, second, micro, tz, fold=v[5] if len(v) > 5 else 0)

        def dec_timezone(data: bytes) -> dt.timezone:
            v = _expect_list(unpack(data), 1, 2, "timezone")
            offset = dt.timedelta(microseconds=v[0])
            return dt.timezone(offset, *v[1:])

        def dec_path(data: bytes) -> pathlib.PurePath:
            v = _expect_list(unpack(data), 2, 2, "path")
            kind, text = v
            if type(kind) is not int or not 0 <= kind < len(_PATH_FLAVOURS):
                raise CorruptCheckpointError("malformed path record in checkpoint data")
            try:
                return _PATH_FLAVOURS[kind](text)
            except NotImplementedError:  # e.g. a WindowsPath read on Linux
                return _PATH_FLAVOURS[kind % 2](text)

        def dec_deque(data: bytes) -> deque[Any]:
            v = _expect_list(unpack(data), 2, 2, "deque")
            return deque(v[0], v[1])

        def dec_complex(data: bytes) -> complex:
            v = _expect_list(unpack(data), 2, 2, "complex")
            return complex(v[0], v[1])

        def dec_ordereddict(data: bytes) -> OrderedDict[Any, Any]:
            value = unpack(data)
            if type(value) is not dict:
                raise CorruptCheckpointError("malformed OrderedDict record in checkpoint data")
            return OrderedDict(value)

        return {
            EXT_BIGINT: dec_bigint,
            EXT_TUPLE: lambda d: tuple(items(d, "tuple")),
            EXT_SET: lambda d: set(items(d, "set")),
            EXT_FROZENSET: lambda d: frozenset(items(d, "frozenset")),
            EXT_BYTEARRAY: bytearray,
            EXT_DATETIME: dec_datetime,
            EXT_DATE: lambda d: dt.date(*_expect_list(unpack(d), 3, 3, "date")),
            EXT_TIME: dec_time,
            EXT_TIMEDELTA: lambda d: dt.timedelta(*_expect_list(unpack(d), 3, 3, "timedelta")),
            EXT_TIMEZONE: dec_timezone,
            EXT_ZONEINFO: lambda d: ZoneInfo(d.decode()),
            EXT_UUID: lambda d: uuid.UUID(bytes=d),
            EXT_DECIMAL: lambda d: decimal.Decimal(d.decode("ascii")),
            EXT_PATH: dec_path,
            EXT_DEQUE: dec_deque,
            EXT_COMPLEX: dec_complex,
            EXT_ORDEREDDICT: dec_ordereddict,
        }

    def _decode_object(self, data: bytes) -> Any:
        record = self._unpack_nested(data)
        if type(record) is not list or not record:
            raise CorruptCheckpointError("malformed object record in checkpoint data")
        key = record[0]
        if type(key) is not int and type(key) is not str:
            raise CorruptCheckpointError("malformed type key in checkpoint data")
        codec = self._decoders.get(key)
        if codec is None:
            codec = self._decoder_for(key)
        try:
            return codec.decode(record)
        except SerdeError:
            raise
        except Exception as exc:
            raise CorruptCheckpointError(
                f"Could not rebuild a {codec.name} from checkpoint data: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _decoder_for(self, key: int | str) -> _Codec:
        cls: type | None = None
        if type(key) is str:
            cls = self.registry.get(key) or DEFAULT_REGISTRY.get(key)
        if cls is None:
            _BUILTINS.ensure()
            cls = _BUILTINS.by_key.get(key)
        if cls is None and type(key) is str and not self.strict:
            cls = _resolve_loaded(key)
            if cls is not None and key not in _written and key not in _warned:
                _warned.add(key)
                logger.warning(
                    "Rebuilding %s from checkpoint data although it is not registered with "
                    "the serializer; register it (register_type) or list it in "
                    "allowed_msgpack_modules so that a strict serializer reads it too.",
                    _dotted(cls),
                )
        if cls is None:
            if type(key) is int:
                raise UnknownTypeError(
                    f"Checkpoint data names built-in type #{key}, which this version of "
                    "threadloom does not know; it was written by a newer version or is "
                    "corrupt."
                )
            found = (
                "not a pydantic model, dataclass, NamedTuple or enum of an imported module"
                if not self.strict
                else "not registered with this strict serializer"
            )
            raise UnknownTypeError(
                f"Checkpoint data names type {key!r}, which is {found} (stored bytes never "
                "cause imports). If it is your class, import its module before reading, "
                "or register it in the reading process with "
                "`from threadloom.checkpoint.serde import register_type; "
                "register_type(YourClass)`, or pass "
                "`MsgpackSerializer(allowed_types=[YourClass])` / "
                "`JsonPlusSerializer(allowed_msgpack_modules=[(module, name)])`."
            )
        codec = _codec_for(cls)
        self._decoders[key] = codec
        return codec
