"""Which classes a checkpoint serializer may store and rebuild: the registries.

A class gets into a checkpoint only if it is allowed: on the built-in allowlist
(langchain_core messages and ``Document``, threadloom's ``Send``/``Interrupt``/``Command``/...,
builtin and threadloom exceptions: ``BUILTINS``), registered process-wide
(:func:`register_type`, ``DEFAULT_REGISTRY``) or with one serializer (a
:class:`TypeRegistry` of its own), or - for a non-strict serializer - a pydantic model,
dataclass, NamedTuple or enum of a module the process has already imported
(:func:`resolve_unregistered`). A stored object names its class by a key (``type_key``:
``"module:qualname"``, or an index of the built-in table for the allowlist); reading only
*looks the key up* here, never imports a module named by stored bytes.

Why a module of its own: what may be stored is the security boundary of the serializer, and
it is the same whatever the wire format (``msgpack``) or the way one class is taken apart
and rebuilt (``codecs``); it can be read, and audited, on its own.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import logging
import os
import pathlib
import sys
import threading
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import threadloom.errors
import threadloom.types
from threadloom.checkpoint.serde import types as serde_types
from threadloom.checkpoint.serde.base import UnregisteredTypeError

__all__ = [
    "BUILTINS",
    "CAST_BASES",
    "DEFAULT_REGISTRY",
    "NATIVE_TYPES",
    "Builtins",
    "TypeRegistry",
    "auto_kind",
    "classify",
    "dotted",
    "register_type",
    "remember_written",
    "resolve_unregistered",
    "strict_by_default",
    "type_key",
    "unregistered_error",
]

logger = logging.getLogger("threadloom.checkpoint.serde")

T = TypeVar("T", bound=type)

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

# threadloom's own modules of the table, imported as any module is: only langchain_core's,
# an import that takes long and that a process storing no message may never need, is
# imported by name, on first need.
_OWN_MODULES: Final[dict[str, ModuleType]] = {
    "threadloom.types": threadloom.types,
    "threadloom.checkpoint.serde.types": serde_types,
    _ERRORS_MODULE: threadloom.errors,
}


# Types the serializer encodes without a registry entry (msgpack natively, or one of its
# extension records); registering them is a no-op.
NATIVE_TYPES: Final[frozenset[type]] = frozenset(
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


CAST_BASES: Final[tuple[type, ...]] = (dict, list, tuple, set, frozenset, str, bytes, int, float)
"""The builtin value types whose plain subclasses are stored as their ``cast`` codec."""
_HEAPTYPE: Final = 1 << 9


def type_key(cls: type) -> str:
    """The registry key of ``cls``: ``"module:qualname"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- what kind of class is this? --------------------------------------------------------


def _is_pydantic_model(cls: type) -> bool:
    if not hasattr(cls, "__pydantic_fields__"):
        return False
    from pydantic import BaseModel

    return issubclass(cls, BaseModel)


def classify(cls: type) -> str:
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
            f"{dotted(cls)} cannot be stored: its default_factory cannot be rebuilt "
            "safely. Convert it with dict(value) before returning it from a node."
        )
    if not cls.__flags__ & _HEAPTYPE:
        raise TypeError(
            f"{dotted(cls)} cannot be registered: it is a built-in/extension type with no "
            "field state to store. Store plain data (a name, an id, a dict) instead."
        )
    if issubclass(cls, CAST_BASES):
        return "cast"
    return "object"


# -- registries --------------------------------------------------------------------------

_registry_lock = threading.RLock()
# Bumped by every registration anywhere, so serializers can drop caches that may be stale
# (a class re-registered under the same key after a module reload).
generation = 0


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
        global generation
        for cls in types:
            if isinstance(cls, type) and cls in NATIVE_TYPES:
                continue
            classify(cls)
            key = type_key(cls)
            with _registry_lock:
                self._keys[cls] = key
                self._by_key[key] = cls
                generation += 1

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


class Builtins:
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
            module = _OWN_MODULES.get(module_name)
            if module is None:
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
        for obj in vars(threadloom.errors).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__ == _ERRORS_MODULE
            ):
                self._add(obj, type_key(obj))


BUILTINS = Builtins()


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


def auto_kind(cls: type) -> str | None:
    """The codec kind of ``cls`` if a non-strict serializer may store it unregistered."""
    try:
        kind = classify(cls)
    except TypeError:
        return None
    return kind if kind in _AUTO_KINDS else None


def remember_written(cls: type) -> None:
    global generation
    key = type_key(cls)
    with _registry_lock:
        previous = _written.get(key)
        if previous is not cls:
            _written[key] = cls
            if previous is not None:  # redefined under the same name: drop cached decoders
                generation += 1


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
    if not isinstance(obj, type) or type_key(obj) != key or auto_kind(obj) is None:
        return None
    return obj


def resolve_unregistered(key: str) -> type | None:
    """For a non-strict serializer reading ``key``, not found in any registry: the class
    :func:`_resolve_loaded` finds, logging a warning the first time one this process did
    not store itself is read that way; None when there is none."""
    cls = _resolve_loaded(key)
    if cls is not None and key not in _written and key not in _warned:
        _warned.add(key)
        logger.warning(
            "Rebuilding %s from checkpoint data although it is not registered with "
            "the serializer; register it (register_type) or list it in "
            "allowed_msgpack_modules so that a strict serializer reads it too.",
            dotted(cls),
        )
    return cls


def unregistered_error(cls: type, *, strict: bool = True) -> UnregisteredTypeError:
    name = dotted(cls)
    try:
        classify(cls)
    except TypeError as exc:
        return UnregisteredTypeError(
            f"Cannot store a value of type {name} in a checkpoint. {exc} "
            "Only if you fully trust the checkpoint store, you can opt in to pickle for "
            "such values with MsgpackSerializer(pickle_fallback=True)."
        )
    short = cls.__qualname__
    why = (
        "this serializer is strict (it stores only registered types)"
        if strict and auto_kind(cls) is not None
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

