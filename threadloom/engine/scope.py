"""What one run shares with its tasks and with the subgraph runs inside them.

The stream sink, the requested stream modes, the answers to pending interrupts, the
store, the node cache and the run's context travel together; a subgraph run gets a child scope that
forwards its stream events to the parent's sink under its own namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from threadloom.engine.task import ResumeBox

Sink = Callable[[tuple[str, ...], str, Any], None]

# stream modes whose events come while a node still runs (so the caller is woken for them)
LIVE_MODES = frozenset({"custom", "messages", "tools"})


class Scope:
    """Run-wide settings and the place stream events go."""

    __slots__ = (
        "modes",
        "sink",
        "resume_box",
        "store",
        "context",
        "checkpointer",
        "ns",
        "callbacks",
        "live",
        "nested",
        "message_ids",
        "calls",
        "cache",
        "replay",
        "control",
        "server_info",
        "durability",
        "resuming",
        "_runtime_fields",
    )

    def __init__(
        self,
        *,
        modes: frozenset[str],
        sink: Sink | None,
        resume_box: ResumeBox,
        store: Any,
        context: Any,
        checkpointer: Any,
        ns: str,
        nested: bool,
        cache: Any = None,
        control: Any = None,
        server_info: Any = None,
    ) -> None:
        self.modes = modes
        self.sink = sink
        self.resume_box = resume_box
        self.store = store
        self.context = context
        self.checkpointer = checkpointer
        self.ns = ns
        self.nested = nested
        self.cache = cache  # a BaseCache for nodes with a CachePolicy, or None
        # the run's RunControl (drain requests are honoured between supersteps), or None
        self.control = control
        # a ServerInfo when the run comes from a server (assistant/graph ids), else None
        self.server_info = server_info
        self.callbacks: Any = None
        # the root run's durability; its subgraph runs save theirs the same way
        self.durability: str | None = None
        # True when events must reach the caller while a node is still running.
        self.live = bool(modes & LIVE_MODES)
        # Ids of messages already streamed in "messages" mode (tokens or node outputs).
        self.message_ids: set[str] = set()
        # How a running task calls another (``@task``): set by the driver of the run.
        self.calls: Any = None
        # Set while a run replays a past checkpoint (shared with its subgraph runs).
        self.replay: ReplayPoint | None = None
        # True when the run continues from its checkpoint (no new input); a subgraph run
        # starts with its parent's value, so a task re-run by a resumed parent continues
        # its subgraph where it stopped (even when the subgraph had finished)
        self.resuming = False
        self._runtime_fields: dict[str, Any] | None = None

    def emit(self, mode: str, payload: Any, ns: str | None = None) -> None:
        if self.sink is not None and mode in self.modes:
            self.sink(ns_tuple(self.ns if ns is None else ns), mode, payload)

    def runtime_fields(self) -> dict[str, Any]:
        """The ``Runtime`` fields every task of the run shares (context, store, stream
        writer, server info, control), made when its first task starts."""
        fields = self._runtime_fields
        if fields is None:
            fields = self._runtime_fields = {
                "context": self.context,
                "store": self.store,
                "stream_writer": self.custom_writer(None),
                "previous": None,
                "server_info": self.server_info,
                "control": self.control,
            }
        return fields

    def custom_writer(self, task: Any) -> Callable[[Any], None]:
        if "custom" not in self.modes or self.sink is None:
            return _noop
        sink = self.sink
        ns = ns_tuple(self.ns)

        def write(chunk: Any) -> None:
            sink(ns, "custom", chunk)

        return write


def _noop(_chunk: Any) -> None:
    return None


class ReplayPoint:
    """The past a replaying run goes back to, for the subgraphs that keep their own
    history (``checkpointer=True``): the first time such a subgraph runs in the replay it
    starts from its newest checkpoint older than ``before`` (the replayed parent
    checkpoint), later times from its newest, which the replay itself wrote."""

    __slots__ = ("before", "targets", "resume", "entered")

    def __init__(self, before: str | None, targets: dict[str, str] | None = None,
                 resume: bool = False) -> None:
        self.before = before
        # subgraph namespace -> the checkpoint it starts from (a subgraph's own checkpoint
        # given to the root graph, with the checkpoint_map that leads to it)
        self.targets = targets or {}
        # True when the run answers interrupts at those checkpoints instead of replaying
        self.resume = resume
        self.entered: set[str] = set()


def ns_tuple(ns: str) -> tuple[str, ...]:
    return tuple(ns.split("|")) if ns else ()
