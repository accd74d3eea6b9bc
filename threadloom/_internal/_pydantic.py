"""``langgraph._internal._pydantic``: which schema types pydantic can validate.

Re-exports :func:`threadloom._fields.is_supported_by_pydantic`.
"""

from threadloom._fields import is_supported_by_pydantic

__all__ = ["is_supported_by_pydantic"]
