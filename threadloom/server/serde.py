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

__all__ = ["dumps", "jsonable", "loads", "parse_request"]

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
    """``value`` as JSON bytes (never fails: unknown objects become their ``repr``).

    What orjson does not write - integers beyond 64 bits, strings with lone surrogates
    (written as \\u escapes) - is written by ``json``, after a space (JSON allows it):
    ``loads`` then reads it with ``json`` too, which keeps such integers exact (orjson
    reads them as floats) and reads the surrogates (orjson refuses them)."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return b" " + json.dumps(value, default=_default_stdlib, ensure_ascii=True,
                                 separators=(",", ":")).encode()


def loads(data: bytes | str | None) -> Any:
    """Parse JSON text (None stays None): ``dumps``' text as it was written. Text that
    orjson refuses (a lone surrogate written before ``dumps`` marked such text) is
    read by ``json``."""
    if data is None:
        return None
    if data[:1] in (b" ", " "):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def parse_request(body: bytes) -> Any:
    """A request's JSON body as ``json`` reads it (what FastAPI does) - by orjson, but
    for a body holding a number orjson reads as a float where ``json`` keeps an exact
    integer (beyond 64 bits), and for what orjson refuses (``NaN``, lone surrogates)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
    return json.loads(body) if _wide_float(data) else data


def _wide_float(data: Any) -> bool:
    """Whether ``data`` holds a float with an integer's value beyond 64 bits."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and item.is_integer() and abs(item) >= 2.0 ** 63:
            return True
    return False


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bool, None)."""
    return loads(dumps(value))
