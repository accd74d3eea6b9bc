"""Where a stored value belongs: the *place* a saver binds a value to when it encrypts.

A serializer's ``dumps_typed(obj)`` / ``loads_typed(data)`` (LangGraph's protocol) see a
value, never where it is stored, so an encrypted value copied from one thread, checkpoint
or channel to another would decrypt fine there. A serializer that can bind its output to
a place (:class:`EncryptedSerializer` does, as AES-GCM associated data) offers two more
methods, and the savers call them when it has them:

* ``dumps_typed_at(obj, place) -> (tag, bytes)``
* ``loads_typed_at((tag, bytes), place) -> obj`` - refuses a value stored for another place
* ``reseal((tag, bytes), place, new_place=None) -> (tag, bytes)`` - the same value sealed
  anew (current key, ``new_place``) without decoding it: for ``copy_thread`` and ``rekey``

A plain serializer has none of them and is called as always (:func:`dumps_at`,
:func:`loads_at`). A place is a tuple of strings; the constructors below are the only
ones the savers use, so the memory and SQL savers bind the same value to the same place:

* a checkpoint row: ``("checkpoint", thread, ns, checkpoint_id)``;
* checkpoint metadata, where a saver serializes it (memory): ``("metadata", thread, ns,
  checkpoint_id)``;
* a channel value: ``("value", thread, ns, channel, version, base, root)``. A value is
  stored once per (thread, namespace, channel, version) and shared by every checkpoint
  holding that version, and a list stored as a delta is extended by later versions, so a
  value is bound to the place it is *stored* (its version), not to a checkpoint; the
  checkpoint row, bound to its checkpoint, says which versions it holds. A delta row's
  base and root versions are part of its place, so its chain cannot be rewired;
* a pending write: ``("write", thread, ns, checkpoint_id, task_id, idx, channel)``;
* an audit record: ``("audit", thread, seq)``; the audit log's anchor: ``("audit-head",
  thread)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

__all__ = [
    "Place",
    "audit_head_place",
    "audit_place",
    "binds",
    "checkpoint_place",
    "dumps_at",
    "loads_at",
    "metadata_place",
    "place_bytes",
    "place_name",
    "reseal_at",
    "value_place",
    "write_place",
]

Place = tuple[str, ...]


def checkpoint_place(thread_id: str, ns: str, checkpoint_id: str) -> Place:
    """The place of a stored checkpoint (without its values)."""
    return ("checkpoint", str(thread_id), str(ns), str(checkpoint_id))


def metadata_place(thread_id: str, ns: str, checkpoint_id: str) -> Place:
    """The place of a checkpoint's metadata, where a saver serializes it."""
    return ("metadata", str(thread_id), str(ns), str(checkpoint_id))


def value_place(
    thread_id: str,
    ns: str,
    channel: str,
    version: Any,
    base_version: str | None = None,
    root_version: str | None = None,
) -> Place:
    """The place of a channel value stored at ``version`` (see the module docstring)."""
    return (
        "value", str(thread_id), str(ns), str(channel), str(version),
        base_version or "", root_version or "",
    )  # fmt: skip


def write_place(
    thread_id: str, ns: str, checkpoint_id: str, task_id: str, idx: int, channel: str
) -> Place:
    """The place of a pending write: its checkpoint, task, index and channel."""
    return (
        "write", str(thread_id), str(ns), str(checkpoint_id), str(task_id), str(idx),
        str(channel),
    )  # fmt: skip


def audit_place(thread_id: str, seq: int) -> Place:
    """The place of the ``seq``-th record of a thread's audit log."""
    return ("audit", str(thread_id), str(int(seq)))


def audit_head_place(thread_id: str) -> Place:
    """The place of a thread's audit-log anchor."""
    return ("audit-head", str(thread_id))


def place_bytes(place: Place) -> bytes:
    """The canonical encoding of a place - what is authenticated as associated data:
    each part as ``<length>:<text>`` (netstring-like), so distinct places never encode
    alike."""
    return ("threadloom-place\x00" + "".join(f"{len(p)}:{p}" for p in place)).encode(
        "utf-8", "surrogatepass"
    )


def place_name(place: Place) -> str:
    """A place for error messages: ``value of channel 'x' version '...' (thread ...)``."""
    kind, *parts = place
    if kind == "value":
        thread_id, ns, channel, version = parts[:4]
        return (
            f"value of channel {channel!r} version {version!r} (thread {thread_id!r}, "
            f"namespace {ns!r})"
        )
    if kind == "write":
        thread_id, ns, checkpoint_id, task_id, _idx, channel = parts
        return (
            f"pending write of task {task_id!r} to channel {channel!r} (thread "
            f"{thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r})"
        )
    if kind in ("checkpoint", "metadata"):
        thread_id, ns, checkpoint_id = parts
        return f"{kind} of thread {thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r}"
    if kind == "audit":
        return f"audit record {parts[1]} of thread {parts[0]!r}"
    if kind == "audit-head":
        return f"audit log anchor of thread {parts[0]!r}"
    return " / ".join(place)


def binds(serde: Any) -> bool:
    """Whether ``serde`` binds values to their place (has ``dumps_typed_at``)."""
    return callable(getattr(serde, "dumps_typed_at", None))


def dumps_at(serde: Any) -> Callable[[Any, Place | None], tuple[str, bytes]]:
    """``serde``'s writer as ``(obj, place) -> (tag, bytes)``: place-bound when it can
    be, ``dumps_typed`` otherwise (the place is then ignored: a caller that checked
    :func:`binds` may pass None)."""
    bound = getattr(serde, "dumps_typed_at", None)
    if callable(bound):
        # a binding serializer is given a place by every caller (None only when the
        # caller checked it does not bind)
        return cast("Callable[[Any, Place | None], tuple[str, bytes]]", bound)
    plain = serde.dumps_typed
    return lambda obj, place: plain(obj)


def loads_at(serde: Any) -> Callable[[tuple[str, bytes], Place | None], Any]:
    """``serde``'s reader as ``((tag, bytes), place) -> obj`` (see :func:`dumps_at`)."""
    bound = getattr(serde, "loads_typed_at", None)
    if callable(bound):
        return cast("Callable[[tuple[str, bytes], Place | None], Any]", bound)
    plain = serde.loads_typed
    return lambda data, place: plain(data)


def reseal_at(
    serde: Any, data: tuple[str, bytes], place: Place, new_place: Place | None = None
) -> tuple[str, bytes] | None:
    """``data`` (stored at ``place``) sealed for ``new_place`` under the serializer's
    current key, without decoding the value; None when ``serde`` does not bind (the
    bytes are then valid anywhere: copy them as they are)."""
    reseal = getattr(serde, "reseal", None)
    if not callable(reseal):
        return None
    sealed: tuple[str, bytes] = reseal(data, place, new_place)
    return sealed
