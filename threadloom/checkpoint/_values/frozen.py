"""Frozen values: a process-local copy of a checkpointed value that every read thaws anew.

Why: a saver's value cache must hand every reader a value of its own. The canonical
human-in-the-loop edit does ``msg = graph.get_state(cfg).values["messages"][-1]``,
changes ``msg.tool_calls[0]["args"]`` in place and passes ``msg`` to ``update_state``;
had the cache shared ``msg`` with its readers, that edit would also rewrite the stored
history this process reads back (and only this process). Decoding the stored bytes again
on every read is correct but slow (a 200-message thread costs 200 extension hooks and
nested unpacks); ``copy.deepcopy`` is slower still.

How: ``freeze(value)`` pickles the value's plain data (``None``/bool/int/float/str/bytes,
lists, tuples, dicts, sets) - replacing each top-level pydantic model (a langchain
message) by its ``__dict__`` and remembering its class and ``fields_set`` - with a
pickler that refuses every other object. ``Frozen.thaw()`` unpickles that in one C call
(every container comes out new; the many equal dict keys of a message list come out as
one shared string, so a thaw allocates about half what msgpack's unpacker does) and
rebuilds the models around their fresh ``__dict__`` exactly as ``model_construct`` would.
Anything else (a subclass of a builtin, a dataclass, a model nested inside another, a
private attribute) makes ``freeze`` return ``None``: such values are decoded from their
stored bytes on every read instead.

Why pickle is safe here, when the stored format avoids it: these bytes are made by this
process a moment before, from values checked to be builtins only, and are never stored
nor read from anywhere else; unpickling builtins runs no code.
"""

from __future__ import annotations

import functools
import io
import pickle
import sys
from collections.abc import Callable
from typing import Any

from threadloom.checkpoint.serde.codecs import plain_pydantic_model

__all__ = ["Frozen", "freeze", "item_states", "state_bytes"]

_setattr = object.__setattr__
_new: Callable[[type], Any] = object.__new__
# (class, fields_set, has extra fields), interned: a cache holding many versions of a long
# message list keeps one pointer per item, not a tuple and a frozenset each.
_Shape = tuple[type, frozenset[str], bool]
_shapes: dict[_Shape, _Shape] = {}

_NOT_A_MODEL: Any = ()
_OPAQUE: Any = (None,)
_kinds: dict[type, tuple[Any, ...]] = {}


def _builds_with_object_new(cls: type[Any]) -> bool:
    """Whether ``cls`` leaves ``__new__`` to ``object`` (so a thaw may call it directly)."""
    new: object = cls.__new__
    return new is object.__new__


def _kind(cls: type[Any]) -> tuple[Any, ...]:
    """What ``cls`` is here (cached): ``_NOT_A_MODEL``; ``_OPAQUE``, a pydantic model
    whose state is more than its four slots (a custom ``__new__``, ``model_post_init``, a
    root model - what the msgpack serializer does not rebuild without running code
    either); or a plain model, as the head of its ``item_states`` entry."""
    kind = _kinds.get(cls)
    if kind is None:
        if not hasattr(cls, "__pydantic_fields__"):
            kind = _NOT_A_MODEL
        elif plain_pydantic_model(cls) and _builds_with_object_new(cls):
            kind = (1, cls.__module__, cls.__qualname__)
        else:
            kind = _OPAQUE
        _kinds[cls] = kind
    return kind


@functools.cache
def _slot_setters() -> tuple[Callable[[Any, Any], None], ...]:
    """The ``__set__`` of pydantic's three ``BaseModel`` slots: calling a slot descriptor
    directly is cheaper than ``object.__setattr__`` by name (it skips the lookup)."""
    from pydantic import BaseModel

    slots = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
    return tuple(vars(BaseModel)[name].__set__ for name in slots)


_loads = pickle.loads
_intern = sys.intern


class _NotPlain(Exception):
    """An object that is not an exact builtin: its value is not frozen."""


class _PlainPickler(pickle.Pickler):
    """Pickles builtins only. The C pickler handles exact ``None``, bool, int, float,
    str, bytes, bytearray, list, tuple, dict, set and frozenset itself and asks
    ``reducer_override`` about everything else - subclasses of those included."""

    def reducer_override(self, obj: Any) -> Any:
        raise _NotPlain(type(obj).__name__)


