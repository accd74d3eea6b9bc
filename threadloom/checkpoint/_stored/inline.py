"""Which channel values a stored checkpoint carries in its own row (the SQL savers).

Why: a value stored only in the value table is found by its key - (thread, namespace,
channel, version) - at every read: a key made, a cache lookup or a fetch, for each
channel of each checkpoint read. Small immutable scalars (a flag, a count, a status, a
short string) cost more to find that way than to store again in every checkpoint that
holds them, as LangGraph's ``PostgresSaver`` stores its primitive values inline. A
listing then finds them decoded with the checkpoint, in the same call.

What is inlined (``inline_values``): values whose type is exactly ``None``, ``bool``,
``int`` (64-bit), ``float`` or ``str`` (up to ``INLINE_STR_MAX`` characters) - exact
types only, so a value decodes as what was stored (a ``str`` enum member or an ``int``
subclass stays in the value table, decoded by the serializer's type registries) - and
only the value stored for the channel's version in the checkpoint: for a channel in
``new_versions`` the value given; for an unchanged channel the value stored for its
version, when this process knows it (``DeltaCache.carried_atoms``: the head it wrote or
read is the put's parent), never the value given (the saver contract stores values for
the channels in ``new_versions`` only). The value table still gets its row for every new
version (a reader of an older threadloom, or one that does not know the parent, finds
the value by its version); a reader takes the values a row carries from the row and
finds the others as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["INLINE_STR_MAX", "inline_values"]

INLINE_STR_MAX = 256
"""Longest string stored in the checkpoint's row (longer ones are found by version, so a
long thread does not repeat them in every row)."""

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # what msgpack stores as an integer


def inline_values(values: Mapping[str, Any], versions: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``values`` a checkpoint row carries (see the module docstring)."""
    inline: dict[str, Any] = {}
    for channel, value in values.items():
        kind = type(value)
        if kind is str:
            if len(value) > INLINE_STR_MAX:
                continue
        elif kind is int:
            if not _INT_MIN <= value <= _INT_MAX:
                continue
        elif value is not None and kind is not bool and kind is not float:
            continue
        if channel in versions:
            inline[channel] = value
    return inline
