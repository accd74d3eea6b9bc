"""Extension points where a higher layer takes part in resumes and state edits.

The graph layer must not import the layers above it, yet the approval layer
(``threadloom.hitl``) needs to check answers before a resume runs and to record every
``update_state`` in the audit log. It installs itself here when it is imported; graphs
that never use it pay nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["GraphHooks", "install", "installed"]


class GraphHooks(Protocol):
    """What an installed layer provides (sync and async twins)."""

    def before_resume(self, graph: Any, input: Any, config: Any) -> Any: ...

    async def abefore_resume(self, graph: Any, input: Any, config: Any) -> Any: ...

    def before_update(self, graph: Any, saver: Any, config: Any) -> Any: ...

    async def abefore_update(self, graph: Any, saver: Any, config: Any) -> Any: ...

    def after_update(
        self, saver: Any, config: Any, updates: Any, before: Any, new_config: Any
    ) -> None: ...

    async def aafter_update(
        self, saver: Any, config: Any, updates: Any, before: Any, new_config: Any
    ) -> None: ...


_installed: GraphHooks | None = None


def install(hooks: GraphHooks) -> None:
    """Make ``hooks`` take part in every graph's resumes and state updates."""
    global _installed
    _installed = hooks


def installed() -> GraphHooks | None:
    return _installed
