"""A node's callback run under a ``TracePolicy``: tracers record processed payloads.

Tracers (``BaseTracer`` handlers, e.g. LangSmith's) get the run started with
``policy.process_inputs(input)`` and ended with ``policy.process_outputs(output)``; every
other handler (``astream_events``, the messages stream, user handlers) gets the real
values. Both halves share one run id, and the node's child runs (model calls, ...) are
children of that id for every handler.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any
from uuid import uuid4

from langchain_core.callbacks import CallbackManagerForChainRun
from langchain_core.tracers.base import BaseTracer

__all__ = ["PolicyRun", "run_tree_context", "start_policy_run"]

logger = logging.getLogger("threadloom")


def _apply(fn: Any, value: Any, what: str) -> Any:
    if fn is None:
        return value
    try:
        return fn(value)
    except Exception:  # noqa: BLE001 - a failing scrubber must not fail the node
        logger.warning("TracePolicy.%s raised; the real value is traced", what, exc_info=True)
        return value


def _as_chain_payload(value: Any, key: str) -> Any:
    return value if isinstance(value, dict) else {key: value}


class PolicyRun:
    """The two halves of one node run: ``plain`` (real payloads) and ``traced``."""

    __slots__ = ("full", "plain", "policy", "traced")

    def __init__(self, full: Any, plain: Any, traced: Any, policy: Any) -> None:
        self.full = full
        self.plain = plain
        self.traced = traced
        self.policy = policy

    def get_child(self, tag: str | None = None) -> Any:
        return self.full.get_child(tag)

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        if self.plain is not None:
            self.plain.on_chain_end(outputs, **kwargs)
        if self.traced is not None:
            value = _apply(self.policy.process_outputs, outputs, "process_outputs")
            self.traced.on_chain_end(_as_chain_payload(value, "output"), **kwargs)

    def on_chain_error(self, error: BaseException, **kwargs: Any) -> None:
        for run in (self.plain, self.traced):
            if run is not None:
                run.on_chain_error(error, **kwargs)


def start_policy_run(manager: Any, inputs: Any, *, name: str, policy: Any) -> PolicyRun:
    """Start a chain run on ``manager`` (a sync ``CallbackManager``) honouring ``policy``."""
    run_id = uuid4()
    tracers = [h for h in manager.handlers if isinstance(h, BaseTracer)]
    others = [h for h in manager.handlers if not isinstance(h, BaseTracer)]
    plain = traced = None
    if others:
        part = manager.copy()
        for handler in tracers:
            part.remove_handler(handler)
        plain = part.on_chain_start(None, inputs, name=name, run_id=run_id)
    if tracers:
        part = manager.copy()
        for handler in others:
            part.remove_handler(handler)
        value = _apply(policy.process_inputs, inputs, "process_inputs")
        traced = part.on_chain_start(
            None, _as_chain_payload(value, "input"), name=name, run_id=run_id
        )
    full = CallbackManagerForChainRun(
        run_id=run_id,
        handlers=manager.handlers,
        inheritable_handlers=manager.inheritable_handlers,
        parent_run_id=manager.parent_run_id,
        tags=manager.tags,
        inheritable_tags=manager.inheritable_tags,
        metadata=manager.metadata,
        inheritable_metadata=manager.inheritable_metadata,
    )
    return PolicyRun(full, plain, traced, policy)


def run_tree_context(config: Any) -> contextlib.AbstractContextManager[Any]:
    """While a node runs under a LangSmith tracer, make its run the current run tree.

    Code in the node that traces through ``langsmith`` directly (``@traceable``,
    ``get_current_run_tree()``) then nests under the node's run. Without such a tracer
    this is a no-op.
    """
    callbacks = config.get("callbacks")
    parent_run_id = getattr(callbacks, "parent_run_id", None)
    if parent_run_id is None:
        return contextlib.nullcontext()
    from langchain_core.tracers.langchain import LangChainTracer

    for handler in getattr(callbacks, "handlers", ()):
        if isinstance(handler, LangChainTracer):
            run = handler.run_map.get(str(parent_run_id))
            if run is not None:
                from langsmith.run_helpers import tracing_context

                return tracing_context(parent=run)
    return contextlib.nullcontext()
