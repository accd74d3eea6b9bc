"""Ready-made pieces for tool-calling agents: ``ToolNode``, ``tools_condition``,
``ValidationNode`` and ``create_react_agent``, plus ``ScriptedChatModel`` for running
them without a provider."""

from threadloom.prebuilt.chat_agent_executor import create_react_agent
from threadloom.prebuilt.scripted_model import ScriptedChatModel
from threadloom.prebuilt.tool_call_stream import ToolCallTransformer
from threadloom.prebuilt.tool_node import (
    InjectedState,
    InjectedStore,
    ToolCallRequest,
    ToolNode,
    ToolRuntime,
    tools_condition,
)
from threadloom.prebuilt.tool_validator import ValidationNode

__all__ = [
    "InjectedState",
    "InjectedStore",
    "ScriptedChatModel",
    "ToolCallRequest",
    "ToolCallTransformer",
    "ToolNode",
    "ToolRuntime",
    "ValidationNode",
    "create_react_agent",
    "tools_condition",
]
