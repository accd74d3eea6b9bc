"""The public import surface: every LangGraph import path threadloom serves still imports
and still has the names listed.

Code written for LangGraph runs on threadloom by renaming ``langgraph`` to ``threadloom``
in its imports (or through ``install_as_langgraph()``), so a name that silently goes away
breaks users. The table holds, for each public LangGraph module, the names of its
``__all__`` (or, for the checkpoint, store and cache modules, the classes and functions it
defines) that threadloom served when the table was written (LangGraph 1.2.24). Removing a
name on purpose means removing it here too; adding one, adding it here.
"""

from __future__ import annotations

import importlib
import warnings

import pytest

from threadloom.types import Command

SURFACE: dict[str, tuple[str, ...]] = {
    "threadloom.cache.base": (
        "BaseCache",
    ),
    "threadloom.cache.memory": (
        "InMemoryCache",
    ),
    "threadloom.cache.redis": (
        "RedisCache",
    ),
    "threadloom.cache.sqlite": (
        "SqliteCache",
    ),
    "threadloom.callbacks": (
        "GraphCallbackHandler", "GraphInterruptEvent", "GraphResumeEvent",
    ),
    "threadloom.channels": (
        "AnyValue", "BaseChannel", "BinaryOperatorAggregate", "EphemeralValue", "LastValue",
        "LastValueAfterFinish", "NamedBarrierValue", "NamedBarrierValueAfterFinish", "Topic",
        "UntrackedValue",
    ),
    "threadloom.channels.any_value": (
        "AnyValue",
    ),
    "threadloom.channels.base": (
        "BaseChannel",
    ),
    "threadloom.channels.binop": (
        "BinaryOperatorAggregate",
    ),
    "threadloom.channels.delta": (
        "DeltaChannel",
    ),
    "threadloom.channels.ephemeral_value": (
        "EphemeralValue",
    ),
    "threadloom.channels.last_value": (
        "LastValue", "LastValueAfterFinish",
    ),
    "threadloom.channels.named_barrier_value": (
        "NamedBarrierValue", "NamedBarrierValueAfterFinish",
    ),
    "threadloom.channels.topic": (
        "Topic",
    ),
    "threadloom.channels.untracked_value": (
        "UntrackedValue",
    ),
    "threadloom.checkpoint.base": (
        "BaseCheckpointSaver", "Checkpoint", "CheckpointMetadata", "CheckpointTuple",
        "EmptyChannelError", "copy_checkpoint", "empty_checkpoint", "get_checkpoint_id",
    ),
    "threadloom.checkpoint.memory": (
        "InMemorySaver", "MemorySaver", "PersistentDict",
    ),
    "threadloom.checkpoint.postgres": (
        "PostgresSaver",
    ),
    "threadloom.checkpoint.postgres.aio": (
        "AsyncPostgresSaver",
    ),
    "threadloom.checkpoint.serde.base": (
        "SerializerProtocol",
    ),
    "threadloom.checkpoint.serde.encrypted": (
        "EncryptedSerializer",
    ),
    "threadloom.checkpoint.serde.jsonplus": (
        "JsonPlusSerializer",
    ),
    "threadloom.checkpoint.sqlite": (
        "SqliteSaver",
    ),
    "threadloom.checkpoint.sqlite.aio": (
        "AsyncSqliteSaver",
    ),
    "threadloom.config": (
        "get_config", "get_store", "get_stream_writer",
    ),
    "threadloom.constants": (
        "CONF", "CONFIG_KEY_CHECKPOINTER", "END", "START", "TAG_HIDDEN", "TAG_NOSTREAM", "TASKS",
    ),
    "threadloom.errors": (
        "EmptyChannelError", "EmptyInputError", "ErrorCode", "GraphBubbleUp", "GraphDrained",
        "GraphInterrupt", "GraphRecursionError", "InvalidUpdateError", "NodeCancelledError",
        "NodeError", "NodeInterrupt", "NodeTimeoutError", "ParentCommand", "TaskNotFound",
        "UnknownInterruptError", "is_invalid_resume",
    ),
    "threadloom.func": (
        "entrypoint", "task",
    ),
    "threadloom.graph": (
        "END", "MessagesState", "START", "StateGraph", "add_messages",
    ),
    "threadloom.graph.message": (
        "MessageGraph", "MessagesState", "REMOVE_ALL_MESSAGES", "add_messages",
    ),
    "threadloom.graph.state": (
        "CompiledStateGraph", "StateGraph",
    ),
    "threadloom.managed": (
        "IsLastStep", "RemainingSteps",
    ),
    "threadloom.prebuilt": (
        "InjectedState", "InjectedStore", "ToolCallTransformer", "ToolNode", "ToolRuntime",
        "ValidationNode", "create_react_agent", "tools_condition",
    ),
    "threadloom.prebuilt.chat_agent_executor": (
        "AgentState", "AgentStatePydantic", "AgentStateWithStructuredResponse",
        "AgentStateWithStructuredResponsePydantic", "create_react_agent",
    ),
    "threadloom.pregel": (
        "NodeBuilder", "Pregel",
    ),
    "threadloom.pregel.main": (
        "NodeBuilder", "Pregel",
    ),
    "threadloom.pregel.protocol": (
        "PregelProtocol", "StreamProtocol",
    ),
    "threadloom.pregel.remote": (
        "RemoteException", "RemoteGraph",
    ),
    "threadloom.pregel.types": (
        "All", "CachePolicy", "PregelExecutableTask", "PregelTask", "RetryPolicy",
        "StateSnapshot", "StateUpdate", "StreamMode", "StreamWriter", "default_retry_on",
    ),
    "threadloom.runtime": (
        "ExecutionInfo", "RunControl", "Runtime", "ServerInfo", "get_runtime",
    ),
    "threadloom.store.base": (
        "BaseStore", "GetOp", "Item", "ListNamespacesOp", "MatchCondition", "NamespacePath", "Op",
        "PutOp", "SearchOp", "tokenize_path",
    ),
    "threadloom.store.memory": (
        "InMemoryStore",
    ),
    "threadloom.store.postgres": (
        "AsyncPostgresStore", "PoolConfig", "PostgresStore",
    ),
    "threadloom.store.sqlite": (
        "SqliteStore",
    ),
    "threadloom.stream": (
        "AsyncGraphRunStream", "AsyncSubgraphRunStream", "CheckpointsTransformer",
        "CustomTransformer", "DebugTransformer", "GraphRunStream", "LifecyclePayload",
        "LifecycleTransformer", "ProtocolEvent", "StreamChannel", "StreamTransformer",
        "SubgraphRunStream", "SubgraphTransformer", "TasksTransformer", "UpdatesTransformer",
    ),
    "threadloom.types": (
        "All", "CachePolicy", "CheckpointPayload", "CheckpointStreamPart", "CheckpointTask",
        "Checkpointer", "Command", "CustomStreamPart", "DebugPayload", "DebugStreamPart",
        "Durability", "GraphOutput", "Interrupt", "MessagesStreamPart", "Overwrite",
        "PregelExecutableTask", "PregelTask", "RetryPolicy", "Send", "StateSnapshot",
        "StateUpdate", "StreamMode", "StreamPart", "StreamWriter", "TaskPayload",
        "TaskResultPayload", "TasksStreamPart", "TimeoutPolicy", "TracePolicy",
        "UpdatesStreamPart", "ValuesStreamPart", "interrupt", "omit_payload",
    ),
    "threadloom.typing": (
        "ContextT", "InputT", "OutputT", "StateT", "StateT_co", "StateT_contra",
    ),
    "threadloom.warnings": (
        "LangGraphDeprecatedSinceV05", "LangGraphDeprecatedSinceV10",
        "LangGraphDeprecatedSinceV11", "LangGraphDeprecationWarning",
    ),
}


