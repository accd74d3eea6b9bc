"""``create_react_agent``: the model-calls-tools loop as a ready-made graph.

The graph alternates an ``agent`` node (one chat-model turn) with a ``tools`` node (the
tool calls of that turn) until the model answers without tool calls. Because it is an
ordinary ``StateGraph``, everything else applies unchanged: checkpoints,
``interrupt_before=["tools"]`` to approve tool calls, ``update_state`` to edit them,
streaming. Optional nodes: ``pre_model_hook`` / ``post_model_hook`` around the model and
``generate_structured_response`` at the end when ``response_format`` is given.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    cast,
    get_type_hints,
    is_typeddict,
)

from langchain_core.language_models import BaseChatModel, LanguageModelLike
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import (
    Runnable,
    RunnableBinding,
    RunnableConfig,
    RunnableLambda,
    RunnableSequence,
)
from langchain_core.tools import BaseTool
from pydantic import BaseModel
from typing_extensions import TypedDict

from threadloom.constants import END, START
from threadloom.errors import ErrorCode, create_error_message
from threadloom.graph.message import add_messages
from threadloom.managed import RemainingSteps
from threadloom.prebuilt.tool_node import ToolCallWithContext, ToolNode
from threadloom.types import Checkpointer, Send

if TYPE_CHECKING:
    from threadloom.graph.state import CompiledStateGraph

__all__ = [
    "AgentState",
    "AgentStatePydantic",
    "AgentStateWithStructuredResponse",
    "AgentStateWithStructuredResponsePydantic",
    "StateSchemaType",
    "StructuredResponse",
    "create_react_agent",
]

StructuredResponse = dict[str, Any] | BaseModel
StructuredResponseSchema = dict[str, Any] | type[BaseModel]
Prompt = (
    SystemMessage
    | str
    | Callable[[Any], Sequence[BaseMessage]]
    | Runnable[Any, Sequence[BaseMessage]]
)

StateSchemaType = type  # a TypedDict, pydantic model or dataclass describing the state

NOT_ENOUGH_STEPS = "Sorry, need more steps to process this request."


class AgentState(TypedDict):
    """The agent's state: the conversation, and the steps left before the limit."""

    messages: Annotated[Sequence[BaseMessage], add_messages]
    remaining_steps: RemainingSteps


class AgentStatePydantic(BaseModel):
    """``AgentState`` as a pydantic model, for agents whose extra keys need validation."""

    messages: Annotated[Sequence[BaseMessage], add_messages]
    remaining_steps: RemainingSteps = 25


class AgentStateWithStructuredResponse(AgentState):
    """``AgentState`` plus the final answer parsed into ``response_format``."""

    structured_response: StructuredResponse


class AgentStateWithStructuredResponsePydantic(AgentStatePydantic):
    """``AgentStatePydantic`` plus the final answer parsed into ``response_format``."""

    structured_response: StructuredResponse


class _ModelInput(TypedDict):
    """Extra key the ``agent`` node reads: messages a pre-model hook wants sent instead."""

    llm_input_messages: list[AnyMessage]


