"""Channels that collect many writes: ``Topic`` (a list per step) and the join barrier."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from threadloom.channels.base import MISSING, BaseChannel
from threadloom.errors import EmptyChannelError, InvalidUpdateError


class Topic(BaseChannel):
    """Collects all writes of a step into a list (lists written are flattened).

    With ``accumulate=False`` the list starts empty at every step that writes; a step with
    no writes clears it. Used for ``Send`` packets.
    """

    __slots__ = ("accumulate",)

    def __init__(self, typ: Any = Any, accumulate: bool = False, key: str = "") -> None:
        super().__init__(typ, key)
        self.accumulate = accumulate
        self.value = MISSING

    def update(self, values: Sequence[Any]) -> bool:
        current = list(self.value) if (self.accumulate and self.value is not MISSING) else []
        for v in values:
            if isinstance(v, list):
                current.extend(v)
            else:
                current.append(v)
        changed = bool(values) or (self.value is not MISSING and not self.accumulate)
        self.value = current if current else MISSING
        return changed

    @property
    def ValueType(self) -> Any:  # noqa: N802 - LangGraph's name
        return Sequence[self.typ]  # type: ignore[name-defined]

    @property
    def UpdateType(self) -> Any:  # noqa: N802 - LangGraph's name
        return self.typ | list[self.typ]  # type: ignore[name-defined]

    def get(self) -> Any:
        if self.value is MISSING:
            raise EmptyChannelError(self.key)
        return self.value


class NamedBarrierValue(BaseChannel):
    """Becomes available once every name in ``names`` has written: ``add_edge([a, b], c)``."""

    __slots__ = ("names",)

    def __init__(self, typ: Any = Any, names: Iterable[str] = (), key: str = "") -> None:
        super().__init__(typ, key)
        self.names = frozenset(names)
        self.value = frozenset()

    def update(self, values: Sequence[Any]) -> bool:
        seen = set(self.value)
        changed = False
        for name in values:
            if name not in self.names:
                raise InvalidUpdateError(
                    f"At key '{self.key}': barrier got '{name}', expected one of "
                    f"{sorted(self.names)}."
                )
            if name not in seen:
                seen.add(name)
                changed = True
        self.value = frozenset(seen)
        return changed

    def is_available(self) -> bool:
        return bool(self.value == self.names)

    def get(self) -> Any:
        if not self.is_available():
            raise EmptyChannelError(self.key)
        return None

    def checkpoint(self) -> Any:
        return sorted(self.value) if self.value else MISSING

    def from_checkpoint(self, value: Any) -> BaseChannel:
        new = self.copy()
        new.value = frozenset() if value is MISSING else frozenset(value)
        return new

    def consume(self) -> bool:
        if self.value == self.names:
            self.value = frozenset()
            return True
        return False


class NamedBarrierValueAfterFinish(NamedBarrierValue):
    """A barrier that, once every name has written, still waits for ``finish()`` (the
    run having nothing else to do) before it becomes available: deferred joins."""

    __slots__ = ("finished",)

    def __init__(self, typ: Any = Any, names: Iterable[str] = (), key: str = "") -> None:
        super().__init__(typ, names, key)
        self.finished = False

    def is_available(self) -> bool:
        return self.finished and self.value == self.names

    def finish(self) -> bool:
        if not self.finished and self.value == self.names:
            self.finished = True
            return True
        return False

    def checkpoint(self) -> Any:
        return (sorted(self.value), self.finished) if self.value else MISSING

    def from_checkpoint(self, value: Any) -> BaseChannel:
        new = self.copy()
        if value is MISSING:
            new.value, new.finished = frozenset(), False  # type: ignore[attr-defined]
        else:
            seen, finished = value
            new.value, new.finished = frozenset(seen), finished  # type: ignore[attr-defined]
        return new

    def consume(self) -> bool:
        if self.finished and self.value == self.names:
            self.value = frozenset()
            self.finished = False
            return True
        return False
