"""JSON for the wire: graph state, messages and interrupts as the official client reads them.

Messages and other pydantic models become their field dicts (``{"type": "ai",
"content": ..., "id": ...}``), dataclasses (``Interrupt``) their fields, tuples lists,
sets lists, datetimes ISO strings; anything else its ``repr`` rather than a failed
response.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from typing import Any

import orjson

__all__ = ["dumps", "jsonable", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json")
        except Exception:  # a model that cannot dump itself: its repr below
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:
            pass
    return repr(value)


def _default_stdlib(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return _default(value)


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes (never fails: unknown objects become their ``repr``)."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # what a client may send but orjson does not write: integers beyond 64 bits,
        # strings with lone surrogates (written as \u escapes)
        return json.dumps(value, default=_default_stdlib, ensure_ascii=True,
                          separators=(",", ":")).encode()


def loads(data: bytes | str | None) -> Any:
    """Parse JSON text (None stays None)."""
    return None if data is None else orjson.loads(data)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bool, None)."""
    return orjson.loads(dumps(value))
