"""Channels that keep one value: the default for a plain state key, and its variants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from threadloom.channels.base import MISSING, BaseChannel
from threadloom.errors import (
    EmptyChannelError,
    ErrorCode,
    InvalidUpdateError,
    create_error_message,
)


class LastValue(BaseChannel):
    """Keeps the last value written. Two writes in one superstep are a conflict.

    Two parallel nodes writing the same plain key would otherwise race; LangGraph raises
    even when the values are equal, and so do we.
    """

    __slots__ = ()

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        if len(values) != 1:
            raise InvalidUpdateError(
                create_error_message(
                    message=(
                        f"At key '{self.key}': Can receive only one value per step. Use an "
                        "Annotated key to handle multiple values, e.g. "
                        f"`{self.key}: Annotated[list, operator.add]`."
                    ),
                    error_code=ErrorCode.INVALID_CONCURRENT_GRAPH_UPDATE,
                )
            )
        self.value = values[-1]
        return True


class LastValueAfterFinish(BaseChannel):
    """Keeps the last value written, but makes it available only after ``finish()`` (the
    run having nothing else to do): the trigger of deferred nodes."""

    __slots__ = ("finished",)

    def __init__(self, typ: Any = Any, key: str = "") -> None:
        super().__init__(typ, key)
        self.finished = False

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        self.finished = False
        self.value = values[-1]
        return True

    def is_available(self) -> bool:
        return self.finished and self.value is not MISSING

    def get(self) -> Any:
        if not self.is_available():
            raise EmptyChannelError(self.key)
        return self.value

    def finish(self) -> bool:
        if not self.finished and self.value is not MISSING:
            self.finished = True
            return True
        return False

    def consume(self) -> bool:
        if self.finished:
            self.finished = False
            self.value = MISSING
            return True
        return False

    def checkpoint(self) -> Any:
        return MISSING if self.value is MISSING else (self.value, self.finished)

    def from_checkpoint(self, value: Any) -> BaseChannel:
        new = self.copy()
        if value is MISSING:
            new.value, new.finished = MISSING, False  # type: ignore[attr-defined]
        else:
            new.value, new.finished = value  # type: ignore[attr-defined]
        return new


class AnyValue(BaseChannel):
    """Keeps the last of possibly several equal writes; a step with no writes clears it."""

    __slots__ = ()

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            if self.value is MISSING:
                return False
            self.value = MISSING
            return True
        self.value = values[-1]
        return True


class EphemeralValue(BaseChannel):
    """A value that lives for one superstep: used for the input and for edge triggers."""

    __slots__ = ("guard",)

    def __init__(self, typ: Any = Any, guard: bool = True, key: str = "") -> None:
        super().__init__(typ, key)
        self.guard = guard

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            if self.value is MISSING:
                return False
            self.value = MISSING
            return True
        if self.guard and len(values) != 1:
            raise InvalidUpdateError(
                f"At key '{self.key}': EphemeralValue(guard=True) can receive only one value "
                "per step."
            )
        self.value = values[-1]
        return True


class UntrackedValue(EphemeralValue):
    """Like ``EphemeralValue`` but never stored in a checkpoint."""

    __slots__ = ()

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        return super().update(values)

    def checkpoint(self) -> Any:
        return MISSING


class TriggerFlag(BaseChannel):
    """Remembers that a node was triggered until that node runs (then ``consume`` clears it).

    Deferred nodes wait on it: their trigger must survive the supersteps in which other
    branches are still running.
    """

    __slots__ = ()

    def update(self, values: Sequence[Any]) -> bool:
        if not values or self.value is not MISSING:
            return False
        self.value = True
        return True

    def consume(self) -> bool:
        if self.value is MISSING:
            return False
        self.value = MISSING
        return True
