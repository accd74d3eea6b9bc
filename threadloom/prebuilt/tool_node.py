"""``ToolNode`` runs the tool calls a chat model asked for; ``tools_condition`` routes to it.

A chat model answers with an ``AIMessage`` whose ``tool_calls`` name tools and their
arguments. ``ToolNode`` executes those calls (concurrently when there are several),
turns each result into a ``ToolMessage`` carrying the call's id, and returns them as a
state update. It fills in the arguments the model must not see (``InjectedState``,
``InjectedStore``, ``InjectedToolCallId``), turns bad arguments into error messages the
model can correct, and passes ``Command`` results from tools through to the graph.
"""

from __future__ import annotations

import asyncio
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypedDict, Union, cast, get_args, get_origin

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    RemoveMessage,
    ToolCall,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import (
    ensure_config,
    get_config_list,
    get_executor_for_config,
    patch_config,
)
from langchain_core.tools import BaseTool, InjectedToolArg, StructuredTool
from langchain_core.tools import tool as create_tool
from langchain_core.tools.base import get_all_basemodel_annotations
from pydantic import BaseModel
from pydantic import ValidationError as ValidationErrorV2
from pydantic.v1 import BaseModel as _BaseModelV1
from pydantic.v1 import ValidationError as ValidationErrorV1

from threadloom.constants import END
from threadloom.errors import GraphBubbleUp
from threadloom.graph.message import REMOVE_ALL_MESSAGES
from threadloom.types import Command, Send

__all__ = [
    "INVALID_TOOL_NAME_ERROR_TEMPLATE",
    "TOOL_CALL_ERROR_TEMPLATE",
    "TOOL_INVOCATION_ERROR_TEMPLATE",
    "InjectedState",
    "InjectedStore",
    "ToolCallWithContext",
    "ToolInvocationError",
    "ToolNode",
    "tools_condition",
]

INVALID_TOOL_NAME_ERROR_TEMPLATE = (
    "Error: {requested_tool} is not a valid tool, try one of [{available_tools}]."
)
TOOL_CALL_ERROR_TEMPLATE = "Error: {error}\n Please fix your mistakes."
TOOL_INVOCATION_ERROR_TEMPLATE = (
    "Error invoking tool '{tool_name}' with kwargs {tool_kwargs} with error:\n"
    " {error}\n"
    " Please fix the error and try again."
)

ErrorHandler = bool | str | Callable[..., str] | type[Exception] | tuple[type[Exception], ...]
InputType = Literal["dict", "list", "tool_calls"]


class InjectedState(InjectedToolArg):
    """Mark a tool argument to receive the graph state instead of a model-given value.

    ``Annotated[dict, InjectedState]`` passes the whole state; ``Annotated[list,
    InjectedState("messages")]`` passes one key. The argument is hidden from the schema
    the model sees, because langchain_core hides every ``InjectedToolArg``.
    """

    def __init__(self, field: str | None = None) -> None:
        self.field = field


class InjectedStore(InjectedToolArg):
    """Mark a tool argument to receive the graph's store (``compile(store=...)``).

    Outside a graph, or in a graph compiled without a store, the argument gets ``None``
    if its type allows it; otherwise the call fails with an error saying to add a store.
    """


class ToolCallWithContext(TypedDict):
    """What ``create_react_agent`` (version "v2") sends to its tools node for one call.

    Each call travels on its own ``Send`` together with the agent state it was made in,
    so injected state is the state the model saw.
    """

    __type: Literal["tool_call_with_context"]
    tool_call: ToolCall
    state: Any


class ToolInvocationError(Exception):
    """The model called a tool with arguments that do not match the tool's schema.

    Caught by ``ToolNode``'s default error handling and sent back to the model as an
    error ``ToolMessage`` so it can retry with correct arguments.
    """

    def __init__(
        self,
        tool_name: str,
        source: Exception,
        tool_kwargs: dict[str, Any],
        error_text: str | None = None,
    ) -> None:
        self.tool_name = tool_name
        self.source = source
        self.tool_kwargs = tool_kwargs
        self.message = TOOL_INVOCATION_ERROR_TEMPLATE.format(
            tool_name=tool_name,
            tool_kwargs=tool_kwargs,
            error=error_text if error_text is not None else source,
        )
        super().__init__(self.message)