def create_react_agent(
    model: str | LanguageModelLike | Callable[..., Any],
    tools: Sequence[BaseTool | Callable[..., Any] | dict[str, Any]] | ToolNode,
    *,
    prompt: Prompt | None = None,
    response_format: StructuredResponseSchema | tuple[str, StructuredResponseSchema] | None = None,
    pre_model_hook: Runnable[Any, Any] | Callable[..., Any] | None = None,
    post_model_hook: Runnable[Any, Any] | Callable[..., Any] | None = None,
    state_schema: type | None = None,
    context_schema: type | None = None,
    checkpointer: Checkpointer = None,
    store: Any = None,
    interrupt_before: list[str] | None = None,
    interrupt_after: list[str] | None = None,
    debug: bool = False,
    version: Literal["v1", "v2"] = "v2",
    name: str | None = None,
    approval: Any = None,
    **deprecated_kwargs: Any,
) -> CompiledStateGraph:
    """Build a graph that calls ``model`` and runs the tools it asks for, in a loop.

    ``model`` is a chat model (tools are bound to it unless it already has them bound)
    or a callable ``(state, runtime) -> chat model`` chosen per turn. ``prompt`` is a
    system prompt string, a ``SystemMessage``, a callable ``state -> messages`` or a
    Runnable over the state. ``version="v2"`` runs each tool call as its own task (a
    ``Send``), so a breakpoint before ``tools`` lists one task per call; ``"v1"`` runs
    one ``ToolNode`` over all calls. When fewer than two steps remain before the
    recursion limit and the model still asks for tools, the agent answers
    ``"Sorry, need more steps to process this request."`` instead of failing.

    ``approval=ApprovalPolicy(...)`` (``threadloom.hitl``) pauses before the tools run for
    the calls the policy says need a person: one request per call, all of a turn in one
    interrupt (so the turn's calls go to one ``tools`` task, as with ``"v1"``).
    """
    from threadloom.graph import StateGraph

    if "config_schema" in deprecated_kwargs:
        import warnings

        from threadloom.warnings import LangGraphDeprecatedSinceV10

        warnings.warn(
            "`config_schema` is deprecated and will be removed. Please use "
            "`context_schema` instead.",
            LangGraphDeprecatedSinceV10,
            stacklevel=2,
        )
        config_schema = deprecated_kwargs.pop("config_schema")
        if context_schema is None:
            context_schema = config_schema
    if deprecated_kwargs:
        raise TypeError(
            f"create_react_agent() got unexpected keyword arguments: {deprecated_kwargs}"
        )
    if version not in ("v1", "v2"):
        raise ValueError(f"Invalid version {version!r}: expected 'v1' or 'v2'.")
    if state_schema is None:
        state_schema = (
            AgentStateWithStructuredResponse if response_format is not None else AgentState
        )
    else:
        _check_state_schema(state_schema, response_format is not None)

    tool_node, tool_classes, builtin_tools = _tool_setup(tools)
    if approval is not None:
        tool_node = _with_approval(tool_node, approval)
    tool_calling = bool(tool_classes)
    return_direct = {t.name for t in tool_classes if t.return_direct}
    model_source = _ModelSource(model, tool_classes, builtin_tools, prompt)
    agent = _Agent(model_source, pre_model_hook is not None, return_direct, name)
    entry = "pre_model_hook" if pre_model_hook is not None else "agent"
    compile_args: dict[str, Any] = {
        "checkpointer": checkpointer,
        "store": store,
        "interrupt_before": interrupt_before,
        "interrupt_after": interrupt_after,
        "debug": debug,
        "name": name,
    }

    builder: StateGraph[Any] = StateGraph(state_schema, context_schema=context_schema)
    agent_node = RunnableLambda(agent.call, afunc=agent.acall, name="agent")
    if pre_model_hook is not None:
        builder.add_node("pre_model_hook", pre_model_hook)
        builder.add_edge("pre_model_hook", "agent")
        builder.add_node("agent", agent_node, input_schema=_input_schema(state_schema))
    else:
        builder.add_node("agent", agent_node)
    builder.add_edge(START, entry)
    if post_model_hook is not None:
        builder.add_node("post_model_hook", post_model_hook)
        builder.add_edge("agent", "post_model_hook")
    if response_format is not None:
        structured = _StructuredResponder(model_source, response_format)
        builder.add_node(
            "generate_structured_response",
            RunnableLambda(
                structured.call, afunc=structured.acall, name="generate_structured_response"
            ),
        )
        builder.add_edge("generate_structured_response", END)
    final = "generate_structured_response" if response_format is not None else END

    if not tool_calling:
        last = "post_model_hook" if post_model_hook is not None else "agent"
        builder.add_edge(last, final)
        return builder.compile(**compile_args)

    builder.add_node("tools", tool_node)
    _allow_in_checkpoints(state_schema)
    # With approval, a turn's calls are decided together: one tools task for all of them.
    routing = "v1" if approval is not None else version
    router = _Router(routing, final, entry, return_direct, post_model_hook is not None)
    if post_model_hook is not None:
        builder.add_conditional_edges(
            "post_model_hook", router.after_post_hook, path_map=_unique([entry, "tools", final])
        )
    else:
        builder.add_conditional_edges("agent", router.after_agent, path_map=["tools", final])
    if return_direct:
        builder.add_conditional_edges("tools", router.after_tools, path_map=[entry, END])
    else:
        builder.add_edge("tools", entry)
    return builder.compile(**compile_args)


# -- tools ----------------------------------------------------------------------------------


