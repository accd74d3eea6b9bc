"""Serve ``import langgraph.X`` from ``threadloom.X``.

One meta-path finder maps every module under the ``langgraph`` name onto the
threadloom module of the same dotted path: ``langgraph.graph`` *is*
``threadloom.graph`` (the same module object, so classes, ``isinstance`` and
module state are shared). Nothing of LangGraph is used or vendored; a name
that threadloom does not have fails to import as it would anywhere else.

The finder is installed only by an explicit call
(:func:`threadloom.install_as_langgraph`) or, for programs that cannot change
their code, by running them with ``python -m threadloom.as_langgraph``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

__all__ = ["LangGraphAliasFinder", "LangGraphConflictError", "install", "is_installed"]

ALIAS = "langgraph"
TARGET = "threadloom"


class LangGraphConflictError(ImportError):
    """The real LangGraph is already imported: threadloom cannot serve its name."""


def _target_name(fullname: str) -> str | None:
    if fullname == ALIAS:
        return TARGET
    if fullname.startswith(ALIAS + "."):
        return TARGET + fullname[len(ALIAS) :]
    return None


class LangGraphAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``langgraph.*`` modules among threadloom's and loads them as aliases."""

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        target_name = _target_name(fullname)
        if target_name is None:
            return None
        try:
            real = importlib.util.find_spec(target_name)
        except ModuleNotFoundError:
            return None
        if real is None:
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname,
            self,
            is_package=real.submodule_search_locations is not None,
        )
        spec.loader_state = target_name
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(spec.loader_state)
        # The import system is about to stamp the alias spec on this shared
        # module object; keep its own to give back in exec_module.
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        stamped = module.__spec__
        if stamped is None:  # only create_module's modules reach here, each with a spec
            raise ImportError(f"{module.__name__} has no module spec to restore")
        module.__spec__ = stamped.loader_state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {ALIAS}.* -> {TARGET}.*>"


def is_installed() -> bool:
    """True when ``langgraph`` imports are served by threadloom in this process."""
    return any(isinstance(f, LangGraphAliasFinder) for f in sys.meta_path)


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (idempotent)."""
    if is_installed():
        return
    loaded = sorted(
        name
        for name, mod in sys.modules.items()
        if (name == ALIAS or name.startswith(ALIAS + "."))
        and not getattr(mod, "__name__", "").startswith(TARGET)
    )
    if loaded:
        shown = ", ".join(loaded[:5]) + (", ..." if len(loaded) > 5 else "")
        raise LangGraphConflictError(
            f"the real LangGraph is already imported ({shown}); call "
            "threadloom.install_as_langgraph() before anything imports langgraph, "
            "or run the program with `python -m threadloom.as_langgraph`"
        )
    sys.meta_path.insert(0, LangGraphAliasFinder())


def run_as_langgraph(argv: list[str]) -> None:
    """Run a program with ``langgraph`` served by threadloom (``-m threadloom.as_langgraph``).

    ``argv`` is what follows on the command line: ``script.py [args...]`` or
    ``-m module [args...]``, as ``python`` itself takes them.
    """
    import runpy

    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        raise SystemExit(
            "usage: python -m threadloom.as_langgraph (script.py | -m module) [args...]\n"
            "runs the program with every `import langgraph...` served by threadloom"
        )
    install()
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")
