"""Compatibility path ``langgraph.pregel._read``: ``PregelNode`` builds a Pregel node
spec in channel terms (threadloom's ``NodeBuilder`` is the usual way)."""

from __future__ import annotations

from typing import Any

from threadloom.pregel.main import NodeBuilder
from threadloom.types import TimeoutPolicy

__all__ = ["PregelNode"]


def PregelNode(  # noqa: N802 - the published class name
    *, channels: str | list[str], triggers: list[str], bound: Any = None,
    writers: list[Any] | None = None, retry_policy: Any = None, timeout: Any = None,
    metadata: dict[str, Any] | None = None, tags: list[str] | None = None, **_: Any,
) -> Any:
    """A node reading ``channels``, woken by ``triggers``, running ``bound``; ``writers``
    are Runnables called with the node's output."""
    builder = NodeBuilder()
    if isinstance(channels, str):
        builder._channels = channels
    else:
        builder._channels = list(channels)
    builder._triggers = list(triggers)
    if bound is not None:
        builder.do(bound)
    for writer in writers or ():
        builder.do(writer)  # a writer Runnable runs on the output, after `bound`
    if retry_policy:
        builder.add_retry_policies(*(
            [retry_policy] if not isinstance(retry_policy, (list, tuple)) else retry_policy
        ))
    if timeout is not None:
        builder.set_timeout(TimeoutPolicy.coerce(timeout))
    builder.meta(*(tags or ()), **(metadata or {}))
    return builder