def _tool_setup(
    tools: Sequence[Any] | ToolNode,
) -> tuple[ToolNode, list[BaseTool], list[dict[str, Any]]]:
    """Split ``tools`` into the node that runs them and what the model is told about.

    Dict entries are provider built-in tools (web search and the like): the provider
    runs them, so they are bound to the model but not given to the ``ToolNode``.
    """
    if isinstance(tools, ToolNode):
        return tools, list(tools.tools_by_name.values()), []
    builtin = [t for t in tools if isinstance(t, dict)]
    node = ToolNode([t for t in tools if not isinstance(t, dict)])
    return node, list(node.tools_by_name.values()), builtin


def _with_approval(node: ToolNode, approval: Any) -> ToolNode:
    """``node`` gated by ``approval`` (a new ToolNode with the same tools and options)."""
    if node.approval is not None:
        raise ValueError(
            "The ToolNode given to create_react_agent already has approval=...; pass the "
            "policy in one place only."
        )
    return ToolNode(
        list(node.tools_by_name.values()),
        name=node.name or "tools",  # (a ToolNode always has one)
        tags=node.tags,
        handle_tool_errors=node.handle_tool_errors,
        messages_key=node.messages_key,
        approval=approval,
    )


def _bound_tool_names(bound: Sequence[Any]) -> set[str]:
    names = set()
    for spec in bound:
        if isinstance(spec, BaseTool):
            names.add(spec.name)
        elif isinstance(spec, dict):
            if isinstance(spec.get("function"), dict) and "name" in spec["function"]:
                names.add(spec["function"]["name"])
            elif "name" in spec:
                names.add(spec["name"])
            elif isinstance(spec.get("toolSpec"), dict) and "name" in spec["toolSpec"]:
                names.add(spec["toolSpec"]["name"])
        elif tool_name := getattr(spec, "name", None) or getattr(spec, "__name__", None):
            names.add(tool_name)
    return names


def _needs_tool_binding(model: Any, tools: list[BaseTool], builtin_count: int) -> bool:
    """True unless ``model`` already has tools bound; then check they are the same tools.

    Users often pass ``llm.bind_tools(tools)`` (as in LangGraph's docs); binding again
    would send the tools twice, and binding different tools than the node can run would
    let the model call tools that do not exist.
    """
    if isinstance(model, RunnableSequence):
        model = next(
            (s for s in model.steps if isinstance(s, RunnableBinding | BaseChatModel)), model
        )
    if not isinstance(model, RunnableBinding) or "tools" not in model.kwargs:
        return True
    bound = model.kwargs["tools"]
    if len(tools) != len(bound) - builtin_count:
        raise ValueError(
            "The model has tools bound (model.bind_tools(...)) that differ in number from "
            f"the tools given to create_react_agent ({len(bound)} bound, {len(tools)} "
            "given). Pass the unbound model, or bind exactly the same tools."
        )
    missing = {t.name for t in tools} - _bound_tool_names(bound)
    if missing:
        raise ValueError(
            f"Tools {sorted(missing)} were given to create_react_agent but are not bound to "
            "the model (model.bind_tools()). Pass the unbound model, or bind the same tools."
        )
    return False


def _chat_model(model: Any) -> BaseChatModel:
    """The chat model inside a bound/prompted runnable (for ``with_structured_output``)."""
    if isinstance(model, RunnableSequence):
        model = next(
            (s for s in model.steps if isinstance(s, RunnableBinding | BaseChatModel)), model
        )
    while isinstance(model, RunnableBinding):
        model = model.bound
    if not isinstance(model, BaseChatModel):
        raise TypeError(
            "response_format needs a chat model (a langchain BaseChatModel) to produce "
            f"structured output; got {type(model).__name__}."
        )
    return model


# -- prompt and model -----------------------------------------------------------------------


def _messages_of(state: Any, key: str = "messages") -> list[BaseMessage]:
    if isinstance(state, dict):
        return list(state.get(key) or [])
    return list(getattr(state, key, None) or [])


def _prompt_runnable(prompt: Prompt | None) -> Runnable[Any, Any]:
    if prompt is None:
        return RunnableLambda(lambda state: _messages_of(state), name="Prompt")
    if isinstance(prompt, str):
        prompt = SystemMessage(content=prompt)
    if isinstance(prompt, SystemMessage):
        system = prompt
        return RunnableLambda(lambda state: [system, *_messages_of(state)], name="Prompt")
    if isinstance(prompt, Runnable):
        return prompt
    if callable(prompt):
        prompt = _with_store(prompt)
    if inspect.iscoroutinefunction(prompt):
        return RunnableLambda(_no_sync(prompt), afunc=prompt, name="Prompt")
    if callable(prompt):
        return RunnableLambda(prompt, name="Prompt")
    raise ValueError(
        f"Got unexpected type for prompt: {type(prompt).__name__}. Use a str, a "
        "SystemMessage, a callable taking the state, or a Runnable."
    )