def _default_handle_tool_errors(e: ToolInvocationError) -> str:
    """Answer bad arguments with an error message; let errors inside tools propagate.

    Bad arguments are the model's mistake and it can fix them; an exception raised by
    the tool's own code is a bug or an outage the caller should see.
    """
    return e.message


@dataclass(frozen=True, slots=True)
class _Injections:
    """Which arguments of one tool the node fills in, found once at construction."""

    state: dict[str, str | None]  # argument -> state key (None: the whole state)
    store: str | None
    store_optional: bool

    @property
    def names(self) -> frozenset[str]:
        names = set(self.state)
        if self.store:
            names.add(self.store)
        return frozenset(names)


class ToolNode(Runnable[Any, Any]):
    """A graph node that executes the tool calls of the latest ``AIMessage``.

    Input: a state dict (or state object) holding ``messages_key``, a list of messages,
    or a list of tool-call dicts. Output: ``{messages_key: [ToolMessage, ...]}`` (a plain
    list for list input), one message per call in tool-call order. When a tool returns a
    ``Command`` the output is a list of Commands and message updates for the graph to
    apply. Several calls run concurrently: a thread pool for ``invoke``,
    ``asyncio.gather`` for ``ainvoke``.

    ``handle_tool_errors`` says which exceptions become error ``ToolMessage``s instead of
    failing the run: the default only argument-validation errors; ``True`` all; a string
    all, answered with that text; an exception class or tuple only those; a callable
    only the types its first parameter is annotated with, answered with its return
    value; ``False`` none. Interrupts (``GraphBubbleUp``) always propagate.

    ``approval=ApprovalPolicy(...)`` (``threadloom.hitl``) first pauses for the calls the
    policy says a person must decide, all in one interrupt, and runs nothing until they
    are decided; rejected calls are answered with an error ``ToolMessage``.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]],
        *,
        name: str = "tools",
        tags: list[str] | None = None,
        handle_tool_errors: ErrorHandler = _default_handle_tool_errors,
        messages_key: str = "messages",
        approval: Any = None,
    ) -> None:
        self.name = name
        self.tags = list(tags or [])
        self.handle_tool_errors = handle_tool_errors
        self.messages_key = messages_key
        self._caught = _caught_exception_types(handle_tool_errors)
        self.tools_by_name: dict[str, BaseTool] = {}
        self._injections: dict[str, _Injections] = {}
        for item in tools:
            tool = _as_tool(item)
            self.tools_by_name[tool.name] = tool
            self._injections[tool.name] = _find_injections(tool)
        # approval=ApprovalPolicy(...): pause for the calls a person must decide first.
        self.approval = approval
        self._approval_gate: Any = None
        if approval is not None:
            from threadloom.hitl.tool_gate import ToolApprovalGate

            self._approval_gate = ToolApprovalGate(approval, self.tools_by_name)

    @property
    def graph_hooks(self) -> tuple[Any, ...]:
        """Hooks this node carries into the graph it is compiled in: with ``approval=``,
        the approval hooks that check answers before they reach it."""
        return (self.approval.hooks,) if self.approval is not None else ()

    def __repr__(self) -> str:
        return f"ToolNode(tools={list(self.tools_by_name)!r}, name={self.name!r})"

    # -- Runnable ------------------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._run_sync, input, self._config(config))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._run_async, input, self._config(config))

    def _config(self, config: RunnableConfig | None) -> RunnableConfig:
        config = ensure_config(config)
        if self.tags:
            config = patch_config(config)
            config["tags"] = [*config.get("tags", []), *self.tags]
        return config

    def _run_sync(self, input: Any, config: RunnableConfig) -> Any:
        calls, input_type, state = self._parse_input(input)
        gated = None
        if self._approval_gate is not None:
            gated = self._approval_gate.checked_review(calls, self._messages_of(state, input_type))
            calls = gated.to_run if gated is not None else calls
        store = _current_store()
        prepared = [self._prepare(call, state, store) for call in calls]
        configs = get_config_list(config, len(prepared))
        if len(prepared) <= 1:  # no thread for the common single call
            outputs = [
                self._run_one(c, input_type, cf) for c, cf in zip(prepared, configs, strict=True)
            ]
        else:
            with get_executor_for_config(config) as executor:
                outputs = list(
                    executor.map(self._run_one, prepared, [input_type] * len(prepared), configs)
                )
        if gated is not None:
            outputs = gated.merge(outputs)
        return self._combine(outputs, input_type)

    async def _run_async(self, input: Any, config: RunnableConfig) -> Any:
        calls, input_type, state = self._parse_input(input)
        gated = None
        if self._approval_gate is not None:
            gated = await self._approval_gate.acheck_review(
                calls, self._messages_of(state, input_type)
            )
            calls = gated.to_run if gated is not None else calls
        store = _current_store()
        prepared = [self._prepare(call, state, store) for call in calls]
        configs = get_config_list(config, len(prepared))
        outputs = list(await asyncio.gather(
            *(self._arun_one(c, input_type, cf) for c, cf in zip(prepared, configs, strict=True))
        ))
        if gated is not None:
            outputs = gated.merge(outputs)
        return self._combine(outputs, input_type)

    def _messages_of(self, state: Any, input_type: InputType) -> Any:
        """The message list an approval edit can update (None for bare tool calls)."""
        if input_type == "list":
            return state
        if input_type == "dict":
            if isinstance(state, dict):
                return state.get(self.messages_key)
            return getattr(state, self.messages_key, None)
        return None

    # -- input -----------------------------------------------------------------------------

    def _parse_input(self, input: Any) -> tuple[list[ToolCall], InputType, Any]:
        """Find the tool calls to run, how to shape the output, and the state to inject."""
        if isinstance(input, dict) and input.get("__type") == "tool_call_with_context":
            return [input["tool_call"]], "tool_calls", input.get("state")
        if isinstance(input, list):
            if input and all(_is_raw_tool_call(item) for item in input):
                return [_as_tool_call(item) for item in input], "tool_calls", input
            return _calls_of(input), "list", input
        if isinstance(input, dict):
            messages = input.get(self.messages_key)
            input_type: InputType = "dict"
        else:
            messages = getattr(input, self.messages_key, None)
            input_type = "dict"
        if not messages:
            raise ValueError(
                f"ToolNode found no messages in its input: expected a state with a "
                f"non-empty {self.messages_key!r} key, a list of messages, or a list of "
                f"tool calls, got {type(input).__name__}."
            )
        return _calls_of(messages), input_type, input

    def inject_tool_args(self, tool_call: ToolCall, input: Any, store: Any) -> ToolCall:
        """Return ``tool_call`` with its injected arguments (state, store) filled in."""
        return self._prepare(tool_call, input, store)

    def _prepare(self, call: ToolCall, state: Any, store: Any) -> ToolCall:
        injections = self._injections.get(call["name"])
        if injections is None:
            return call
        args = dict(call["args"])
        for arg, key in injections.state.items():
            args[arg] = _state_value(state, key, call["name"])
        if injections.store:
            if store is None and not injections.store_optional:
                raise ValueError(
                    f"Tool {call['name']!r} needs a store (argument {injections.store!r} is "
                    "annotated with InjectedStore) but none is available. Compile the "
                    "graph with one: builder.compile(store=InMemoryStore())."
                )
            args[injections.store] = store
        return {**call, "args": args}

    # -- running one call -------------------------------------------------------------------

    def _run_one(self, call: ToolCall, input_type: InputType, config: RunnableConfig) -> Any:
        if (invalid := self._invalid_call(call)) is not None:
            return invalid
        tool = self.tools_by_name[call["name"]]
        try:
            try:
                response = tool.invoke({**call, "type": "tool_call"}, config)
            except (ValidationErrorV2, ValidationErrorV1) as exc:
                wrapped = self._invocation_error(tool, call, exc)
                if wrapped is None:
                    raise
                raise wrapped from exc
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._handled(exc, call)
        return self._checked_output(response, call, input_type)

    async def _arun_one(self, call: ToolCall, input_type: InputType, config: RunnableConfig) -> Any:
        if (invalid := self._invalid_call(call)) is not None:
            return invalid
        tool = self.tools_by_name[call["name"]]
        try:
            try:
                response = await tool.ainvoke({**call, "type": "tool_call"}, config)
            except (ValidationErrorV2, ValidationErrorV1) as exc:
                wrapped = self._invocation_error(tool, call, exc)
                if wrapped is None:
                    raise
                raise wrapped from exc
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._handled(exc, call)
        return self._checked_output(response, call, input_type)

    def _invalid_call(self, call: ToolCall) -> ToolMessage | None:
        if call["name"] in self.tools_by_name:
            return None
        content = INVALID_TOOL_NAME_ERROR_TEMPLATE.format(
            requested_tool=call["name"], available_tools=", ".join(self.tools_by_name)
        )
        return ToolMessage(
            content=content, name=call["name"], tool_call_id=call["id"], status="error"
        )

    def _invocation_error(
        self, tool: BaseTool, call: ToolCall, exc: Exception
    ) -> ToolInvocationError | None:
        """Wrap ``exc`` if it comes from validating the call's arguments, else None.

        A ValidationError raised by the tool's own code (it may validate other models)
        is the tool's failure, not the model's, so it is not wrapped.
        """
        schema = tool.args_schema
        if not (isinstance(schema, type) and issubclass(schema, BaseModel | _BaseModelV1)):
            return None
        if isinstance(exc, ValidationErrorV2):
            if exc.title != schema.__name__:
                return None
        elif getattr(exc, "model", None) is not schema:
            return None
        hidden = self._injections[tool.name].names | _injected_call_id_args(tool)
        model_args = {k: v for k, v in call["args"].items() if k not in hidden}
        return ToolInvocationError(
            call["name"], exc, model_args, _validation_text(exc, schema.__name__, hidden)
        )

    def _handled(self, exc: Exception, call: ToolCall) -> ToolMessage:
        flag = self.handle_tool_errors
        if not isinstance(exc, self._caught):
            raise exc
        if isinstance(flag, str):
            content: Any = flag
        elif flag is True or isinstance(flag, type | tuple):
            content = TOOL_CALL_ERROR_TEMPLATE.format(error=repr(exc))
        else:
            content = cast(Callable[..., Any], flag)(exc)
        return ToolMessage(
            content=content, name=call["name"], tool_call_id=call["id"], status="error"
        )

    def _checked_output(self, response: Any, call: ToolCall, input_type: InputType) -> Any:
        if isinstance(response, Command):
            return self._checked_command(response, call, input_type)
        if isinstance(response, ToolMessage):
            return response
        raise TypeError(
            f"Tool {call['name']!r} returned {type(response).__name__}; ToolNode expects "
            "a ToolMessage or a Command (tools get a ToolMessage automatically when "
            "invoked with a tool call)."
        )

    def _checked_command(self, command: Command, call: ToolCall, input_type: InputType) -> Any:
        """Make sure a Command from a tool answers its tool call with a ToolMessage.

        Every tool call in the history needs a ToolMessage with its id, or the next model
        call is rejected by the provider; catching it here names the tool at fault.
        """
        update = command.update
        if isinstance(update, dict):
            if input_type == "list":
                raise ValueError(
                    f"Tool {call['name']!r} returned a Command whose update is a dict, but "
                    "ToolNode was given a list of messages: return the update as a list "
                    f"of messages, or give ToolNode a state with a {self.messages_key!r} "
                    "key."
                )
            messages = convert_to_messages(update.get(self.messages_key, []))
        elif isinstance(update, list):
            if input_type != "list":
                raise ValueError(
                    f"Tool {call['name']!r} returned a Command whose update is a list, "
                    "which only works when ToolNode is given a list of messages; return "
                    f"{{{self.messages_key!r}: [...]}} instead."
                )
            messages = convert_to_messages(update)
        else:
            return command
        if _removes_everything(messages):
            return command
        answered = False
        for i, message in enumerate(messages):
            if isinstance(message, ToolMessage) and message.tool_call_id == call["id"]:
                # A copy: the tool may reuse its message objects.
                messages[i] = message.model_copy(update={"name": call["name"]})
                answered = True
        if command.graph is None and not answered:
            example = (
                f'Command(update={{"{self.messages_key}": [ToolMessage("Success", '
                "tool_call_id=tool_call_id), ...]}, ...)"
            )
            raise ValueError(
                f"Tool {call['name']!r} returned a Command without a ToolMessage for its "
                f"tool call (id {call['id']!r}); got messages {messages!r}. Every tool "
                "call in the history needs a ToolMessage answering it. Take the id with "
                "an `Annotated[str, InjectedToolCallId]` argument and return "
                f"`{example}`."
            )
        if isinstance(update, dict):
            return replace(command, update={**update, self.messages_key: messages})
        return replace(command, update=messages)

    def _combine(self, outputs: list[Any], input_type: InputType) -> Any:
        if not any(isinstance(out, Command) for out in outputs):
            return outputs if input_type == "list" else {self.messages_key: outputs}
        combined: list[Any] = []
        parent_sends: list[Send] = []
        for out in outputs:
            if isinstance(out, Command):
                sends = _only_sends(out.goto)
                if out.graph == Command.PARENT and out.update is None and sends:
                    # Merge hand-offs to the parent so it fans out in one step.
                    parent_sends.extend(sends)
                else:
                    combined.append(out)
            elif input_type == "list":
                combined.append([out])
            else:
                combined.append({self.messages_key: [out]})
        if parent_sends:
            combined.append(Command(graph=Command.PARENT, goto=parent_sends))
        return combined


def tools_condition(
    state: list[AnyMessage] | dict[str, Any] | BaseModel | Any,
    messages_key: str = "messages",
) -> Literal["tools", "__end__"]:
    """Route to ``"tools"`` when the last message asks for tool calls, else to ``END``.

    Use it as the conditional edge after the model node:
    ``builder.add_conditional_edges("agent", tools_condition)``.
    """
    if isinstance(state, list):
        messages = state
    elif isinstance(state, dict):
        messages = state.get(messages_key, [])
    else:
        messages = getattr(state, messages_key, [])
    if not messages:
        raise ValueError(f"No messages found in input state to tool_edge: {state}")
    if getattr(messages[-1], "tool_calls", None):
        return "tools"
    return END


# -- helpers --------------------------------------------------------------------------------


def _as_tool(item: Any) -> BaseTool:
    if isinstance(item, BaseTool):
        return item
    if not callable(item):
        raise TypeError(
            f"ToolNode accepts BaseTool instances, @tool functions and plain callables, "
            f"got {item!r}."
        )
    if inspect.getdoc(item):
        return create_tool(item)
    # A docstring is only the model-facing description: do not refuse a tool without one.
    name = getattr(item, "__name__", type(item).__name__)
    if inspect.iscoroutinefunction(item):
        return StructuredTool.from_function(coroutine=item, name=name, description=name)
    return StructuredTool.from_function(item, name=name, description=name)


def _find_injections(tool: BaseTool) -> _Injections:
    state: dict[str, str | None] = {}
    store: str | None = None
    store_optional = False
    for arg, annotation in _argument_annotations(tool).items():
        for marker in _metadata(annotation):
            if marker is InjectedState:
                state[arg] = None
            elif isinstance(marker, InjectedState):
                state[arg] = marker.field
            elif marker is InjectedStore or isinstance(marker, InjectedStore):
                store = arg
                store_optional = _accepts_none(get_args(annotation)[0])
    return _Injections(state=state, store=store, store_optional=store_optional)


def _argument_annotations(tool: BaseTool) -> dict[str, Any]:
    schema = tool.args_schema
    if isinstance(schema, dict):
        return {}
    try:
        return dict(get_all_basemodel_annotations(tool.get_input_schema()))
    except Exception:  # an unusual schema: fall back to the function's signature
        func = getattr(tool, "func", None) or getattr(tool, "coroutine", None)
        if func is None:
            return {}
        return typing.get_type_hints(func, include_extras=True)


def _injected_call_id_args(tool: BaseTool) -> frozenset[str]:
    from langchain_core.tools import InjectedToolCallId

    return frozenset(
        arg
        for arg, annotation in _argument_annotations(tool).items()
        if any(
            m is InjectedToolCallId or isinstance(m, InjectedToolCallId)
            for m in _metadata(annotation)
        )
    )


def _metadata(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is Annotated:
        return get_args(annotation)[1:]
    return ()


def _accepts_none(tp: Any) -> bool:
    if tp is Any or tp is None or tp is type(None):
        return True
    if get_origin(tp) in (Union, types.UnionType):
        return any(_accepts_none(arg) for arg in get_args(tp))
    return False


def _caught_exception_types(flag: Any) -> tuple[type[BaseException], ...]:
    """Which exceptions ``handle_tool_errors`` turns into error messages."""
    if flag is False:
        return ()
    if flag is True or isinstance(flag, str):
        return (Exception,)
    if isinstance(flag, type) and issubclass(flag, BaseException):
        return (flag,)
    if isinstance(flag, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in flag
    ):
        return flag
    if callable(flag):
        return _annotated_exception_types(flag)
    raise TypeError(
        "handle_tool_errors must be a bool, a str, an exception class or tuple of them, "
        f"or a callable taking the exception; got {flag!r}."
    )


def _annotated_exception_types(handler: Callable[..., Any]) -> tuple[type[BaseException], ...]:
    # For a callable object, its __call__ carries the annotations.
    target = handler if inspect.isroutine(handler) else handler.__call__  # type: ignore[operator]
    params = list(inspect.signature(target).parameters.values())
    if not params or params[0].annotation is inspect.Parameter.empty:
        return (Exception,)
    try:
        hints = typing.get_type_hints(target)
        annotation = hints.get(params[0].name, params[0].annotation)
    except Exception:
        annotation = params[0].annotation
    options = (
        get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType)
        else (annotation,)
    )
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in options):
        raise ValueError(
            f"The first parameter of the handle_tool_errors callable {handler!r} must be "
            f"annotated with exception types (or not annotated), got {annotation!r}."
        )
    return tuple(options)


def _is_raw_tool_call(item: Any) -> bool:
    return isinstance(item, dict) and "name" in item and "args" in item and "role" not in item


def _as_tool_call(item: dict[str, Any]) -> ToolCall:
    return {"name": item["name"], "args": item["args"], "id": item.get("id"), "type": "tool_call"}


def _calls_of(messages: Sequence[Any]) -> list[ToolCall]:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return list(message.tool_calls)
    raise ValueError(
        "ToolNode found no AIMessage in its input messages, so there are no tool calls to "
        "run. Route to it only after a model turn that called tools (see tools_condition)."
    )


def _state_value(state: Any, key: str | None, tool_name: str) -> Any:
    if key is None:
        return state
    if isinstance(state, dict):
        return state.get(key)
    if isinstance(state, list):
        raise ValueError(
            f"Tool {tool_name!r} asks for state key {key!r} (InjectedState) but ToolNode "
            "was given a list, not a graph state: give it a state dict."
        )
    return getattr(state, key, None)


def _current_store() -> Any:
    from threadloom.config import get_store

    try:
        return get_store()
    except RuntimeError:  # not running inside a graph
        return None


def _removes_everything(messages: list[BaseMessage]) -> bool:
    return (
        len(messages) == 1
        and isinstance(messages[0], RemoveMessage)
        and messages[0].id == REMOVE_ALL_MESSAGES
    )


def _only_sends(goto: Any) -> list[Send]:
    if isinstance(goto, Send):
        return [goto]
    if isinstance(goto, list | tuple) and goto and all(isinstance(g, Send) for g in goto):
        return list(goto)
    return []


def _validation_text(exc: Exception, title: str, hidden: frozenset[str]) -> str:
    """The validation error as the model should read it: only about arguments it gave."""
    errors = [err for err in _errors_of(exc) if not (err.get("loc") and err["loc"][0] in hidden)]
    if not hidden:
        return str(exc)
    # Rebuilt by hand: pydantic's text quotes whole inputs, which hold the injected state.
    lines = [f"{len(errors)} validation error{'s' if len(errors) != 1 else ''} for {title}"]
    for err in errors:
        loc = ".".join(str(part) for part in err.get("loc", ()))
        lines.append(f"{loc}\n  {err.get('msg')} [type={err.get('type')}]")
    return "\n".join(lines)


def _errors_of(exc: Exception) -> list[dict[str, Any]]:
    try:
        return list(exc.errors())  # type: ignore[attr-defined]
    except Exception:
        return []
