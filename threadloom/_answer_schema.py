"""The answer an ``interrupt(..., response_schema=...)`` expects: shown as a JSON schema,
checked when the answer arrives.

A dict is taken to be a JSON schema already (shown as is, answers are not checked); a
pydantic model, TypedDict or dataclass is shown as its JSON schema and answers are
validated into that type. Such a class is also allowed in checkpoints (as if passed to
``register_type``): the graph's own code named it, and the validated answer usually ends up
in the state. A process that reads those checkpoints before any ``interrupt()`` names the
class still needs it registered at import time.
"""

from __future__ import annotations

import functools
from typing import Any

from threadloom._schema import is_typeddict
from threadloom.errors import mark_invalid_resume

__all__ = ["json_schema_of", "validate_answer"]


@functools.lru_cache(maxsize=256)
def _adapter(schema: Any) -> Any:
    from pydantic import TypeAdapter

    if isinstance(schema, type) and not is_typeddict(schema):
        from threadloom.checkpoint.serde import register_type

        register_type(schema)
    return TypeAdapter(schema)


def json_schema_of(schema: Any) -> dict[str, Any] | None:
    """The JSON schema shown with the interrupt for ``response_schema``."""
    if schema is None or isinstance(schema, dict):
        return schema
    model_json_schema = getattr(schema, "model_json_schema", None)
    if callable(model_json_schema):
        return model_json_schema()
    try:
        return _adapter(schema).json_schema()
    except TypeError as exc:
        raise TypeError(
            f"interrupt(response_schema=...) takes a JSON schema dict, a pydantic model, a "
            f"TypedDict or a dataclass; got {schema!r}."
        ) from exc


def validate_answer(schema: Any, answer: Any) -> Any:
    """``answer`` as ``schema`` asks (raises the marked validation error if it does not fit)."""
    if schema is None or isinstance(schema, dict):
        return answer
    try:
        return _adapter(schema).validate_python(answer)
    except Exception as exc:
        raise mark_invalid_resume(exc) from None
