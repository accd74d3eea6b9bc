"""``langgraph.pregel._remote_run_stream``: the v3 run-stream adapters of ``RemoteGraph``.

A thin compatibility module: the code lives in :mod:`threadloom.stream.remote`; these are
the private names published tests import.
"""

from threadloom.stream.remote import AsyncRemoteRunStream as _AsyncRemoteGraphRunStream
from threadloom.stream.remote import ChannelProjection as _ChannelProjection
from threadloom.stream.remote import ProjectionRegistry as _ProjectionRegistry
from threadloom.stream.remote import RemoteRunStream as _RemoteGraphRunStream
from threadloom.stream.remote import translate_command_input as _translate_command_input

__all__ = [
    "_AsyncRemoteGraphRunStream",
    "_ChannelProjection",
    "_ProjectionRegistry",
    "_RemoteGraphRunStream",
    "_translate_command_input",
]
