"""Names shared by every layer: the graph's virtual nodes and the engine's reserved channels.

`START` and `END` are public (they appear in user graphs); everything starting with a
double underscore is reserved for the engine and rejected as a node name.
"""

from __future__ import annotations

from typing import Final

START: Final = "__start__"
"""The virtual node every run begins at: edges from it say where the graph is entered."""

END: Final = "__end__"
"""The virtual node that ends a branch: routing to it schedules nothing."""

TAG_NOSTREAM = "nostream"
"""Tag a chat model with this to keep its tokens out of ``stream_mode="messages"``."""

TAG_HIDDEN = "langsmith:hidden"

CONF = "configurable"

# Reserved write channels (pending writes that are not state keys).
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
ERROR = "__error__"
TASKS = "__pregel_tasks"
RETURN = "__return__"
"""The pending write holding what a task called from a running task returned."""
NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"

# Pseudo nodes used by update_state.
INPUT = "__input__"
COPY = "__copy__"

# Task path kinds (shown in PregelTask.path).
PULL = "__pregel_pull"
PUSH = "__pregel_push"

# Fixed write indexes for the special channels, so a task's latest record replaces the old.
WRITES_IDX_MAP = {ERROR: -1, "__scheduled__": -2, INTERRUPT: -3, RESUME: -4}

RESERVED_CHARS = (":", "|")

# Private keys the engine puts in a running node's config["configurable"]: they let a
# subgraph (or get_config) find its parent's run and checkpointer; CONFIG_KEY_TASK holds
# the task's id and marks the config as a node's (a graph invoked with it runs nested).
CONFIG_KEY_SCOPE = "__threadloom_scope"
# refuse resume answers that name no pending interrupt (see engine.loop.check_strict_resume)
CONFIG_KEY_STRICT_RESUME = "__pregel_strict_resume"
CONFIG_KEY_TASK = "__threadloom_task"
CONFIG_KEY_CHECKPOINTER = "__threadloom_checkpointer"
# In the config of a put/put_writes made by a run with durability="async": the saver may
# commit it without waiting for its flush, if it makes the run durable when it ends.
CONFIG_KEY_DURABILITY = "__threadloom_durability"
# on a put: the run chose to branch from this (past) checkpoint (time travel), so the
# saver does not require it to be the thread's newest
CONFIG_KEY_BRANCH = "__threadloom_branch"
# a callable the root run calls with its loop when it ends paused or done (the server
# reads the thread's new head from it: threadloom.graph.thread_state.run_head)
CONFIG_KEY_RUN_ENDED = "__threadloom_run_ended"

# The node's Runtime in a config's "configurable" (LangGraph's key, so a Runtime put there
# by code written for LangGraph is found); a callback called with a node's name when it
# finishes; the channel a node's plain return value goes to; the marker of a task that
# wrote nothing; the overwrite marker of reducer channels.
RUN_DURABILITY_KEY = "__pregel_durability"
"""Where a node's config says the run's durability ("sync", "async" or "exit")."""
CONFIG_KEY_RUNTIME = "__pregel_runtime"
CONFIG_KEY_NODE_FINISHED = "__pregel_node_finished"
RETURN = "__return__"
NO_WRITES = "__no_writes__"
OVERWRITE = "__overwrite__"

# LangGraph's names of more keys in a node's config["configurable"] that the engine sets or
# reads (langgraph._internal._constants re-exports them, with the rest of LangGraph's).
CONFIG_KEY_THREAD_ID = "thread_id"
CONFIG_KEY_CHECKPOINT_ID = "checkpoint_id"
CONFIG_KEY_CHECKPOINT_NS = "checkpoint_ns"
CONFIG_KEY_SEND = "__pregel_send"
CONFIG_KEY_STREAM = "__pregel_stream"
CONFIG_KEY_TIMED_ATTEMPT_OBSERVER = "__pregel_timed_attempt_observer"
# the channel an @entrypoint saves what its next run receives as ``previous``
_PREVIOUS = "__previous__"

# Names LangGraph once exported here; importing them still works, with a warning.
_MOVED = {"Send": "threadloom.types", "Interrupt": "threadloom.types"}
_PRIVATE = {"PREVIOUS": _PREVIOUS}  # now private: threadloom._internal._constants


def __getattr__(name: str) -> object:
    import importlib
    import warnings

    from threadloom.warnings import LangGraphDeprecatedSinceV10

    if name in _MOVED:
        warnings.warn(
            f"Importing {name} from langgraph.constants is deprecated. Please use "
            f"'from langgraph.types import {name}' instead (threadloom: "
            f"{_MOVED[name]}).",
            LangGraphDeprecatedSinceV10,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    if name in _PRIVATE:
        warnings.warn(
            f"Importing {name} from langgraph.constants is deprecated. This constant is now "
            "private and should not be used directly.",
            LangGraphDeprecatedSinceV10,
            stacklevel=2,
        )
        return _PRIVATE[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
