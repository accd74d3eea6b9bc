"""Decoding stored rows, the same for every saver: metadata JSON (and the copy sealed
beside it under encryption), raw bytes as drivers return them, and how a damaged row is
named in errors.

Why apart: the memory saver and the SQL savers read the same kinds of rows and must fail
the same way on damage (``CorruptCheckpointError`` naming thread, namespace, checkpoint
and value); keeping that here lets both import it without borrowing each other's
internals.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from threadloom.checkpoint._values.chains import StoredBlob
from threadloom.checkpoint.serde.base import CorruptCheckpointError

__all__ = ["SEALED_METADATA"]


def _bytes(blob: Any) -> bytes | None:
    return bytes(blob) if isinstance(blob, memoryview | bytearray) else blob


def _root_key(key: tuple[Any, ...], row: StoredBlob) -> tuple[Any, ...]:
    """Key of the full row a stored value's chain starts at (its own key if it is full)."""
    return (*key[:-1], row.root_version or row.base_version or key[-1])


def _write_name(task_id: str, channel: str, thread_id: str, ns: str, checkpoint_id: str) -> str:
    return (
        f"pending write of task {task_id!r} to channel {channel!r} (thread {thread_id!r}, "
        f"namespace {ns!r}, checkpoint {checkpoint_id!r})"
    )


SEALED_METADATA = "threadloom:metadata"
"""Key of the copy of a checkpoint's metadata sealed inside its checkpoint row, where the
serializer binds values to their place (encryption): the metadata column stays plaintext
JSON, because ``list(filter=...)`` queries it in the database, but a change made to it
behind the saver's back no longer goes unnoticed (``_authentic_metadata``)."""


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


def _authentic_metadata(column: dict[str, Any], sealed: Any, where: str) -> dict[str, Any]:
    """The sealed copy of a checkpoint's metadata, once the metadata column is found to
    say the same; ``CorruptCheckpointError`` if it was altered."""
    if not isinstance(sealed, dict) or _json_numbers(column) != _json_numbers(sealed):
        raise CorruptCheckpointError(
            f"Stored metadata of {where} was altered: it differs from the copy sealed in "
            "the encrypted checkpoint row. Nothing in it was used."
        )
    return sealed


def _json_loads(text: str) -> Any:
    """``json.loads``, through orjson when it is installed (it comes with langchain-core's
    langsmith); what orjson refuses (NaN, integers past 64 bits) goes to ``json``."""
    try:
        return _orjson_loads(text)
    except Exception:
        return json.loads(text)


try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - orjson is optional
    _fast_json_loads: Callable[[str], Any] = json.loads
else:
    _fast_json_loads = _json_loads


def _load_metadata(raw: Any, where: str) -> dict[str, Any]:
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
