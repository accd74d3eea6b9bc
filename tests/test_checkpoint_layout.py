"""The checkpoint package's private pieces keep to their concern (see
``threadloom/checkpoint/_values``, ``_stored`` and ``_sql``): what every saver shares knows
no saver, and the memory saver borrows nothing of the SQL savers.

Imports are read from the source, as ``test_layers`` reads them (function-level and
``TYPE_CHECKING`` imports included).
"""

from __future__ import annotations

from test_layers import _imports, _modules

CHECKPOINT = "threadloom.checkpoint"
SHARED = (f"{CHECKPOINT}._values", f"{CHECKPOINT}._stored")
SAVERS = (f"{CHECKPOINT}._sql", f"{CHECKPOINT}.memory", f"{CHECKPOINT}.sqlite",
          f"{CHECKPOINT}.postgres")


def _under(mod: str, prefixes: tuple[str, ...]) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_the_shared_pieces_know_no_saver() -> None:
    mods = _modules()
    edges = _imports(mods)
    shared = [m for m in mods if _under(m, SHARED)]
    assert len(shared) >= 10, shared  # the test reads the modules it is about
    wrong = sorted(f"{m} imports {t}" for m in shared for t in edges[m] if _under(t, SAVERS))
    assert not wrong, "\n".join(wrong)


def test_the_memory_saver_borrows_nothing_of_the_sql_savers() -> None:
    edges = _imports(_modules())
    memory = edges[f"{CHECKPOINT}.memory"]
    assert f"{CHECKPOINT}._stored.decode" in memory  # it decodes as the SQL savers do
    wrong = sorted(t for t in memory if _under(t, (f"{CHECKPOINT}._sql",)))
    assert not wrong, wrong
