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
import functools
import inspect
import json
import types
import typing
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    Union,
    cast,
    get_args,
    get_origin,
)

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
from langchain_core.tools.base import (
    InjectedToolCallId,
    _DirectlyInjectedToolArg,
    _is_injected_arg_type,
    get_all_basemodel_annotations,
)
from pydantic import BaseModel
from pydantic import ValidationError as ValidationErrorV2
from pydantic.v1 import BaseModel as _BaseModelV1
from pydantic.v1 import ValidationError as ValidationErrorV1
from typing_extensions import TypedDict, TypeVar

from threadloom._context import current_task
from threadloom.constants import END
from threadloom.engine.tools import emit_tool_output_delta, writing_tool_output
from threadloom.errors import GraphBubbleUp, is_invalid_resume
from threadloom.graph.message import REMOVE_ALL_MESSAGES
from threadloom.types import Command, Send

__all__ = [
    "INVALID_TOOL_NAME_ERROR_TEMPLATE",
    "TOOL_CALL_ERROR_TEMPLATE",
    "TOOL_INVOCATION_ERROR_TEMPLATE",
    "InjectedState",
    "InjectedStore",
    "ToolCallRequest",
    "ToolCallWithContext",
    "ToolInvocationError",
    "ToolNode",
    "ToolRuntime",
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
# Defaults (typing_extensions) let ToolRuntime[Ctx] leave the state type out.
ContextT = TypeVar("ContextT", default=None)
StateT = TypeVar("StateT", default=Any)


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
        filtered_errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.tool_name = tool_name
        self.source = source
        self.tool_kwargs = tool_kwargs
        # The validation errors about arguments the model gave (injected ones left out).
        self.filtered_errors = filtered_errors
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
    """Which arguments of one tool the node fills in, found once per tool."""

    state: dict[str, str | None]  # argument -> state key (None: the whole state)
    store: str | None
    store_optional: bool
    runtime: tuple[str, ...]  # arguments typed ToolRuntime
    defaulted: frozenset[str]  # state arguments with a default: a missing key keeps it
    other: tuple[str, ...]  # other InjectedToolArg arguments (not the call id): never the model's

    @property
    def names(self) -> frozenset[str]:
        names = set(self.state) | set(self.runtime)
        if self.store:
            names.add(self.store)
        return frozenset(names)


@dataclass
class ToolRuntime(_DirectlyInjectedToolArg, Generic[ContextT, StateT]):
    """What a tool can ask of the run: declare a parameter typed ``ToolRuntime``.

    The parameter is hidden from the model (langchain_core treats ``ToolRuntime`` as an
    injected argument) and filled by ``ToolNode`` with the graph ``state`` the call was
    made in, the run's ``context``, ``store`` and ``stream_writer``, the node's
    ``config``, the ``tool_call_id``, and the ``tools`` the node can run.
    """

    state: StateT
    context: ContextT
    config: RunnableConfig
    stream_writer: Any
    tool_call_id: str | None
    store: Any
    tools: list[BaseTool] = field(default_factory=list)
    execution_info: Any = None
    server_info: Any = None

    def emit_output_delta(self, delta: Any) -> None:
        """Stream ``delta`` as partial output of this call on ``stream_mode="tools"``
        (a ``tool-output-delta`` event); a no-op when nobody streams ``tools``."""
        emit_tool_output_delta(delta)


_REQUEST_FIELDS = frozenset({"tool_call", "tool", "state", "runtime"})


@dataclass
class ToolCallRequest:
    """One tool call as a ``wrap_tool_call`` hook sees it.

    ``tool`` is None when no registered tool has the call's name (a hook may answer
    such calls itself, or supply a tool with ``request.override(tool=...)``). Make
    changes with ``override(...)``, which returns a new request; assigning attributes
    still works but is deprecated.
    """

    tool_call: ToolCall
    tool: BaseTool | None
    state: Any
    runtime: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ready", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _REQUEST_FIELDS and getattr(self, "_ready", False):
            warnings.warn(
                f"Setting attribute {name!r} on ToolCallRequest is deprecated; use "
                f"request.override({name}=...) to make a modified copy instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        object.__setattr__(self, name, value)

    def override(self, **changes: Any) -> ToolCallRequest:
        """A copy of this request with ``changes`` (tool_call, tool, state, runtime)."""
        unknown = set(changes) - _REQUEST_FIELDS
        if unknown:
            raise TypeError(
                f"ToolCallRequest.override() got unknown field(s) {sorted(unknown)}; "
                f"expected some of {sorted(_REQUEST_FIELDS)}."
            )
        return replace(self, **changes)


ToolCallHandler = Callable[[ToolCallRequest], Any]
ToolCallWrapper = Callable[[ToolCallRequest, Callable[[ToolCallRequest], Any]], Any]
AsyncToolCallWrapper = Callable[
    [ToolCallRequest, Callable[[ToolCallRequest], Awaitable[Any]]], Awaitable[Any]
]


class _Several:
    """A tool's list of outputs (Commands and ToolMessages) for one call, kept together."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


class ToolNode(Runnable[Any, Any]):
    """A graph node that executes the tool calls of the latest ``AIMessage``.

    Input: a state dict (or state object) holding ``messages_key``, a list of messages,
    or a list of tool-call dicts. Output: ``{messages_key: [ToolMessage, ...]}`` (a plain
    list for list-of-messages input), one message per call in tool-call order. When a
    tool returns a ``Command`` the output is a list of Commands and message updates for
    the graph to apply. Several calls run concurrently: a thread pool for ``invoke``,
    ``asyncio.gather`` for ``ainvoke``.

    ``handle_tool_errors`` says which exceptions become error ``ToolMessage``s instead of
    failing the run: the default only argument-validation errors; ``True`` all; a string
    all, answered with that text; an exception class or tuple only those; a callable
    only the types its first parameter is annotated with, answered with its return
    value; ``False`` none. Interrupts (``GraphBubbleUp``) and answers to an interrupt that
    do not match its ``response_schema`` always propagate.

    ``wrap_tool_call(request, execute)`` (and ``awrap_tool_call`` for ``ainvoke``) wraps
    each call: it gets a ``ToolCallRequest`` and a function that executes one, and may
    change the request, skip execution and answer itself, retry, or change the result.

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
        wrap_tool_call: ToolCallWrapper | None = None,
        awrap_tool_call: AsyncToolCallWrapper | None = None,
        approval: Any = None,
    ) -> None:
        self.name = name
        self.tags = list(tags or [])
        self.handle_tool_errors = handle_tool_errors
        self.messages_key = messages_key
        self.wrap_tool_call = wrap_tool_call
        self.awrap_tool_call = awrap_tool_call
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

    # LangGraph keeps these two under private names, and libraries that rebuild a ToolNode
    # with the same settings (langgraph-supervisor) read them from there.
    @property
    def _handle_tool_errors(self) -> ErrorHandler:
        return self.handle_tool_errors

    @property
    def _messages_key(self) -> str:
        return self.messages_key

    def __repr__(self) -> str:
        return f"ToolNode(tools={list(self.tools_by_name)!r}, name={self.name!r})"

    # -- Runnable ------------------------------------------------------------------------

    # (langchain calls func(input, config=...) when func takes ``config``; the annotation of
    # _call_with_config lists only the run_manager forms, hence the two ignores)
    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(
            self._run_sync, input, self._config(config)  # type: ignore[arg-type]
        )

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(
            self._run_async, input, self._config(config)  # type: ignore[arg-type]
        )

    def _config(self, config: RunnableConfig | None) -> RunnableConfig:
        config = ensure_config(config)
        if self.tags:
            config = patch_config(config)
            config["tags"] = [*config.get("tags", []), *self.tags]
        return config

    def _run_sync(self, input: Any, config: RunnableConfig) -> Any:
        calls, input_type, state = self._parse_input(input, config)
        gated = None
        if self._approval_gate is not None:
            gated = self._approval_gate.checked_review(calls, self._messages_of(state, input_type))
            calls = gated.to_run if gated is not None else calls
        runtime = _runtime_of(config)
        requests = [self._request(call, state, runtime, config) for call in calls]
        configs = get_config_list(config, len(requests))
        if len(requests) <= 1:  # no thread for the common single call
            outputs = [
                self._run_one(r, input_type, cf) for r, cf in zip(requests, configs, strict=True)
            ]
        else:
            with get_executor_for_config(config) as executor:
                outputs = list(
                    executor.map(self._run_one, requests, [input_type] * len(requests), configs)
                )
        if gated is not None:
            outputs = gated.merge(outputs)
        return self._combine(outputs, input_type)

    async def _run_async(self, input: Any, config: RunnableConfig) -> Any:
        calls, input_type, state = self._parse_input(input, config)
        gated = None
        if self._approval_gate is not None:
            gated = await self._approval_gate.acheck_review(
                calls, self._messages_of(state, input_type)
            )
            calls = gated.to_run if gated is not None else calls
        runtime = _runtime_of(config)
        requests = [self._request(call, state, runtime, config) for call in calls]
        configs = get_config_list(config, len(requests))
        outputs = list(await asyncio.gather(
            *(self._arun_one(r, input_type, cf) for r, cf in zip(requests, configs, strict=True))
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

    def _parse_input(
        self, input: Any, config: RunnableConfig | None = None
    ) -> tuple[list[ToolCall], InputType, Any]:
        """Find the tool calls to run, how to shape the output, and the state to inject."""
        if isinstance(input, dict) and input.get("__type") == "tool_call_with_context":
            return [input["tool_call"]], "tool_calls", input.get("state")
        if isinstance(input, list):
            if input and all(_is_raw_tool_call(item) for item in input):
                # Bare calls (e.g. Send("tools", [call])): the state is the graph's, if known.
                state = _read_graph_state(config)
                return (
                    [_as_tool_call(item) for item in input],
                    "tool_calls",
                    input if state is None else state,
                )
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

    def _request(
        self, call: ToolCall, state: Any, runtime: Any, config: RunnableConfig
    ) -> ToolCallRequest:
        tool_runtime = ToolRuntime(
            state=state,
            context=getattr(runtime, "context", None),
            config=config,
            stream_writer=getattr(runtime, "stream_writer", None),
            tool_call_id=call.get("id"),
            store=getattr(runtime, "store", None),
            tools=list(self.tools_by_name.values()),
            execution_info=getattr(runtime, "execution_info", None),
            server_info=getattr(runtime, "server_info", None),
        )
        return ToolCallRequest(
            tool_call=call,
            tool=self.tools_by_name.get(call["name"]),
            state=state,
            runtime=tool_runtime,
        )

    def inject_tool_args(self, tool_call: ToolCall, input: Any, store: Any) -> ToolCall:
        """Return ``tool_call`` with its injected arguments (state, store) filled in."""
        tool = self.tools_by_name.get(tool_call["name"])
        if tool is None:
            return tool_call
        runtime = ToolRuntime(
            state=input, context=None, config={}, stream_writer=None,
            tool_call_id=tool_call.get("id"), store=store,
            tools=list(self.tools_by_name.values()),
        )
        return self._prepare(tool, tool_call, input, runtime)

    def _injections_of(self, tool: BaseTool) -> _Injections:
        found = self._injections.get(tool.name)
        if found is None or self.tools_by_name.get(tool.name) is not tool:
            found = _find_injections(tool)  # a tool a wrapper supplied
        return found

    def _prepare(self, tool: BaseTool, call: ToolCall, state: Any, runtime: Any) -> ToolCall:
        injections = self._injections_of(tool)
        if not (injections.names or injections.other):
            return call
        # The model must not supply injected arguments: drop whatever it sent for them.
        args = {k: v for k, v in call["args"].items() if k not in injections.other}
        bare = isinstance(state, list)
        if bare:  # bare messages: the state is {messages_key: messages}
            state = {self.messages_key: state}
        for arg, key in injections.state.items():
            if key is None:
                args[arg] = state
            elif _has_key(state, key):
                args[arg] = _get_key(state, key)
            elif arg in injections.defaulted:
                args.pop(arg, None)  # the tool's default applies
            elif bare:
                raise ValueError(
                    f"Tool {call['name']!r} asks for state key {key!r} (InjectedState) but "
                    "ToolNode was given a list of messages, not a graph state: give it a "
                    "state dict."
                )
            else:
                raise KeyError(
                    f"Tool {call['name']!r} asks for state key {key!r} (InjectedState), "
                    "which the state does not have."
                )
        if injections.store:
            store = getattr(runtime, "store", None)
            if store is None and not injections.store_optional:
                raise ValueError(
                    f"Tool {call['name']!r} needs a store (argument {injections.store!r} is "
                    "annotated with InjectedStore) but none is available. Compile the "
                    "graph with one: builder.compile(store=InMemoryStore())."
                )
            args[injections.store] = store
        for arg in injections.runtime:
            args[arg] = runtime
        return {**call, "args": args}

    def _execution_runtime(self, request: ToolCallRequest) -> Any:
        """The request's ToolRuntime, agreeing with its (possibly overridden) state."""
        runtime = request.runtime
        call_id = request.tool_call.get("id")
        if isinstance(runtime, ToolRuntime):
            if runtime.state is not request.state or runtime.tool_call_id != call_id:
                runtime = replace(runtime, state=request.state, tool_call_id=call_id)
            return runtime
        return ToolRuntime(
            state=request.state,
            context=getattr(runtime, "context", None),
            config={},
            stream_writer=getattr(runtime, "stream_writer", None),
            tool_call_id=call_id,
            store=getattr(runtime, "store", None),
            tools=list(self.tools_by_name.values()),
        )

    # -- running one call -------------------------------------------------------------------

    def _run_one(
        self, request: ToolCallRequest, input_type: InputType, config: RunnableConfig
    ) -> Any:
        def execute(req: ToolCallRequest) -> Any:
            return self._execute(req, input_type, config)

        if self.wrap_tool_call is None:
            if self.awrap_tool_call is not None:
                raise TypeError(
                    "This ToolNode has only an async awrap_tool_call hook, so it must run "
                    "with ainvoke()/astream(); or also pass wrap_tool_call."
                )
            return execute(request)
        try:
            return self.wrap_tool_call(request, execute)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._handled(exc, request.tool_call)

    async def _arun_one(
        self, request: ToolCallRequest, input_type: InputType, config: RunnableConfig
    ) -> Any:
        async def execute(req: ToolCallRequest) -> Any:
            return await self._aexecute(req, input_type, config)

        if self.awrap_tool_call is None:
            if self.wrap_tool_call is not None:
                # Only a sync hook: it runs here, its execute() runs the tool synchronously.
                return self._run_one(request, input_type, config)
            return await execute(request)
        try:
            return await self.awrap_tool_call(request, execute)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._handled(exc, request.tool_call)

    def _execute(
        self, request: ToolCallRequest, input_type: InputType, config: RunnableConfig
    ) -> Any:
        call = request.tool_call
        tool = request.tool
        if tool is None:
            return self._invalid_call(call)
        # Injection failures (no store, a missing state key) are the graph's, not the
        # model's: they propagate whatever handle_tool_errors says.
        prepared = self._prepare(tool, call, request.state, self._execution_runtime(request))
        try:
            try:
                with writing_tool_output(config, call.get("id")):
                    response = tool.invoke({**prepared, "type": "tool_call"}, config)
            except (ValidationErrorV2, ValidationErrorV1) as exc:
                wrapped = self._invocation_error(tool, call, exc)
                if wrapped is None:
                    raise
                raise wrapped from exc
            if isinstance(response, list):
                return _Several(self._checked_several(response, call))
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._handled(exc, call)
        return self._checked_output(response, call, input_type)

    async def _aexecute(
        self, request: ToolCallRequest, input_type: InputType, config: RunnableConfig
    ) -> Any:
        call = request.tool_call
        tool = request.tool
        if tool is None:
            return self._invalid_call(call)
        # Injection failures (no store, a missing state key) are the graph's, not the
        # model's: they propagate whatever handle_tool_errors says.
        prepared = self._prepare(tool, call, request.state, self._execution_runtime(request))
        try:
            try:
                with writing_tool_output(config, call.get("id")):
                    response = await tool.ainvoke({**prepared, "type": "tool_call"}, config)
            except (ValidationErrorV2, ValidationErrorV1) as exc:
                wrapped = self._invocation_error(tool, call, exc)
                if wrapped is None:
                    raise
                raise wrapped from exc
            if isinstance(response, list):
                return _Several(self._checked_several(response, call))
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._handled(exc, call)
        return self._checked_output(response, call, input_type)

    def _invalid_call(self, call: ToolCall) -> ToolMessage:
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
        schema_name = schema.__name__
        if isinstance(exc, ValidationErrorV2):
            if exc.title != schema_name:
                return None
        elif getattr(exc, "model", None) is not schema:
            return None
        injections = self._injections_of(tool)
        hidden = injections.names | frozenset(injections.other) | _injected_call_id_args(tool)
        model_args = {k: v for k, v in call["args"].items() if k not in hidden}
        return ToolInvocationError(
            call["name"],
            exc,
            model_args,
            _validation_text(exc, schema_name, hidden),
            filtered_errors=_model_errors(exc, hidden),
        )

    def _handled(self, exc: Exception, call: ToolCall) -> ToolMessage:
        flag = self.handle_tool_errors
        # A bad answer to an interrupt is the person's, not the tool's: the run fails
        # (nothing saved) so the same interrupt can be answered again.
        if not isinstance(exc, self._caught) or is_invalid_resume(exc):
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

    def _checked_several(self, items: list[Any], call: ToolCall) -> list[Any]:
        """A tool's list of Commands/ToolMessages: exactly one must answer the call."""
        answers = 0
        checked: list[Any] = []
        for item in items:
            if isinstance(item, ToolMessage):
                if item.tool_call_id == call["id"]:
                    answers += 1
                    item = item.model_copy(update={"name": call["name"]})
                checked.append(item)
            elif isinstance(item, Command):
                update = item.update
                if isinstance(update, dict):
                    messages = convert_to_messages(update.get(self.messages_key, []))
                    answers += sum(
                        isinstance(m, ToolMessage) and m.tool_call_id == call["id"]
                        for m in messages
                    )
                checked.append(item)
            else:
                raise TypeError(
                    f"Tool {call['name']!r} returned a list holding "
                    f"{type(item).__name__}; a list return may hold only Commands and "
                    "ToolMessages."
                )
        if answers != 1:
            raise ValueError(
                f"Tool {call['name']!r} returned a list with {answers} messages bound to "
                f"tool_call_id {call['id']!r}; exactly one ToolMessage (top level or in a "
                f"Command's {self.messages_key!r} update) must answer the call."
            )
        return checked

    def _checked_output(self, response: Any, call: ToolCall, input_type: InputType) -> Any:
        if isinstance(response, Command):
            return self._checked_command(response, call, input_type)
        if isinstance(response, ToolMessage):
            return _json_content(response)
        raise TypeError(
            f"Tool {call['name']!r} returned {type(response).__name__}; ToolNode expects "
            "a ToolMessage or a Command (tools get a ToolMessage automatically when "
            "invoked with a tool call)."
        )

    def _checked_command(self, command: Command[Any], call: ToolCall, input_type: InputType) -> Any:
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
        if any(isinstance(out, _Several) for out in outputs):
            outputs = [
                item
                for out in outputs
                for item in (out.items if isinstance(out, _Several) else [out])
            ]
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
        made: BaseTool = create_tool(item)
        return made
    # A docstring is only the model-facing description: do not refuse a tool without one.
    name = getattr(item, "__name__", type(item).__name__)
    if inspect.iscoroutinefunction(item):
        return StructuredTool.from_function(coroutine=item, name=name, description=name)
    return StructuredTool.from_function(item, name=name, description=name)


def _find_injections(tool: BaseTool) -> _Injections:
    state: dict[str, str | None] = {}
    store: str | None = None
    store_optional = False
    runtime: list[str] = []
    other: list[str] = []
    for arg, annotation in _argument_annotations(tool).items():
        # an argument named ``runtime`` gets the ToolRuntime whatever its annotation says
        if arg == "runtime" or _is_tool_runtime(annotation):
            runtime.append(arg)
            continue
        mine = False
        for marker in _metadata(annotation):
            if marker is InjectedState:
                state[arg] = None
                mine = True
            elif isinstance(marker, InjectedState):
                state[arg] = marker.field
                mine = True
            elif marker is InjectedStore or isinstance(marker, InjectedStore):
                store = arg
                store_optional = _accepts_none(get_args(annotation)[0])
                mine = True
        if (
            not mine
            and _is_injected_arg_type(annotation)
            and not _is_injected_arg_type(annotation, injected_type=InjectedToolCallId)
        ):
            other.append(arg)
    return _Injections(
        state=state,
        store=store,
        store_optional=store_optional,
        runtime=tuple(runtime),
        other=tuple(other),
        defaulted=_defaulted_args(tool, state),
    )


def _defaulted_args(tool: BaseTool, names: Any) -> frozenset[str]:
    if not names:
        return frozenset()
    try:
        fields = getattr(tool.get_input_schema(), "model_fields", {})
    except Exception:
        return frozenset()
    return frozenset(n for n in names if n in fields and not fields[n].is_required())


def _is_tool_runtime(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    target = get_origin(annotation) or annotation
    return isinstance(target, type) and issubclass(target, ToolRuntime)


def _argument_annotations(tool: BaseTool) -> dict[str, Any]:
    """The tool's arguments and their annotations: its input schema's, plus those of its
    function that an explicit ``args_schema`` leaves out (injected ones, typically)."""
    annotations: dict[str, Any] = {}
    if not isinstance(tool.args_schema, dict):
        try:
            annotations = dict(get_all_basemodel_annotations(tool.get_input_schema()))
        except Exception:  # an unusual schema: the function's signature tells
            pass
    func = getattr(tool, "func", None) or getattr(tool, "coroutine", None)
    if func is not None:
        for name, annotation in _function_annotations(func).items():
            annotations.setdefault(name, annotation)
    return annotations


def _function_annotations(func: Any) -> dict[str, Any]:
    try:
        names = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return {}
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable annotations: the names still tell ``runtime``
        hints = {}
    return {name: hints.get(name, Any) for name in names}


def _injected_call_id_args(tool: BaseTool) -> frozenset[str]:
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


def _json_content(message: ToolMessage) -> ToolMessage:
    """A list result that is not content blocks (e.g. a list of strings) as JSON text.

    Content blocks (dicts with a ``type``) stay as they are; anything else in a list
    would be read by providers as text blocks, so it is sent as one JSON string
    (non-ASCII kept readable).
    """
    content = message.content
    if not isinstance(content, list) or all(
        isinstance(block, dict) and "type" in block for block in content
    ):
        return message
    try:
        text = json.dumps(content, ensure_ascii=False)
    except (TypeError, ValueError):
        return message
    return message.model_copy(update={"content": text})


def _has_key(state: Any, key: str) -> bool:
    if isinstance(state, dict):
        return key in state
    return hasattr(state, key)


def _get_key(state: Any, key: str) -> Any:
    return state[key] if isinstance(state, dict) else getattr(state, key)


def _runtime_of(config: RunnableConfig) -> Any:
    """The run's Runtime: the one in the config (``__pregel_runtime``), else the running
    node's, else an empty one (a ToolNode invoked outside any graph)."""
    from threadloom.runtime import Runtime, get_runtime

    given = (config.get("configurable") or {}).get("__pregel_runtime")
    if given is not None:
        return given
    try:
        return get_runtime()
    except RuntimeError:
        return Runtime()


def _read_graph_state(config: RunnableConfig | None) -> Any:
    """The graph state through a channel reader in the config (``__pregel_read``).

    The reader is a ``partial(read, scratchpad, channels, managed, task)`` taking
    ``(select, fresh)``; the channel names come from its ``channels`` argument.
    Without one, the running threadloom node's state; None outside a graph.
    """
    read = ((config or {}).get("configurable") or {}).get("__pregel_read")
    if isinstance(read, functools.partial) and len(read.args) >= 3:
        names = [*read.args[1], *(read.args[2] or ())]
        return read(names, False)
    # Inside a threadloom graph: the running node's view of the state, as an edge gives it.
    task = current_task.get()
    reader = getattr(getattr(task, "node", None), "read", None)
    if reader is None or getattr(task, "channels", None) is None:
        return None
    try:
        return reader(task.channels, task.managed)
    except Exception:  # e.g. a node reading only its own input channel
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
    errors = _model_errors(exc, hidden)
    if not hidden:
        return str(exc)
    # Rebuilt by hand: pydantic's text quotes whole inputs, which hold the injected state.
    lines = [f"{len(errors)} validation error{'s' if len(errors) != 1 else ''} for {title}"]
    for err in errors:
        loc = ".".join(str(part) for part in err.get("loc", ()))
        lines.append(f"{loc}\n  {err.get('msg')} [type={err.get('type')}]")
    return "\n".join(lines)


def _model_errors(exc: Exception, hidden: frozenset[str]) -> list[dict[str, Any]]:
    return [err for err in _errors_of(exc) if not (err.get("loc") and err["loc"][0] in hidden)]


def _errors_of(exc: Exception) -> list[dict[str, Any]]:
    try:
        return list(exc.errors())  # type: ignore[attr-defined]
    except Exception:
        return []


# The name LangGraph's own tests import for this helper.
_infer_handled_types = _annotated_exception_types
