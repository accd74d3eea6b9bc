"""Decoding stored rows, the same for every saver: values through the serializer
(``decode_stored``, never running code named by stored bytes), metadata JSON (and the copy
sealed beside it under encryption), raw bytes as drivers return them, delta chains
rebuilt (``rebuild``), and how a damaged row is named in errors.

Why apart: the memory saver and the SQL savers read the same kinds of rows and must fail
the same way on damage (``CorruptCheckpointError`` naming thread, namespace, checkpoint
and value); keeping that here lets both import it without borrowing each other's
internals.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from threadloom.checkpoint._values.chains import (
    EMPTY,
    BlobKey,
    BrokenChainError,
    Resolved,
    StoredBlob,
    resolve,
)
from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.serde.base import CorruptCheckpointError
from threadloom.checkpoint.serde.place import Place

__all__ = [
    "SEALED_METADATA",
    "ValueOwners",
    "as_bytes",
    "authentic_metadata",
    "decode_stored",
    "load_metadata",
    "quick_json_loads",
    "rebuild",
    "root_key",
    "value_name",
    "write_name",
]


def decode_stored(
serde: SerializerProtocol,
data: tuple[str, Any],
what: str | Callable[[], str],
place: Place | None = None,
) -> Any:
    """Decode a stored value; ``what`` (or what it returns) names it in errors.

    ``place``: where the value is stored, for a serializer that binds values to their
    place (``serde.place``). Errors are ``CorruptCheckpointError`` - of the
    serializer's own subclass when it raised one (``UnencryptedValueError``, ...) -
    naming the row."""
    typ, blob = data
    if typ == "empty":
        return EMPTY
    try:
        if place is not None:
            bound = getattr(serde, "loads_typed_at", None)
            if bound is not None:
                return bound((typ, as_bytes(blob)), place)
        # a None blob fails in the serializer, which reports it below
        return serde.loads_typed((typ, as_bytes(blob)))  # type: ignore[arg-type]
    except Exception as exc:
        name = what if isinstance(what, str) else what()
        kind = type(exc) if isinstance(exc, CorruptCheckpointError) else None
        try:
            error = (kind or CorruptCheckpointError)(
                f"Stored {name} cannot be decoded ({type(exc).__name__}: {exc}). The row "
                "is damaged or was written by an incompatible serializer; nothing in it "
                "was run."
            )
        except Exception:  # a subclass that takes other arguments
            error = CorruptCheckpointError(f"Stored {name} cannot be decoded: {exc}")
        raise error from exc


def value_name(key: BlobKey, owner: str) -> str:
    """How errors name the stored value of ``key`` (thread, namespace, channel, version):
    ``owner`` says which checkpoint needs it (``ValueOwners``)."""
    thread_id, ns, channel, version = key
    return (
        f"value of channel {channel!r} version {version!r} (thread {thread_id!r}, "
        f"namespace {ns!r}, {owner})"
    )


class ValueOwners:
    """Which checkpoint an error about a stored value names: the first checkpoint of the
    read that references it (``owners``), else - a row of a delta chain, read only because
    a value is built on it - a checkpoint whose value is (``via_chain``, by the chain's
    root key, see ``root_key``). Called with a key, it says so in words."""

    __slots__ = ("owners", "rows", "via_chain")

    def __init__(self, owners: dict[BlobKey, str], rows: Mapping[BlobKey, Any]) -> None:
        self.owners = owners
        self.rows = rows  # the stored rows by key (``StoredBlob`` or alike)
        self.via_chain: dict[BlobKey, str] = {}

    def __call__(self, key: BlobKey) -> str:
        if key in self.owners:
            return f"checkpoint {self.owners[key]!r}"
        row = self.rows.get(key)
        owner = self.via_chain.get(root_key(key, row) if row else key)
        return f"checkpoint {owner!r}, through the list delta chain it extends"


def rebuild(
    rows: Mapping[BlobKey, Any],
    targets: Iterable[BlobKey],
    decode: Callable[[BlobKey, Any], Any],
    owner_of: Callable[[BlobKey], str],
) -> dict[BlobKey, Resolved]:
    """``resolve``, a damaged chain raised as ``CorruptCheckpointError`` naming the value
    and the checkpoint that needs it."""
    try:
        return resolve(rows, targets, decode)
    except BrokenChainError as exc:
        key: Any = exc.key  # a key of ``rows``
        raise CorruptCheckpointError(
            f"Stored {value_name(key, owner_of(key))} cannot be rebuilt: {exc}"
        ) from exc


def as_bytes(blob: Any) -> bytes | None:
    return bytes(blob) if isinstance(blob, memoryview | bytearray) else blob


def root_key(key: tuple[Any, ...], row: StoredBlob) -> tuple[Any, ...]:
    """Key of the full row a stored value's chain starts at (its own key if it is full)."""
    return (*key[:-1], row.root_version or row.base_version or key[-1])


def write_name(task_id: str, channel: str, thread_id: str, ns: str, checkpoint_id: str) -> str:
    return (
        f"pending write of task {task_id!r} to channel {channel!r} (thread {thread_id!r}, "
        f"namespace {ns!r}, checkpoint {checkpoint_id!r})"
    )


SEALED_METADATA = "threadloom:metadata"
"""Key of the copy of a checkpoint's metadata sealed inside its checkpoint row, where the
serializer binds values to their place (encryption): the metadata column stays plaintext
JSON, because ``list(filter=...)`` queries it in the database, but a change made to it
behind the saver's back no longer goes unnoticed (``authentic_metadata``)."""


def _json_numbers(value: Any) -> Any:
    """``value`` with every number as a float: JSON numbers as a database may give them
    back (PostgreSQL's jsonb prints ``1e+20`` as ``100000000000000000000``)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_numbers(v) for v in value]
    return value


def authentic_metadata(column: dict[str, Any], sealed: Any, where: str) -> dict[str, Any]:
    """The sealed copy of a checkpoint's metadata, once the metadata column is found to
    say the same; ``CorruptCheckpointError`` if it was altered."""
    if not isinstance(sealed, dict) or _json_numbers(column) != _json_numbers(sealed):
        raise CorruptCheckpointError(
            f"Stored metadata of {where} was altered: it differs from the copy sealed in "
            "the encrypted checkpoint row. Nothing in it was used."
        )
    return sealed


quick_json_loads: Callable[[str], Any]
try:
    from orjson import loads as quick_json_loads
except ImportError:  # pragma: no cover - orjson is optional
    quick_json_loads = json.loads
"""``json.loads``, through orjson when it is installed (it comes with langchain-core's
langsmith), for a listing's metadata; it raises ``ValueError`` on what orjson refuses but
``json`` reads (NaN, integers past 64 bits): the caller then takes its checked path
(``load_metadata``)."""


def load_metadata(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise CorruptCheckpointError(
                f"Stored metadata of {where} is not valid JSON ({exc}); the row is damaged."
            ) from exc
    if not isinstance(raw, dict):
        raise CorruptCheckpointError(
            f"Stored metadata of {where} is not a JSON object; the row is damaged."
        )
    return raw
