"""Ready-made pieces for tool-calling agents: ``ToolNode``, ``tools_condition`` and
``create_react_agent``, plus ``ScriptedChatModel`` for running them without a provider."""

from threadloom.prebuilt.chat_agent_executor import create_react_agent
from threadloom.prebuilt.scripted_model import ScriptedChatModel
from threadloom.prebuilt.tool_node import (
    InjectedState,
    InjectedStore,
    ToolNode,
    tools_condition,
)

__all__ = [
    "InjectedState",
    "InjectedStore",
    "ScriptedChatModel",
    "ToolNode",
    "create_react_agent",
    "tools_condition",
]
