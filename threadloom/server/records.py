"""The server's records as the Agent Server API shows them, and the filters on them.

Shared by every ``Storage`` implementation and the services: new ids (UUIDv7, time
ordered), timestamps (ISO 8601 with offset), the system assistants' stable ids, and
``matches`` - the containment filter used by ``metadata``/``values`` searches and by
the filters that ``@auth.on`` handlers return (``{"owner": "alice"}``,
``{"owner": {"$eq": "alice"}}``, ``{"tags": {"$contains": "x"}}``) - and
``containment``, what of such a filter a database's index can check first.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from threadloom.checkpoint.base.id import uuid7

__all__ = [
    "FILTER_OPERATORS",
    "SYSTEM_NAMESPACE",
    "check_filter",
    "containment",
    "matches",
    "merge_filters",
    "new_id",
    "now_iso",
    "select_fields",
    "system_assistant_id",
]

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
"""The namespace of the system assistants' uuid5 ids (the same ids as the reference
server, so clients and Studio keep theirs across servers)."""


@functools.lru_cache(maxsize=256)
def system_assistant_id(graph_id: str) -> str:
    """The id of the assistant the server makes for ``graph_id`` at startup."""
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


def new_id() -> str:
    """A new time-ordered id (UUIDv7) for a thread, run or cron."""
    return str(uuid7())


def now_iso() -> str:
    """The current time, ISO 8601 with offset."""
    return datetime.now(UTC).isoformat()


def matches(doc: Any, filter: Mapping[str, Any] | None) -> bool:
    """Whether ``doc`` (a dict) satisfies the containment ``filter``.

    Each key must be present; a plain value must equal the doc's (a dict value is
    matched recursively, a list must be contained in the doc's list); ``{"$eq": v}``
    is equality, ``{"$contains": v}`` asks a list (or string) to contain ``v`` (a list:
    every item of it).
    """
    if not filter:
        return True
    if not isinstance(doc, Mapping):
        return False
    for key, want in filter.items():
        if key not in doc:
            return False
        if not _value_matches(doc[key], want):
            return False
    return True


def _value_matches(have: Any, want: Any) -> bool:
    if isinstance(want, Mapping):
        ops = [k for k in want if isinstance(k, str) and k.startswith("$")]
        if ops and len(ops) == len(want):
            return all(_operator(have, op, want[op]) for op in ops)
        return matches(have, want)
    if isinstance(want, list) and isinstance(have, list):
        return all(any(_value_matches(h, w) for h in have) for w in want)
    return have == want and type(have) is type(want) or (
        isinstance(have, (int, float))
        and isinstance(want, (int, float))
        and not isinstance(have, bool)
        and not isinstance(want, bool)
        and have == want
    )


FILTER_OPERATORS = ("$eq", "$ne", "$contains", "$in")
"""The operators ``matches`` knows (``{"owner": {"$eq": "alice"}}``)."""


def check_filter(filter: Any, where: str) -> None:
    """Raise ``ValueError`` naming the first operator of ``filter`` (a search's
    ``metadata`` or ``values``, found at ``where``) that ``matches`` does not know - at
    once, rather than when a stored record first reaches it (or never, when none
    does)."""
    if isinstance(filter, Mapping):
        ops = [k for k in filter if isinstance(k, str) and k.startswith("$")]
        if ops and len(ops) == len(filter):  # an operator dict (``_value_matches``)
            for op in ops:
                if op not in FILTER_OPERATORS:
                    raise ValueError(
                        f"unknown filter operator {op!r} at {where}: use "
                        f"{', '.join(FILTER_OPERATORS[:-1])} or {FILTER_OPERATORS[-1]}")
            return
        for key, value in filter.items():
            check_filter(value, f"{where}.{key}")
    elif isinstance(filter, list):
        for i, item in enumerate(filter):
            check_filter(item, f"{where}[{i}]")


_ANY: Any = object()  # ``_contained``: the wanted value constrains nothing containment checks


def containment(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON document that every doc ``matches(doc, filter)`` passes contains (as
    PostgreSQL's ``jsonb @>`` means it), for a database to narrow a search with an
    index before ``matches`` decides: None when it would narrow nothing.

    The document is a necessary condition, never a sufficient one: a plain value and
    ``$eq`` are kept (equal JSON values contain each other; 1 and 1.0 too, as in
    ``matches``), dicts and lists recursively; ``$ne``, ``$contains`` and ``$in`` - which
    containment cannot say - are left out, as are values that are not JSON data.
    """
    doc = _contained(dict(filter or {}))
    return doc if isinstance(doc, dict) and doc else None


def _contained(want: Any) -> Any:
    if isinstance(want, Mapping):
        if not want:
            return _ANY  # ``matches(x, {})`` holds for anything
        if not all(isinstance(k, str) for k in want):
            return _ANY
        ops = [k for k in want if k.startswith("$")]
        if ops and len(ops) == len(want):
            if "$eq" not in want:
                return _ANY
            operand = want["$eq"]
            # a dict operand is compared whole, by Python's ``==``
            return _equal_to(operand) if isinstance(operand, Mapping) else _contained(
                operand)
        return {k: c for k, v in want.items() if (c := _contained(v)) is not _ANY}
    if isinstance(want, list):
        return [c for c in map(_contained, want) if c is not _ANY]
    if want is None or isinstance(want, (str, bool, int)):
        return want
    if isinstance(want, float) and math.isfinite(want):
        return want
    return _ANY


def _equal_to(value: Any) -> Any:
    """What every JSON value ``== value`` contains: its strings and nulls, in place
    (numbers and booleans are left out: ``True == 1`` in Python, not in JSON)."""
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return _ANY
        return {k: c for k, v in value.items() if (c := _equal_to(v)) is not _ANY}
    if isinstance(value, list):
        return [c for c in map(_equal_to, value) if c is not _ANY]
    return value if value is None or isinstance(value, str) else _ANY


def _operator(have: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return _value_matches(have, operand) if not isinstance(operand, Mapping) else (
            have == operand
        )
    if op == "$ne":
        return bool(have != operand)
    if op == "$contains":
        items = operand if isinstance(operand, list) else [operand]
        if isinstance(have, str):
            return all(isinstance(i, str) and i in have for i in items)
        if isinstance(have, list):
            return all(i in have for i in items)
        return False
    if op == "$in":
        return isinstance(operand, list) and have in operand
    raise ValueError(f"unknown filter operator {op!r}: use "
                     f"{', '.join(FILTER_OPERATORS[:-1])} or {FILTER_OPERATORS[-1]}")


def merge_filters(user: Mapping[str, Any] | None, auth: Mapping[str, Any] | None
                  ) -> dict[str, Any] | None:
    """A search's metadata filter with the auth handler's filter added; None when the
    two contradict (nothing can match)."""
    merged = dict(user or {})
    for key, value in (auth or {}).items():
        if key in merged and merged[key] != value:
            if isinstance(value, Mapping) and value.get("$eq") == merged[key]:
                continue
            return None
        merged[key] = value
    return merged


def select_fields(rows: list[dict[str, Any]], select: list[str] | None) -> list[dict[str, Any]]:
    """Only the ``select`` keys of each row (all of them without ``select``)."""
    if not select:
        return rows
    return [{k: r.get(k) for k in select} for r in rows]
