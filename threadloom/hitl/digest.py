"""Binding an approval to the exact action: a digest of what was proposed.

An interrupt id only names a position in the graph, so on its own nothing proves that
the call which finally runs is the call a person looked at. Every approval request
therefore carries ``sha256`` over the canonical JSON of (action, arguments, request id,
checkpoint id). The answer records that digest, and before anything runs the digest is
computed again from the thread's *current* state: if the arguments, the action or the
checkpoint changed in between (``update_state``, a ``Command(update=...)``, a forged
answer), the digests differ and the action is refused with ``ApprovalMismatchError``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

__all__ = ["action_digest", "canonical_json", "json_digest", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bool, None).

    Messages and pydantic models become their field dicts, dataclasses their fields,
    sets sorted lists, datetimes ISO strings; anything else its ``repr``. Used for
    digests and audit records, which must be stable and readable without this code.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(
            value
        )
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v) for v in value), key=canonical_json)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return to_jsonable(dump())
        except Exception:  # a model that cannot dump itself: fall through to repr
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return repr(value)


def canonical_json(value: Any) -> str:
    """One JSON text per value: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(
        to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def json_digest(value: Any) -> tuple[int, str]:
    """(bytes, ``"sha256:<hex>"``) of ``value``'s canonical JSON (UTF-8): how large a
    value is and which one it was, e.g. for an answer too large to keep."""
    data = canonical_json(value).encode()
    return len(data), "sha256:" + hashlib.sha256(data).hexdigest()


def action_digest(
    action: str, args: Mapping[str, Any], *, request_id: str, checkpoint_id: str | None
) -> str:
    """``"sha256:<hex>"`` of what a person is asked to approve.

    The checkpoint id ties the approval to the state it was asked on: the same call
    proposed again after the thread moved on is a new proposal needing a new decision.
    """
    payload = {
        "action": action,
        "args": dict(args),
        "request_id": request_id,
        "checkpoint_id": checkpoint_id,
    }
    return "sha256:" + hashlib.sha256(canonical_json(payload).encode()).hexdigest()
