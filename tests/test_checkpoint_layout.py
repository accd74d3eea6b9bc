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


def test_the_sql_core_keeps_reads_writes_and_housekeeping_apart() -> None:
    """The SQL core is split by concern (``_sql.read``, ``_sql.write``,
    ``_sql.housekeeping``, over the state of ``_sql.base``): none of the three imports
    another, and only ``_sql.core`` combines them."""
    sql = f"{CHECKPOINT}._sql"
    parts = {f"{sql}.read", f"{sql}.write", f"{sql}.housekeeping"}
    edges = _imports(_modules())
    assert parts | {f"{sql}.base"} <= set(edges)  # the modules exist (and import something)
    for part in parts:
        assert f"{sql}.base" in edges[part], part
        wrong = sorted(edges[part] & (parts | {f"{sql}.core"}))
        assert not wrong, f"{part} imports {wrong}"
    assert parts <= edges[f"{sql}.core"]


def test_the_serializer_keeps_registry_codecs_and_format_apart() -> None:
    """What may be stored (``serde.registry``), how one class is taken apart
    (``serde.codecs``) and the wire format (``serde.msgpack``) are three modules, each
    importing only those before it; threadloom's own allowlisted classes are imported as
    modules, not looked up by a name string."""
    serde = f"{CHECKPOINT}.serde"
    registry, codecs, fmt = f"{serde}.registry", f"{serde}.codecs", f"{serde}.msgpack"
    edges = _imports(_modules())
    assert {"threadloom.types", "threadloom.errors", f"{serde}.types"} <= edges[registry]
    assert not edges[registry] & {codecs, fmt}, edges[registry]
    assert registry in edges[codecs] and fmt not in edges[codecs], edges[codecs]
    assert {registry, codecs} <= edges[fmt], edges[fmt]
