"""How one state key takes updates: the channel interface.

A channel holds one value. Once per superstep the engine hands it *all* the writes made
to it in that step (``update``); the channel decides how they combine (keep the last,
reduce, collect, reject duplicates). ``checkpoint()`` / ``from_checkpoint()`` convert it
to and from the plain value a saver stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from threadloom.errors import EmptyChannelError


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Marks an empty channel (``None`` is a legitimate value)."""

_COPIERS: dict[type, Callable[[Any], Any]] = {}  # copy() of each channel class, made once


def _make_copier(cls: type) -> Callable[[Any], Any]:
    """``copy()`` for ``cls``: a new instance with every slot of its classes set from the
    original, as straight-line attribute copies (compiled once per class; channels are
    copied for every checkpoint a run restores)."""
    slots = tuple(slot for klass in cls.__mro__ for slot in getattr(klass, "__slots__", ()))
    lines = ["def copy(self):", "    new = _new(_cls)"]
    lines += [f"    new.{slot} = self.{slot}" for slot in slots]
    lines.append("    return new")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    exec("\n".join(lines), namespace)  # noqa: S102 - slot names are identifiers
    copier: Callable[[Any], Any] = namespace["copy"]
    return copier


def _slot_copier(cls: type) -> Callable[[Any], Any]:
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _make_copier(cls)
    return copier


def copier_of(cls: type) -> Callable[[Any], Any]:
    """What ``channel.copy()`` runs for a channel of class ``cls``, as a function of the
    channel (for code copying many channels at once: no method lookup per channel)."""
    own = getattr(cls, "copy", None)
    if own is None or own is BaseChannel.copy:
        return _slot_copier(cls)
    return own  # type: ignore[no-any-return]


class BaseChannel:
    """A state key's storage and update rule. Subclasses set ``value`` and ``update``."""

    __slots__ = ("key", "typ", "value")

    def __init__(self, typ: Any = Any, key: str = "") -> None:
        self.typ = typ
        self.key = key
        self.value: Any = MISSING

    @property
    def ValueType(self) -> Any:  # noqa: N802 - LangGraph's name
        """The type of the value ``get()`` returns."""
        return self.typ

    @property
    def UpdateType(self) -> Any:  # noqa: N802 - LangGraph's name
        """The type of one write ``update()`` accepts."""
        return self.typ

    def get(self) -> Any:
        if self.value is MISSING:
            raise EmptyChannelError(self.key)
        return self.value

    def is_available(self) -> bool:
        return self.value is not MISSING

    def update(self, values: Sequence[Any]) -> bool:
        """Apply one superstep's writes; return True when the value changed."""
        raise NotImplementedError

    def checkpoint(self) -> Any:
        """The value to store, or ``MISSING`` when there is nothing to store."""
        return self.value

    def from_checkpoint(self, value: Any) -> BaseChannel:
        """A fresh channel like this one holding ``value`` (``MISSING`` for empty)."""
        new = self.copy()
        new.value = value
        return new

    def copy(self) -> BaseChannel:
        new: BaseChannel = _slot_copier(type(self))(self)
        return new

    def consume(self) -> bool:
        """Called after a node triggered by this channel ran; True if the value changed."""
        return False

    def finish(self) -> bool:
        """Called when the run would otherwise end; True if the value changed (channels
        that hold their value back until then release it here)."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, value={self.value!r})"
