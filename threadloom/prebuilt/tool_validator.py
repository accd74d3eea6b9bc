"""``ValidationNode``: check a model's tool calls against schemas without running them.

For structured extraction the "tool" is only a schema: the model's arguments are the
answer. The node validates each call of the latest ``AIMessage`` and answers it with a
``ToolMessage``: the validated arguments as JSON, or the validation error (marked with
``additional_kwargs["is_error"] = True``) so the model can try again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config, get_executor_for_config
from langchain_core.tools import BaseTool, create_schema_from_function
from pydantic import BaseModel, ValidationError
from pydantic.v1 import BaseModel as BaseModelV1
from pydantic.v1 import ValidationError as ValidationErrorV1

__all__ = ["ValidationNode"]


def _default_format_error(
    error: BaseException, call: ToolCall, schema: type[BaseModel] | type[BaseModelV1] | None
) -> str:
    return f"{error!r}\n\nRespond after fixing all validation errors."


class ValidationNode(Runnable[Any, Any]):
    """Validate the tool calls of the latest ``AIMessage`` against ``schemas``.

    ``schemas`` may hold pydantic models (v2 or v1), ``BaseTool``s (their argument
    schema) and plain functions (a schema built from the signature); a call is matched
    by name (the model's or function's ``__name__``, the tool's ``name``). Input: a list
    of messages or a state with ``messages``; output in the same shape. Calls naming an
    unknown schema are answered with an error message as well.
    """

    def __init__(
        self,
        schemas: Sequence[BaseTool | type[BaseModel] | type[BaseModelV1] | Callable[..., Any]],
        *,
        format_error: Callable[[BaseException, ToolCall, Any], str] | None = None,
        name: str = "validation",
        tags: list[str] | None = None,
    ) -> None:
        self.name = name
        self.tags = list(tags or [])
        self.format_error = format_error or _default_format_error
        self.schemas_by_name: dict[str, Any] = {}
        for schema in schemas:
            if isinstance(schema, BaseTool):
                if not (
                    isinstance(schema.args_schema, type)
                    and issubclass(schema.args_schema, BaseModel | BaseModelV1)
                ):
                    raise ValueError(
                        f"Tool {schema.name!r} has no pydantic args_schema to validate "
                        "against; give ValidationNode a pydantic model instead."
                    )
                self.schemas_by_name[schema.name] = schema.args_schema
            elif isinstance(schema, type) and issubclass(schema, BaseModel | BaseModelV1):
                self.schemas_by_name[schema.__name__] = schema
            elif callable(schema):
                self.schemas_by_name[schema.__name__] = create_schema_from_function(
                    schema.__name__, schema
                )
            else:
                raise ValueError(
                    f"ValidationNode accepts pydantic models, BaseTools and functions; "
                    f"got {schema!r}."
                )

    def _split(self, input: Any) -> tuple[list[ToolCall], bool]:
        if isinstance(input, list):
            messages, keyed = input, False
        elif isinstance(input, dict):
            messages, keyed = input.get("messages", []), True
        else:
            messages, keyed = getattr(input, "messages", []), True
        last = messages[-1] if messages else None
        if not isinstance(last, AIMessage):
            raise ValueError(
                "ValidationNode expects the last message to be an AIMessage with tool "
                f"calls, got {type(last).__name__}."
            )
        return list(last.tool_calls), keyed

    def _validate(self, call: ToolCall) -> ToolMessage:
        schema = self.schemas_by_name.get(call["name"])
        try:
            if schema is None:
                raise ValueError(
                    f"Unknown schema {call['name']!r}; expected one of "
                    f"{sorted(self.schemas_by_name)}."
                )
            if issubclass(schema, BaseModel):
                content = schema.model_validate(call["args"]).model_dump_json()
            else:
                content = schema.validate(call["args"]).json()
            return ToolMessage(content=content, name=call["name"], tool_call_id=call["id"])
        except (ValidationError, ValidationErrorV1, ValueError) as exc:
            return ToolMessage(
                content=self.format_error(exc, call, schema),
                name=call["name"],
                tool_call_id=call["id"],
                additional_kwargs={"is_error": True},
            )

    def _shape(self, messages: list[ToolMessage], keyed: bool) -> Any:
        return {"messages": messages} if keyed else messages

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        calls, keyed = self._split(input)
        config = ensure_config(config)
        with get_executor_for_config(config) as executor:
            outputs = list(executor.map(self._validate, calls))
        return self._shape(outputs, keyed)

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        calls, keyed = self._split(input)
        outputs = await asyncio.gather(*(asyncio.to_thread(self._validate, c) for c in calls))
        return self._shape(list(outputs), keyed)