def _with_store(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its ``store`` parameter (if any) filled with the graph's store.

    The result takes ``(state, config)``; ``config`` is passed on only if ``func`` has it.
    """
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return func
    if "store" not in params:
        return func
    wants_config = "config" in params

    def kwargs(config: RunnableConfig) -> dict[str, Any]:
        extra: dict[str, Any] = {"store": _current_store()}
        if wants_config:
            extra["config"] = config
        return extra

    if inspect.iscoroutinefunction(func):

        async def aprompt(state: Any, config: RunnableConfig) -> Any:
            return await func(state, **kwargs(config))

        return aprompt

    def prompt(state: Any, config: RunnableConfig) -> Any:
        return func(state, **kwargs(config))

    return prompt


def _current_store() -> Any:
    from threadloom.config import get_store

    try:
        return get_store()
    except RuntimeError:  # outside a graph run
        return None


def _no_sync(func: Callable[..., Any]) -> Callable[..., Any]:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(
            f"{func.__name__} is async, so the agent must run with ainvoke()/astream(); "
            "or pass a sync function."
        )

    return refuse


class _ModelSource:
    """Produces the runnable (prompt | model) for one agent turn.

    A static model is prepared once; a dynamic one (a callable returning a model) is
    resolved per turn, so it can depend on the state or the run's context.
    """

    def __init__(
        self,
        model: Any,
        tools: list[BaseTool],
        builtin: list[dict[str, Any]],
        prompt: Prompt | None,
    ) -> None:
        if isinstance(model, str):
            raise NotImplementedError(
                f"create_react_agent(model={model!r}): threadloom does not resolve "
                "'provider:model' strings. Pass a chat model object instead, e.g. "
                "ChatOpenAI(model='gpt-4o-mini') from langchain_openai."
            )
        self.tools = tools
        self.builtin = builtin
        self.prompt = _prompt_runnable(prompt)
        self.dynamic = callable(model) and not isinstance(model, Runnable)
        self.is_async = self.dynamic and inspect.iscoroutinefunction(model)
        self.factory = model if self.dynamic else None
        self.static = None if self.dynamic else self._prepared(model)
        self.raw_static = None if self.dynamic else model

    def _prepared(self, model: Any) -> Runnable[Any, Any]:
        if (self.tools or self.builtin) and _needs_tool_binding(
            model, self.tools, len(self.builtin)
        ):
            model = cast(BaseChatModel, model).bind_tools([*self.tools, *self.builtin])
        chain: Runnable[Any, Any] = self.prompt | model
        return chain

    def _factory_args(self, state: Any) -> tuple[Any, ...]:
        assert self.factory is not None
        params = [
            p
            for p in inspect.signature(self.factory).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(params) >= 2:
            return (state, _current_runtime())
        return (state,)

    def runnable(self, state: Any) -> Runnable[Any, Any]:
        if self.static is not None:
            return self.static
        if self.is_async:
            raise RuntimeError(
                "The model callable is async, so the agent must run with ainvoke()/"
                "astream(); or pass a sync callable."
            )
        return self._prepared(self.factory(*self._factory_args(state)))  # type: ignore[misc]

    async def arunnable(self, state: Any) -> Runnable[Any, Any]:
        if self.static is not None:
            return self.static
        made = self.factory(*self._factory_args(state))  # type: ignore[misc]
        if inspect.isawaitable(made):
            made = await made
        return self._prepared(made)

    def chat_model(self, state: Any) -> BaseChatModel:
        if self.raw_static is not None:
            return _chat_model(self.raw_static)
        return _chat_model(self.factory(*self._factory_args(state)))  # type: ignore[misc]


def _current_runtime() -> Any:
    from threadloom.runtime import Runtime, get_runtime

    try:
        return get_runtime()
    except RuntimeError:
        return Runtime()


# -- nodes ----------------------------------------------------------------------------------


class _Agent:
    """The ``agent`` node: one model turn, with the out-of-steps guard."""

    def __init__(
        self,
        source: _ModelSource,
        has_pre_hook: bool,
        return_direct: set[str],
        name: str | None,
    ) -> None:
        self.source = source
        self.has_pre_hook = has_pre_hook
        self.return_direct = return_direct
        self.name = name

    def call(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        model_input = self._model_input(state)
        response = self.source.runnable(state).invoke(model_input, config)
        return self._update(state, response, config)

    async def acall(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        model_input = self._model_input(state)
        runnable = await self.source.arunnable(state)
        response = await runnable.ainvoke(model_input, config)
        return self._update(state, response, config)

    def _model_input(self, state: Any) -> Any:
        """The state the prompt sees: ``messages`` swapped for ``llm_input_messages``.

        A pre-model hook may trim or summarise what the model reads without changing
        the stored conversation; it does so by writing ``llm_input_messages``.
        """
        messages = _messages_of(state)
        if self.has_pre_hook:
            messages = _messages_of(state, "llm_input_messages") or messages
        _check_chat_history(messages)
        if isinstance(state, BaseModel):
            return state.model_copy(update={"messages": messages})
        return {**state, "messages": messages}

    def _update(self, state: Any, response: Any, config: RunnableConfig) -> dict[str, Any]:
        if isinstance(response, AIMessage):
            response.name = self.name
        if self._out_of_steps(state, response, config):
            return {
                "messages": [AIMessage(id=getattr(response, "id", None), content=NOT_ENOUGH_STEPS)]
            }
        return {"messages": [response]}

    def _out_of_steps(self, state: Any, response: Any, config: RunnableConfig) -> bool:
        calls = response.tool_calls if isinstance(response, AIMessage) else []
        remaining = _remaining_steps(state, config)
        if remaining is None:
            return False
        all_direct = all(call["name"] in self.return_direct for call in calls)
        return (remaining < 1 and all_direct) or (remaining < 2 and bool(calls))


def _remaining_steps(state: Any, config: RunnableConfig) -> int | None:
    """Steps left before the recursion limit: the managed value, else from the config.

    The fallback covers custom state schemas that leave out ``remaining_steps``.
    """
    value = (
        state.get("remaining_steps")
        if isinstance(state, dict)
        else getattr(state, "remaining_steps", None)
    )
    if isinstance(value, int):
        return value
    step = (config.get("metadata") or {}).get("langgraph_step")
    limit = config.get("recursion_limit")
    if isinstance(step, int) and isinstance(limit, int):
        return limit - step
    return None


class _StructuredResponder:
    """The ``generate_structured_response`` node: the final answer as ``response_format``.

    It is a separate model call on the whole conversation, so tool calling and
    structured output never have to be combined in one request.
    """

    def __init__(self, source: _ModelSource, response_format: Any) -> None:
        self.source = source
        if isinstance(response_format, tuple):
            self.system: str | None = response_format[0]
            self.schema = response_format[1]
        else:
            self.system = None
            self.schema = response_format

    def _inputs(self, state: Any) -> tuple[Runnable[Any, Any], list[BaseMessage]]:
        messages = _messages_of(state)
        if self.system is not None:
            messages = [SystemMessage(content=self.system), *messages]
        return self.source.chat_model(state).with_structured_output(self.schema), messages

    def call(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        model, messages = self._inputs(state)
        return {"structured_response": model.invoke(messages, config)}

    async def acall(self, state: Any, config: RunnableConfig) -> dict[str, Any]:
        model, messages = self._inputs(state)
        return {"structured_response": await model.ainvoke(messages, config)}


# -- routing --------------------------------------------------------------------------------


class _Router:
    """The conditional edges of the agent graph."""

    def __init__(
        self,
        version: str,
        final: str,
        entry: str,
        return_direct: set[str],
        has_post_hook: bool,
    ) -> None:
        self.version = version
        self.final = final
        self.entry = entry
        self.return_direct = return_direct
        self.has_post_hook = has_post_hook

    def _to_tools(self, state: Any, calls: list[Any]) -> str | list[Send]:
        if self.version == "v1":
            return "tools"
        return [
            Send(
                "tools",
                cast(
                    ToolCallWithContext,
                    {"__type": "tool_call_with_context", "tool_call": call, "state": state},
                ),
            )
            for call in calls
        ]

    def after_agent(self, state: Any) -> str | list[Send]:
        last = _messages_of(state)[-1]
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return self.final
        return self._to_tools(state, list(last.tool_calls))

    def after_post_hook(self, state: Any) -> str | list[Send]:
        messages = _messages_of(state)
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        last_ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        pending = [
            call for call in (last_ai.tool_calls if last_ai else []) if call["id"] not in answered
        ]
        if pending:
            return self._to_tools(state, pending)
        if messages and isinstance(messages[-1], ToolMessage):
            return self.entry
        return self.final

    def after_tools(self, state: Any) -> str:
        messages = _messages_of(state)
        last: Any = None
        for last in reversed(messages):
            if not isinstance(last, ToolMessage):
                break
            if last.name in self.return_direct:
                return END
        # With v2 a return_direct call may have run in a sibling task: the AIMessage knows.
        if isinstance(last, AIMessage) and any(
            call["name"] in self.return_direct for call in last.tool_calls
        ):
            return END
        return self.entry


# -- checks ---------------------------------------------------------------------------------


def _check_chat_history(messages: Sequence[BaseMessage]) -> None:
    """Refuse to call the model while a tool call has no answer.

    Providers reject such histories with an obscure 400; this names the calls instead
    (it happens e.g. when new input is sent to a thread paused before ``tools``).
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    unanswered = [
        call
        for m in messages
        if isinstance(m, AIMessage)
        for call in m.tool_calls
        if call["id"] not in answered
    ]
    if unanswered:
        raise ValueError(
            create_error_message(
                message=(
                    "Found AIMessages with tool_calls that do not have a corresponding "
                    f"ToolMessage. Here are the first few of those tool calls: "
                    f"{unanswered[:3]}.\n\nEvery tool call (a model's request to call a "
                    "tool) in the message history MUST have a corresponding ToolMessage "
                    "(the result of running it). Answer the pending calls first, e.g. with "
                    "update_state(config, {'messages': [ToolMessage(...)]}, as_node='tools')."
                ),
                error_code=ErrorCode.INVALID_CHAT_HISTORY,
            )
        )


def _schema_keys(schema: type) -> set[str]:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return set(schema.model_fields)
    try:
        return set(get_type_hints(schema, include_extras=True))
    except Exception:
        return set(getattr(schema, "__annotations__", {}))


def _check_state_schema(schema: type, needs_structured_response: bool) -> None:
    required = {"messages", "remaining_steps"}
    if needs_structured_response:
        required.add("structured_response")
    missing = required - _schema_keys(schema)
    if missing:
        raise ValueError(
            f"Missing required key(s) {sorted(missing)} in state_schema; extend AgentState "
            "(or AgentStateWithStructuredResponse when using response_format)."
        )


def _input_schema(state_schema: type) -> type:
    """The ``agent`` node's input: the state plus ``llm_input_messages``."""
    if isinstance(state_schema, type) and issubclass(state_schema, BaseModel):
        return type(
            "CallModelInputSchema",
            (state_schema,),
            {
                "__annotations__": {"llm_input_messages": list[AnyMessage]},
                "llm_input_messages": [],
            },
        )
    hints = get_type_hints(state_schema, include_extras=True)
    extra = get_type_hints(_ModelInput, include_extras=True)
    # (TypedDict's functional form with fields known only at run time: mypy cannot check it)
    fields: dict[str, Any] = {**hints, **extra}
    schema: type = TypedDict("CallModelInputSchema", fields, total=False)  # type: ignore[misc]
    return schema


def _allow_in_checkpoints(state_schema: type) -> None:
    """Let the serializer store state objects of a class schema.

    Tool calls travel to the ``tools`` node on ``Send``s carrying the state they were
    made in, and pending sends are checkpointed (e.g. while paused before ``tools``).
    A dict state needs nothing; a pydantic/dataclass state object must be allowlisted,
    and the schema the user gave the graph is trusted by definition.
    """
    if is_typeddict(state_schema) or not isinstance(state_schema, type):
        return
    if issubclass(state_schema, BaseModel) or dataclasses.is_dataclass(state_schema):
        from threadloom.checkpoint.serde import register_type

        register_type(state_schema)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- the names LangGraph's own tests import for these helpers --------------------------------

_validate_chat_history = _check_chat_history
_get_model = _chat_model


def _should_bind_tools(model: Any, tools: Sequence[BaseTool], num_builtin: int = 0) -> bool:
    """True when ``model`` still needs ``tools`` bound (see ``_needs_tool_binding``)."""
    return _needs_tool_binding(model, list(tools), num_builtin)
