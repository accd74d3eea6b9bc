"""Compatibility path ``langgraph.pregel.debug``: see ``threadloom.engine.payloads``."""

from threadloom.engine.payloads import task_start_payloads as map_debug_tasks

__all__ = ["map_debug_tasks"]
