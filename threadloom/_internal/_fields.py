"""``langgraph._internal._fields``: per-field facts of state schemas.

Re-exports :mod:`threadloom._fields` under LangGraph's names.
"""

from threadloom._fields import enhanced_type_hints as get_enhanced_type_hints
from threadloom._fields import field_default as get_field_default
from threadloom._fields import is_optional_type as _is_optional_type

__all__ = ["_is_optional_type", "get_enhanced_type_hints", "get_field_default"]
