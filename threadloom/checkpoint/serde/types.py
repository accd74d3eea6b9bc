"""Names of the reserved write channels, where LangGraph code imports them from
(``langgraph.checkpoint.serde.types``): a task's error, interrupt, resume value and
scheduled record are pending writes on these channels (see ``base.WRITES_IDX_MAP``)."""

from threadloom.constants import ERROR, INTERRUPT, RESUME, TASKS

SCHEDULED = "__scheduled__"

__all__ = ["ERROR", "INTERRUPT", "RESUME", "SCHEDULED", "TASKS"]