class Frozen:
    """An immutable snapshot of a value; ``thaw()`` returns a new, independent copy."""

    __slots__ = ("blob", "length", "shapes", "single", "size")

    def __init__(
        self, blob: bytes, shapes: list[_Shape | None], single: bool, length: int
    ) -> None:
        self.blob = blob
        self.shapes = shapes  # per item: how to rebuild its model, or None (plain data)
        self.single = single  # the value is one item, not a list of them
        self.length = length  # items in the list (1 for a single value)
        self.size = len(blob) + 8 * len(shapes) + 64

    def thaw(self) -> Any:
        items = _loads(self.blob)
        set_fields, set_extra, set_private = _slot_setters()
        for index, shape in enumerate(self.shapes):
            if shape is None:
                continue
            cls, fields_set, has_extra = shape
            state = items[index]
            obj = _new(cls)
            if has_extra:
                _setattr(obj, "__dict__", state[0])
                set_extra(obj, state[1])
            else:
                _setattr(obj, "__dict__", state)
                set_extra(obj, None)
            set_fields(obj, set(fields_set))
            set_private(obj, None)
            items[index] = obj
        return items[0] if self.single else items


def freeze(value: Any) -> Frozen | None:
    """A ``Frozen`` copy of ``value``, or ``None`` when it holds anything but plain data
    and top-level pydantic models (see the module docstring)."""
    single = type(value) is not list
    items = [value] if single else value
    plain: list[Any] = []
    shapes: list[_Shape | None] = []
    for item in items:
        cls = type(item)
        kind = _kind(cls)
        if kind is _NOT_A_MODEL:
            plain.append(item)  # builtins, or the pickler refuses it
            shapes.append(None)
            continue
        if kind is _OPAQUE or item.__pydantic_private__ is not None:
            return None
        extra = item.__pydantic_extra__
        # one string object per field name, whichever decoder made the dict: the pickle
        # writes each name once and every thaw shares it (a memo reference) instead of
        # allocating it anew for every message
        state = {_intern(name): value for name, value in item.__dict__.items()}
        plain.append(state if extra is None else [state, extra])
        shape = (cls, frozenset(item.__pydantic_fields_set__), extra is not None)
        shapes.append(_shapes.setdefault(shape, shape))
    blob = _pickle_plain(plain, memo=True)
    if blob is None:
        return None
    if not any(shapes):
        shapes = []  # plain data only: nothing to rebuild
    return Frozen(blob, shapes, single, len(items))


def item_states(items: list[Any]) -> list[Any] | None:
    """What ``state_bytes`` pickles for each of ``items``: a plain model's class, fields,
    extras and fields set, anything else as it is (the pickler then checks it is plain
    data); ``None`` when an item is a pydantic model that is not plain."""
    # lists of plain data are common: one C-level pass over their types finds them (a
    # list that starts with a model - a message list - is not one: no need to look)
    first = type(items[0]) if items else None
    if first is None or first is tuple or _kind(first) is _NOT_A_MODEL:
        kinds = set(map(type, items))
        if tuple not in kinds and all(_kind(cls) is _NOT_A_MODEL for cls in kinds):
            return items if type(items) is list else list(items)  # each state is the item
    states: list[Any] = []
    append = states.append
    for item in items:
        cls = type(item)
        head = _kind(cls)
        if head is _NOT_A_MODEL:
            append((0, item) if cls is tuple else item)
        elif head is _OPAQUE or item.__pydantic_private__ is not None:
            return None
        else:
            append(
                (
                    *head,
                    item.__dict__,
                    item.__pydantic_extra__,
                    sorted(item.__pydantic_fields_set__),
                )
            )
    return states


def state_bytes(states: list[Any]) -> bytes | None:
    """Bytes that change whenever any of the ``item_states`` do, for telling whether a
    list was changed in place (``delta``); ``None`` when a state is not plain data.

    A pickle without pickle's memo, so equal states give equal bytes however their
    objects happen to be shared (a decoded copy shares its field names, a live message
    may not).
    """
    return _pickle_plain(states, memo=False)


def _pickle_plain(value: Any, *, memo: bool) -> bytes | None:
    """``value`` pickled if it is plain data, else ``None``. Without ``memo`` an object
    met twice is written twice (and a cycle raises ValueError: ``None``)."""
    buffer = io.BytesIO()
    pickler = _PlainPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = not memo
    try:
        pickler.dump(value)
    except (_NotPlain, pickle.PicklingError, RecursionError, ValueError):
        return None
    return buffer.getvalue()
