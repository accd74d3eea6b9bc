"""Stream parts to protocol events.

A *stream part* is what ``stream(..., version="v2")`` style producers yield:
``{"type": mode, "ns": namespace tuple, "data": payload}`` (values parts may carry
``"interrupts"``). ``to_protocol_event`` wraps one as the protocol event the
transformers see.
"""

from __future__ import annotations

import time
from typing import Any

from threadloom.stream.base import ProtocolEvent

__all__ = ["to_protocol_event"]


def to_protocol_event(part: dict[str, Any]) -> ProtocolEvent:
    """Wrap a stream part as a protocol event stamped with the current time (ms)."""
    params: dict[str, Any] = {
        "namespace": list(part.get("ns") or ()),
        "timestamp": int(time.time() * 1000),
        "data": part.get("data"),
    }
    if "interrupts" in part:
        params["interrupts"] = part["interrupts"]
    return {"type": "event", "method": part["type"], "params": params}  # type: ignore[typeddict-item]
