"""``langgraph._internal._constants``: reserved channel names and config keys.

The values threadloom's engine reads come from ``threadloom.constants``; the remaining
config keys are names for hooks threadloom's engine does not take from a config (they are
accepted, and ignored, when code written for LangGraph puts them there).
"""

from threadloom.constants import _PREVIOUS as PREVIOUS
from threadloom.constants import (
    CONF,
    CONFIG_KEY_CHECKPOINT_ID,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_NODE_FINISHED,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_SEND,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_STRICT_RESUME,
    CONFIG_KEY_TASK,
    CONFIG_KEY_THREAD_ID,
    CONFIG_KEY_TIMED_ATTEMPT_OBSERVER,
    COPY,
    END,
    ERROR,
    INPUT,
    INTERRUPT,
    NO_WRITES,
    NULL_TASK_ID,
    OVERWRITE,
    PULL,
    PUSH,
    RESERVED_CHARS,
    RESUME,
    RETURN,
    START,
    TAG_HIDDEN,
    TAG_NOSTREAM,
    TASKS,
)

CONFIG_KEY_TASK_ID = CONFIG_KEY_TASK
CONFIG_KEY_CHECKPOINT_MAP = "checkpoint_map"
CONFIG_KEY_READ = "__pregel_read"
CONFIG_KEY_CALL = "__pregel_call"
CONFIG_KEY_SCRATCHPAD = "__pregel_scratchpad"
CONFIG_KEY_DURABILITY = "__pregel_durability"
CONFIG_KEY_CACHE = "__pregel_cache"
CONFIG_KEY_RESUMING = "__pregel_resuming"
CONFIG_KEY_RESUME_MAP = "__pregel_resume_map"
CONFIG_KEY_PREVIOUS = "__pregel_previous"
SELF = "__self__"
NS_SEP = "|"
NS_END = ":"
RESERVED = frozenset({START, END, INPUT, INTERRUPT, RESUME, ERROR, NO_WRITES, TASKS, PUSH,
                      PULL, RETURN, PREVIOUS, SELF, NS_SEP, NS_END})

__all__ = [
    "CONF",
    "CONFIG_KEY_CACHE",
    "CONFIG_KEY_CALL",
    "CONFIG_KEY_CHECKPOINTER",
    "CONFIG_KEY_CHECKPOINT_ID",
    "CONFIG_KEY_CHECKPOINT_MAP",
    "CONFIG_KEY_CHECKPOINT_NS",
    "CONFIG_KEY_DURABILITY",
    "CONFIG_KEY_NODE_FINISHED",
    "CONFIG_KEY_PREVIOUS",
    "CONFIG_KEY_READ",
    "CONFIG_KEY_RESUME_MAP",
    "CONFIG_KEY_RESUMING",
    "CONFIG_KEY_RUNTIME",
    "CONFIG_KEY_SCRATCHPAD",
    "CONFIG_KEY_SEND",
    "CONFIG_KEY_STREAM",
    "CONFIG_KEY_STRICT_RESUME",
    "CONFIG_KEY_TASK_ID",
    "CONFIG_KEY_THREAD_ID",
    "CONFIG_KEY_TIMED_ATTEMPT_OBSERVER",
    "COPY",
    "END",
    "ERROR",
    "INPUT",
    "INTERRUPT",
    "NO_WRITES",
    "NS_END",
    "NS_SEP",
    "NULL_TASK_ID",
    "OVERWRITE",
    "PREVIOUS",
    "PULL",
    "PUSH",
    "RESERVED",
    "RESERVED_CHARS",
    "RESUME",
    "RETURN",
    "SELF",
    "START",
    "TAG_HIDDEN",
    "TAG_NOSTREAM",
    "TASKS",
]