@pytest.mark.parametrize("path", sorted(SURFACE))
def test_public_path_imports_with_its_names(path: str) -> None:
    with warnings.catch_warnings():
        # (deprecated paths such as threadloom.pregel.types warn, as LangGraph's do)
        warnings.simplefilter("ignore")
        module = importlib.import_module(path)
        missing = [name for name in SURFACE[path] if not hasattr(module, name)]
    assert not missing, f"{path} no longer has {missing}"


def test_the_package_serves_install_as_langgraph() -> None:
    import threadloom

    assert callable(threadloom.install_as_langgraph)


def test_command_update_as_tuples_stays_for_code_written_for_langgraph() -> None:
    """LangGraph's ``Command._update_as_tuples()`` is private by name but called by agent
    middleware (merging two commands' updates), so it keeps working."""
    from dataclasses import dataclass

    @dataclass
    class Update:
        x: int
        y: str

    assert Command(update={"x": 1})._update_as_tuples() == [("x", 1)]
    assert Command(update=[("x", 1), ("x", 2)])._update_as_tuples() == [("x", 1), ("x", 2)]
    assert Command(update=Update(1, "a"))._update_as_tuples() == [("x", 1), ("y", "a")]
    assert Command()._update_as_tuples() == []
    assert Command(update=5)._update_as_tuples() == [("__root__", 5)]


def test_the_savers_trace_hook_is_public() -> None:
    """threadloom's own addition: ``threadloom.checkpoint.trace`` and the ``trace=``
    argument of every SQL saver and its ``from_conn_string`` (see the module)."""
    import inspect

    from threadloom.checkpoint import trace
    from threadloom.checkpoint.postgres import PostgresSaver
    from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver
    from threadloom.checkpoint.sqlite import SqliteSaver
    from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

    assert sorted(trace.__all__) == ["Trace", "TraceEvent"]
    for saver in (SqliteSaver, AsyncSqliteSaver, PostgresSaver, AsyncPostgresSaver):
        for made_by in (saver, saver.from_conn_string):
            assert "trace" in inspect.signature(made_by).parameters, made_by
