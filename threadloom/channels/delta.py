"""``DeltaChannel``: a reducer channel whose checkpoints store what changed, not the whole.

A plain reducer channel (``BinaryOperatorAggregate``) is stored whole at every version, so
a thread whose history grows by a few items a step stores a quadratic amount. A
``DeltaChannel`` stores nothing itself (``checkpoint()`` is always ``MISSING``): the
writes each step made to it are already kept as the steps' writes, and the engine stores
the whole value, wrapped in ``_DeltaSnapshot``, only every ``snapshot_frequency`` updates
(see ``threadloom.engine.delta``). Reading a checkpoint rebuilds the value from the
nearest stored value (the *seed*) and the writes recorded after it
(``from_checkpoint(seed)`` then ``replay_writes(writes)``).

The reducer is *batched*: ``reducer(state, writes) -> state`` receives every write of a
step at once (``threadloom.graph.message._messages_delta_reducer`` is ``add_messages``
in that form). ``Overwrite(value)`` replaces the value; the other writes of its step
are dropped.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NotRequired, Required, get_args, get_origin

from threadloom.channels.base import MISSING, BaseChannel
from threadloom.channels.binop import _get_overwrite, _initial
from threadloom.checkpoint.serde.types import _DeltaSnapshot
from threadloom.errors import InvalidUpdateError
from threadloom.types import Overwrite

__all__ = [
    "DEFAULT_SNAPSHOT_FREQUENCY",
    "MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS",
    "DeltaChannel",
    "ensure_message_ids",
]

DEFAULT_SNAPSHOT_FREQUENCY = 100
"""Updates between two stored snapshots when ``snapshot_frequency`` is not given."""

MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS = 5000
"""A snapshot is also stored after this many checkpoints without one, so that reading a
channel never walks back further than that, however rarely it is written."""

BatchReducer = Callable[[Any, Sequence[Any]], Any]


class DeltaChannel(BaseChannel):
    """A reducer channel stored as its writes plus periodic snapshots.

    ``DeltaChannel(reducer, typ=None, *, snapshot_frequency=100)``; in a state schema,
    ``Annotated[list, DeltaChannel(reducer)]`` takes its type from the annotation. A
    fresh channel holds ``typ()`` (an empty list when no type is known).
    """

    __slots__ = ("overwritten", "reducer", "snapshot_frequency")

    def __init__(
        self,
        reducer: BatchReducer,
        typ: Any = None,
        *,
        snapshot_frequency: int = DEFAULT_SNAPSHOT_FREQUENCY,
        key: str = "",
    ) -> None:
        if not callable(reducer):
            raise TypeError(f"DeltaChannel needs a callable reducer, got {reducer!r}")
        if not isinstance(snapshot_frequency, int) or snapshot_frequency < 1:
            raise ValueError(
                f"DeltaChannel snapshot_frequency must be a positive int, got "
                f"{snapshot_frequency!r}"
            )
        super().__init__(typ, key)
        self.reducer = reducer
        self.snapshot_frequency = snapshot_frequency
        self.overwritten = False  # an Overwrite since the last checkpoint: store it whole
        self.value = self._empty()

    def with_type(self, typ: Any) -> DeltaChannel:
        """A copy typed by a schema annotation (when no type was given explicitly)."""
        new = self.copy()
        assert isinstance(new, DeltaChannel)
        while get_origin(typ) in (NotRequired, Required):
            typ = get_args(typ)[0]
        if self.typ is None:
            new.typ = typ
            new.value = new._empty()
        return new

    def _empty(self) -> Any:
        if self.typ is None:
            return []
        value = _initial(self.typ)
        return [] if value is MISSING else value

    # -- updating ------------------------------------------------------------------

    def prepare_write(self, value: Any) -> Any:
        """The form of one write that is recorded and applied: the reducer's
        ``prepare_write`` (when it has one) makes it deterministic, e.g. gives messages
        their ids once, so that replaying the record rebuilds exactly this value."""
        prepare = getattr(self.reducer, "prepare_write", None)
        return ensure_message_ids(value) if prepare is None else prepare(value)

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        seen_overwrite = False
        value = self.value if self.value is not MISSING else self._empty()
        batch: list[Any] = []
        for item in values:
            is_overwrite, replacement = _get_overwrite(item)
            if is_overwrite:
                if seen_overwrite:
                    raise InvalidUpdateError(
                        f"At key '{self.key}': Can receive only one Overwrite value per "
                        "super-step."
                    )
                seen_overwrite = True
                value = replacement
            else:
                batch.append(item)
        if batch and not seen_overwrite:  # an Overwrite is the step's whole say
            value = self.reducer(value, batch)
        self.value = value
        self.overwritten = self.overwritten or seen_overwrite
        return True

    def take_overwritten(self) -> bool:
        """Whether an ``Overwrite`` replaced the value since the last call (a replaced
        value is stored whole: replaying across it would need the writes it dropped)."""
        seen, self.overwritten = self.overwritten, False
        return seen

    def replay_writes(self, writes: Sequence[tuple[str, str, Any]]) -> None:
        """Fold recorded writes ``(task_id, channel, value)`` onto the value, oldest
        first (they span several steps, so several may be overwrites)."""
        value = self.value if self.value is not MISSING else self._empty()
        batch: list[Any] = []
        for _task, _channel, item in writes:
            is_overwrite, replacement = _get_overwrite(item)
            if is_overwrite:
                value, batch = replacement, []
            else:
                batch.append(item)
        if batch:
            value = self.reducer(value, batch)
        self.value = value

    # -- storing -------------------------------------------------------------------

    def checkpoint(self) -> Any:
        """Always ``MISSING``: the engine stores snapshots itself (``_DeltaSnapshot``)."""
        return MISSING

    def from_checkpoint(self, value: Any) -> BaseChannel:
        """A channel starting from ``value``: ``MISSING`` for empty, a ``_DeltaSnapshot``
        or a plain stored value (a thread written before the key became a delta channel)
        as the seed that recorded writes are replayed onto."""
        new = self.copy()
        assert isinstance(new, DeltaChannel)
        new.overwritten = False
        if value is MISSING:
            new.value = self._empty()
        elif isinstance(value, _DeltaSnapshot):
            new.value = value.value
        else:
            new.value = value
        return new


def ensure_message_ids(value: Any) -> Any:
    """A write to a delta channel whose reducer does not prepare writes itself, with the
    chat messages in it given ids: a message without one gets a fresh UUID (on a copy;
    the caller's message is left alone) and a message-shaped dict (``{"role": ...,
    "content": ...}``) becomes a message, so that every replay of the record reads the
    same ids. Inside an ``Overwrite`` only messages are given ids; dicts stay dicts."""
    is_overwrite, replacement = _get_overwrite(value)
    if is_overwrite:
        if isinstance(replacement, (list, tuple)):
            return Overwrite(type(replacement)(_with_id(v, False) for v in replacement))
        return Overwrite(_with_id(replacement, False))
    if isinstance(value, list):
        return [_with_id(v, True) for v in value]
    return _with_id(value, True)


def _with_id(item: Any, coerce_dicts: bool) -> Any:
    if "langchain_core" not in sys.modules and not isinstance(item, dict):
        return item  # no chat message can exist yet
    from langchain_core.messages import BaseMessage, convert_to_messages

    if (
        coerce_dicts
        and isinstance(item, dict)
        and "content" in item
        and isinstance(item.get("role", item.get("type")), str)
    ):
        try:
            item = convert_to_messages([item])[0]
        except (KeyError, ValueError, TypeError, NotImplementedError):
            return item  # not a message after all: recorded as it is
    if isinstance(item, BaseMessage) and not item.id:
        return item.model_copy(update={"id": str(uuid.uuid4())})
    return item
