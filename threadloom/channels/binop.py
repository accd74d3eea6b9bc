"""The reducer channel behind ``Annotated[T, reducer]`` keys.

It folds every write of a step into the value with the reducer (``operator.add``,
``add_messages``, ...), so parallel nodes can add to one key; an ``Overwrite`` (or its
dict forms) replaces the value instead of being folded in.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable, Sequence
from typing import Any

from threadloom.channels.base import MISSING, BaseChannel
from threadloom.constants import OVERWRITE
from threadloom.errors import InvalidUpdateError
from threadloom.types import Overwrite


def _get_overwrite(value: Any) -> tuple[bool, Any]:
    """``(True, replacement)`` when ``value`` asks to overwrite (an ``Overwrite``, or its
    dict forms ``{"__overwrite__": v}`` / ``{"type": "__overwrite__", "value": v}``)."""
    if isinstance(value, Overwrite):
        return True, value.value
    if isinstance(value, dict):
        if len(value) == 1 and OVERWRITE in value:
            return True, value[OVERWRITE]
        if value.get("type") == OVERWRITE and "value" in value and len(value) == 2:
            return True, value["value"]
    return False, None


class BinaryOperatorAggregate(BaseChannel):
    """Folds every write into the value with ``operator(old, new)``.

    Starts from ``typ()`` when the type can be built with no arguments (so
    ``Annotated[list, operator.add]`` starts as ``[]``), otherwise empty. An ``Overwrite``
    write replaces the value without the reducer.
    """

    __slots__ = ("operator",)

    def __init__(self, typ: Any, operator: Callable[[Any, Any], Any], key: str = "") -> None:
        super().__init__(typ, key)
        self.operator = operator
        self.value = _initial(typ)

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        seen_overwrite = False
        value = self.value
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
            elif seen_overwrite:
                # an Overwrite sets the step's value: other writes of the step are dropped
                continue
            elif value is MISSING:
                value = item
            else:
                value = self.operator(value, item)
        self.value = value
        return True

    def from_checkpoint(self, value: Any) -> BaseChannel:
        new = self.copy()
        new.value = _initial(self.typ) if value is MISSING else value
        return new


_ABSTRACT_STARTS: tuple[tuple[Any, type], ...] = (
    (collections.abc.Sequence, list),
    (collections.abc.MutableSequence, list),
    (collections.abc.Set, set),
    (collections.abc.MutableSet, set),
    (collections.abc.Mapping, dict),
    (collections.abc.MutableMapping, dict),
)


def _initial(typ: Any) -> Any:
    origin = getattr(typ, "__origin__", None) or typ
    if origin in (list, dict, set, tuple, int, float, str, frozenset):
        return origin()
    # Abstract collections (Sequence[BaseMessage], ...) start as their plain counterpart,
    # so the reducer sees every write, the first included.
    for abstract, concrete in _ABSTRACT_STARTS:
        if origin is abstract:
            return concrete()
    try:
        if isinstance(origin, type) and origin.__module__ in ("collections", "builtins"):
            return origin()
    except Exception:  # noqa: BLE001 - an unbuildable type simply starts empty
        pass
    return MISSING
