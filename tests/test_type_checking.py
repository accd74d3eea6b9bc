"""The type checker's configuration keeps its promise: the engine, the channels and the
checkpoint package (savers, serializer, stored values) are checked with mypy's strict
flags, with no error code switched off.

``make test`` runs mypy with ``pyproject.toml``'s configuration; this test reads that
configuration, so a module of those packages cannot quietly leave the strict list or
gain a ``disable_error_code`` entry.
"""

from __future__ import annotations

import pathlib
import tomllib
from typing import Any

from test_layers import _modules

ROOT = pathlib.Path(__file__).resolve().parent.parent
STRICT_PACKAGES = ("threadloom.engine", "threadloom.channels", "threadloom.checkpoint")


def _overrides() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    overrides: list[dict[str, Any]] = config["tool"]["mypy"]["overrides"]
    return overrides


def _names(pattern: str | list[str]) -> list[str]:
    return [pattern] if isinstance(pattern, str) else pattern


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return module == base or module.startswith(base + ".")
    return module == pattern


def test_the_core_packages_are_strict_with_no_error_code_switched_off() -> None:
    overrides = _overrides()
    strict = [p for o in overrides if o.get("disallow_untyped_defs") for p in _names(o["module"])]
    lenient = [p for o in overrides if o.get("disable_error_code") for p in _names(o["module"])]
    core = sorted(m for m in _modules() if m.startswith(STRICT_PACKAGES))
    assert len(core) > 60, core  # the test reads the modules it is about
    not_strict = [m for m in core if not any(_matches(m, p) for p in strict)]
    assert not not_strict, f"not under mypy's strict flags: {not_strict}"
    switched_off = [m for m in core if any(_matches(m, p) for p in lenient)]
    assert not switched_off, f"error codes switched off for: {switched_off}"
