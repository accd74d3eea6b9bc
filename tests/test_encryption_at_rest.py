"""Encryption at rest, on every saver (memory kept in a file, SQLite and PostgreSQL, sync
and async): unencrypted rows are refused unless a migration opts in; every value is bound
to its place (a ciphertext copied to another thread, checkpoint, channel or write is
refused); the audit log is encrypted too and its chain still verifies; keys rotate
(key ids, old keys for reading) and ``rekey`` / ``threadloom rekey`` re-encrypts a store
in resumable, transactional batches."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from checkpoint_conformance import cfg, make_cp

from threadloom.checkpoint.memory import InMemorySaver, PersistentDict
from threadloom.checkpoint.rekey import arekey, rekey
from threadloom.checkpoint.serde import (
    CorruptCheckpointError,
    DecryptionError,
    EncryptedSerializer,
    MsgpackSerializer,
    UnboundCiphertextError,
    UnencryptedValueError,
    UnknownKeyError,
    key_id,
)
from threadloom.checkpoint.serde.place import value_place
from threadloom.cli import main as cli_main
from threadloom.hitl import verify_chain

pytest.importorskip("cryptography")

KEY1 = bytes(range(32))
KEY2 = bytes(range(1, 33))
KINDS = ["memory", "sqlite", "sqlite_async", "postgres", "postgres_async"]


def enc(key: bytes = KEY1, **kw: Any) -> EncryptedSerializer:
    return EncryptedSerializer.from_aes_gcm(key, **kw)


@dataclass
class Store:
    """One storage, opened as often as a test likes with whatever serializer."""

    kind: str
    where: str

    @property
    def is_async(self) -> bool:
        return self.kind.endswith("_async")

    @asynccontextmanager
    async def open(self, serde: Any = None) -> AsyncIterator[Any]:
        if self.kind == "memory":
            with InMemorySaver(
                serde=serde, factory=partial(PersistentDict, filename=self.where)
            ) as saver:
                # the audit log lives beside the tables: carry it across "processes"
                audit = Path(self.where + ".audit")
                if audit.exists():
                    saved = json.loads(audit.read_text())
                    saver.__dict__["_audit"] = {  # JSON made the seqs strings
                        t: {int(seq): text for seq, text in log.items()}
                        for t, log in saved["log"].items()
                    }
                    saver.__dict__["_audit_heads"] = saved["heads"]
                yield saver
                audit.write_text(json.dumps({
                    "log": saver.__dict__.get("_audit", {}),
                    "heads": saver.__dict__.get("_audit_heads", {}),
                }))
            return
        if self.kind == "sqlite":
            from threadloom.checkpoint.sqlite import SqliteSaver

            with SqliteSaver.from_conn_string(self.where) as saver:
                if serde is not None:
                    saver.serde = serde
                yield saver
        elif self.kind == "sqlite_async":
            from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

            async with AsyncSqliteSaver.from_conn_string(self.where) as saver:
                if serde is not None:
                    saver.serde = serde
                yield saver
        elif self.kind == "postgres":
            from threadloom.checkpoint.postgres import PostgresSaver

            with PostgresSaver.from_conn_string(self.where) as saver:
                saver.setup()
                if serde is not None:
                    saver.serde = serde
                yield saver
        else:
            from threadloom.checkpoint.postgres.aio import AsyncPostgresSaver

            async with AsyncPostgresSaver.from_conn_string(self.where) as saver:
                await saver.setup()
                if serde is not None:
                    saver.serde = serde
                yield saver

    async def do(self, saver: Any, name: str, *args: Any, **kw: Any) -> Any:
        """``saver.name(...)``, or ``await saver.aname(...)`` on an async saver."""
        if self.is_async:
            return await getattr(saver, "a" + name)(*args, **kw)
        return getattr(saver, name)(*args, **kw)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Raw SQL, behind the savers' backs (``?`` placeholders)."""
        if self.kind.startswith("sqlite"):
            conn = sqlite3.connect(self.where)
            try:
                rows = conn.execute(query, params).fetchall()
                conn.commit()
                return rows
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.where, autocommit=True) as conn:
            cur = conn.execute(query.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    kind = request.param
    if kind == "memory":
        return Store(kind, str(tmp_path / "memory.pickle"))
    if kind.startswith("sqlite"):
        return Store(kind, str(tmp_path / "checkpoints.db"))
    return Store(kind, request.getfixturevalue("fresh_postgres_database"))


async def write_thread(store: Store, saver: Any, thread_id: str, secret: str) -> str:
    """Two checkpoints (the second extends a list, stored as a delta where the saver
    does), pending writes on the second; returns the second checkpoint's id."""
    long = [f"{secret} item {i}" for i in range(12)]
    first = make_cp({"notes": long, "who": secret}, {"notes": "1", "who": "1"})
    config = await store.do(saver, "put", cfg(thread_id), first, {"source": "loop", "step": 0},
                            {"notes": "1", "who": "1"})
    longer = [*long, f"{secret} item 12"]
    second = make_cp({"notes": longer, "who": secret}, {"notes": "2", "who": "1"})
    config = await store.do(saver, "put", config, second, {"source": "loop", "step": 1},
                            {"notes": "2"})
    await store.do(saver, "put_writes", config, [("who", f"{secret} write")], "task-1")
    return config["configurable"]["checkpoint_id"]


async def read(store: Store, saver: Any, thread_id: str) -> Any:
    return await store.do(saver, "get_tuple", cfg(thread_id))


# -- 1. plaintext is refused unless a migration opts in --------------------------------------


async def test_unencrypted_rows_are_refused_unless_a_migration_opts_in(store: Store) -> None:
    async with store.open() as saver:  # written before encryption was turned on
        checkpoint_id = await write_thread(store, saver, "t", "plain")
    async with store.open(enc()) as saver:
        with pytest.raises(UnencryptedValueError) as info:
            await read(store, saver, "t")
    assert isinstance(info.value, CorruptCheckpointError)
    assert "'t'" in str(info.value) and "allow_plaintext_reads" in str(info.value)
    if store.kind != "memory":  # the memory saver keeps checkpoints as objects, not rows
        assert checkpoint_id in str(info.value)
    async with store.open(enc(allow_plaintext_reads=True)) as saver:
        got = await read(store, saver, "t")
        assert got.checkpoint["channel_values"]["who"] == "plain"
        assert got.pending_writes == [("task-1", "who", "plain write")]
        await write_thread(store, saver, "new", "fresh")  # new values are encrypted
    async with store.open(enc()) as saver:
        assert (await read(store, saver, "new")).checkpoint["channel_values"]["who"] == "fresh"


async def test_a_plaintext_pending_write_is_refused_naming_its_checkpoint(store: Store) -> None:
    if store.kind == "memory":
        pytest.skip("raw SQL")
    async with store.open(enc()) as saver:
        checkpoint_id = await write_thread(store, saver, "t", "s")
    plain_type, plain_blob = MsgpackSerializer().dumps_typed("slipped in")
    store.sql("UPDATE threadloom_writes SET type = ?, blob = ? WHERE thread_id = 't'",
              plain_type, plain_blob)
    async with store.open(enc()) as saver:
        with pytest.raises(UnencryptedValueError, match="pending write of task 'task-1'") as info:
            await read(store, saver, "t")
    assert checkpoint_id in str(info.value) and "thread 't'" in str(info.value)


# -- 2. every value is bound to its place --------------------------------------------------


def _value_rows(store: Store, saver: Any, thread_id: str) -> dict[tuple[str, str], Any]:
    """(channel, version) -> (type, bytes) of a thread's stored values."""
    if store.kind == "memory":
        return {(k[2], k[3]): row for k, row in saver.blobs.items() if k[0] == thread_id}
    rows = store.sql("SELECT channel, version, type, blob FROM threadloom_blobs "
                     "WHERE thread_id = ?", thread_id)
    return {(c, v): (t, bytes(b) if b is not None else None) for c, v, t, b in rows}


def _set_value(store: Store, saver: Any, thread_id: str, channel: str, version: str,
               typ: str, blob: bytes, base: str | None = None) -> None:
    if store.kind == "memory":
        key = (thread_id, "", channel, version)
        row = saver.blobs[key]
        saver.blobs[key] = (typ, blob, *row[2:]) if base is None else (typ, blob, base, base)
        return
    store.sql("UPDATE threadloom_blobs SET type = ?, blob = ? WHERE thread_id = ? AND "
              "channel = ? AND version = ?", typ, blob, thread_id, channel, version)
    if base is not None:
        store.sql("UPDATE threadloom_blobs SET base_version = ?, root_version = ? WHERE "
                  "thread_id = ? AND channel = ? AND version = ?", base, base, thread_id,
                  channel, version)


async def test_a_value_copied_to_another_thread_is_refused(store: Store) -> None:
    async with store.open(enc()) as saver:
        await write_thread(store, saver, "alice", "alice-secret")
        await write_thread(store, saver, "mallory", "mallory")
        theirs = _value_rows(store, saver, "alice")[("who", "1")]
        _set_value(store, saver, "mallory", "who", "1", *theirs)  # same channel and version
    async with store.open(enc()) as saver:
        with pytest.raises(DecryptionError, match="thread 'mallory'"):
            await read(store, saver, "mallory")
        got = await read(store, saver, "alice")  # the original still reads
        assert got.checkpoint["channel_values"]["who"] == "alice-secret"


async def test_a_value_moved_to_another_channel_or_version_is_refused(store: Store) -> None:
    async with store.open(enc()) as saver:
        await write_thread(store, saver, "t", "s")
        rows = _value_rows(store, saver, "t")
        _set_value(store, saver, "t", "who", "1", *rows[("notes", "1")])  # another channel
    async with store.open(enc()) as saver:
        with pytest.raises(DecryptionError, match="channel 'who'"):
            await read(store, saver, "t")


async def test_a_delta_rewired_to_another_base_is_refused(store: Store) -> None:
    """A list stored as a delta is bound with the version it extends: pointing the delta
    at another base (even one of the same thread and channel) is refused."""
    async with store.open(enc()) as saver:
        for i in range(3):  # notes 1 (whole), 2 (delta on 1), 3 (delta on 2)
            items = [f"n{j}" for j in range(12 + i)]
            parent = await store.do(saver, "get_tuple", cfg("t"))
            config = parent.config if parent else cfg("t")
            await store.do(saver, "put", config, make_cp({"notes": items}, {"notes": str(i + 1)}),
                           {"source": "loop", "step": i}, {"notes": str(i + 1)})
        rows = _value_rows(store, saver, "t")
        if store.kind == "memory":
            deltas = {v for (c, v), row in rows.items() if len(row) > 2}
        else:
            deltas = {r[0] for r in store.sql("SELECT version FROM threadloom_blobs WHERE "
                                              "base_version IS NOT NULL")}
        if "3" not in deltas:
            pytest.skip("this saver stored the list whole")
        _set_value(store, saver, "t", "notes", "3", *rows[("notes", "3")][:2], base="1")
    async with store.open(enc()) as saver:
        with pytest.raises(CorruptCheckpointError, match="channel 'notes'"):
            await read(store, saver, "t")


async def test_checkpoints_and_writes_are_bound_to_theirs(store: Store) -> None:
    if store.kind == "memory":
        pytest.skip("raw SQL")
    async with store.open(enc()) as saver:
        await write_thread(store, saver, "a", "a")
        await write_thread(store, saver, "b", "b")
        await store.do(saver, "put_writes", (await read(store, saver, "b")).config,
                       [("who", "second")], "task-2")
    # a checkpoint row copied from thread a over thread b's newest
    (a_id, a_type, a_blob), = store.sql(
        "SELECT checkpoint_id, type, checkpoint FROM threadloom_checkpoints WHERE thread_id = "
        "'a' ORDER BY checkpoint_id DESC LIMIT 1")
    (b_id,), = store.sql("SELECT MAX(checkpoint_id) FROM threadloom_checkpoints "
                         "WHERE thread_id = 'b'")
    saved = store.sql("SELECT type, checkpoint FROM threadloom_checkpoints WHERE thread_id = 'b' "
                      "AND checkpoint_id = ?", b_id)[0]
    store.sql("UPDATE threadloom_checkpoints SET type = ?, checkpoint = ? WHERE thread_id = 'b' "
              "AND checkpoint_id = ?", a_type, a_blob, b_id)
    async with store.open(enc()) as saver:
        with pytest.raises(DecryptionError, match=f"checkpoint of thread 'b'.*{b_id}"):
            await read(store, saver, "b")
    store.sql("UPDATE threadloom_checkpoints SET type = ?, checkpoint = ? WHERE thread_id = 'b' "
              "AND checkpoint_id = ?", saved[0], saved[1], b_id)
    # one task's write copied over another task's write of the same checkpoint
    (w_type, w_blob), = store.sql("SELECT type, blob FROM threadloom_writes WHERE thread_id = "
                                  "'b' AND task_id = 'task-2'")
    store.sql("UPDATE threadloom_writes SET type = ?, blob = ? WHERE thread_id = 'b' AND "
              "task_id = 'task-1'", w_type, w_blob)
    async with store.open(enc()) as saver:
        with pytest.raises(DecryptionError, match="pending write of task 'task-1'"):
            await read(store, saver, "b")


async def test_copy_thread_reseals_for_the_new_thread(store: Store) -> None:
    async with store.open(enc()) as saver:
        await write_thread(store, saver, "src", "s")
        await store.do(saver, "copy_thread", "src", "dst")
    async with store.open(enc()) as saver:
        src, dst = await read(store, saver, "src"), await read(store, saver, "dst")
        assert dst.checkpoint["channel_values"] == src.checkpoint["channel_values"]
        assert dst.pending_writes == src.pending_writes == [("task-1", "who", "s write")]
        assert _value_rows(store, saver, "dst") != _value_rows(store, saver, "src")


async def test_values_stored_without_a_place_are_refused_unless_opted_in(store: Store) -> None:
    """``dumps_typed`` output (and threadloom's first encrypted format) is bound to no
    place: a saver refuses it where a place is expected, unless a migration opts in."""
    async with store.open(enc()) as saver:
        await write_thread(store, saver, "t", "s")
        typ, blob = enc().dumps_typed("unbound")
        _set_value(store, saver, "t", "who", "1", typ, blob)
    async with store.open(enc()) as saver:
        with pytest.raises(UnboundCiphertextError, match="allow_unbound_reads"):
            await read(store, saver, "t")
    async with store.open(enc(allow_unbound_reads=True)) as saver:
        assert (await read(store, saver, "t")).checkpoint["channel_values"]["who"] == "unbound"


def test_the_first_encrypted_format_still_reads_unbound() -> None:
    """Values threadloom wrote before key ids and places (tag ``<tag>+aesgcm``) are read
    by ``loads_typed`` and, with the opt-in, where a place is expected."""
    from threadloom.checkpoint.serde.encrypted import AesGcmCipher

    inner_tag, inner = MsgpackSerializer().dumps_typed({"old": 1})
    _, ciphertext = AesGcmCipher(KEY1).encrypt(bytes([len(inner_tag)]) + inner_tag.encode() + inner)
    legacy = ("msgpack+aesgcm", ciphertext)
    place = value_place("t", "", "c", "1")
    assert enc(KEY2, old_keys=[KEY1]).loads_typed(legacy) == {"old": 1}
    with pytest.raises(UnboundCiphertextError):
        enc().loads_typed_at(legacy, place)
    assert enc(allow_unbound_reads=True).loads_typed_at(legacy, place) == {"old": 1}


def test_plain_serializers_keep_the_langgraph_protocol() -> None:
    """A serializer without ``dumps_typed_at`` is called through ``dumps_typed`` /
    ``loads_typed`` only, and ``from_pycryptodome_aes`` still builds an encrypting one."""
    calls: list[str] = []

    class Plain:
        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            calls.append("dumps")
            return MsgpackSerializer().dumps_typed(obj)

        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            calls.append("loads")
            return MsgpackSerializer().loads_typed(data)

    saver = InMemorySaver(serde=Plain())  # type: ignore[arg-type]
    config = saver.put(cfg("t"), make_cp({"a": 1}, {"a": "1"}), {"source": "input"}, {"a": "1"})
    saver.put_writes(config, [("a", 2)], "task")
    got = saver.get_tuple(cfg("t"))
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
    assert got.pending_writes == [("task", "a", 2)]
    assert set(calls) == {"dumps", "loads"}


# -- 3. the audit log is encrypted too; its chain still verifies ----------------------------


def _raw_audit(store: Store, saver: Any, thread_id: str) -> list[str]:
    if store.kind == "memory":
        return [*saver.__dict__["_audit"][thread_id].values(),
                saver.__dict__["_audit_heads"][thread_id]]
    return [r[0] for r in store.sql("SELECT record FROM threadloom_audit_log WHERE thread_id = ? "
                                    "ORDER BY seq", thread_id)]


async def test_the_audit_log_is_encrypted_and_its_chain_verifies(store: Store) -> None:
    records = [{"event": "resume", "value": {"iban": "DE89 3704 0044"}},
               {"event": "update_state", "values": {"note": "transfer approved"}}]
    async with store.open(enc()) as saver:
        stored = await store.do(saver, "put_audit", "t", records)
        raw = _raw_audit(store, saver, "t")
        log = await store.do(saver, "list_audit", "t")
        head = await store.do(saver, "audit_head", "t")
    assert all("DE89 3704" not in text and "transfer approved" not in text  # (spaces and
               and '"hash"' not in text for text in raw)  # quotes: never in base64)
    assert all(set(json.loads(text)) == {"sealed", "data"} for text in raw)
    assert log == stored and log[0]["value"] == {"iban": "DE89 3704 0044"}
    assert len({r["salt"] for r in log}) == 2  # a plaintext hash confirms no guess
    verify_chain(log, head=head)  # the chain covers the plaintext: no key needed to verify
    async with store.open(enc(KEY2, old_keys=[KEY1])) as saver:  # rotation: hashes stay
        await store.do(saver, "put_audit", "t", [{"event": "resume", "value": 3}])
        await (arekey(saver) if store.is_async else asyncio.to_thread(rekey, saver))
        after = await store.do(saver, "list_audit", "t")
        verify_chain(after, head=await store.do(saver, "audit_head", "t"))
    assert after[:2] == log
    async with store.open(enc(KEY2)) as saver:  # the old key can go now
        assert await store.do(saver, "list_audit", "t") == after


async def test_a_plaintext_or_moved_audit_record_is_refused(store: Store) -> None:
    if store.kind == "memory":
        pytest.skip("raw SQL")
    async with store.open(enc()) as saver:
        await store.do(saver, "put_audit", "t", [{"event": "a"}, {"event": "b"}])
        await store.do(saver, "put_audit", "u", [{"event": "c"}])
    (first,), = store.sql("SELECT record FROM threadloom_audit_log WHERE thread_id = 't' "
                          "AND seq = 1")
    store.sql("UPDATE threadloom_audit_log SET record = ? WHERE thread_id = 't' AND seq = 2",
              first)  # record 1 repeated as record 2
    async with store.open(enc()) as saver:
        with pytest.raises(DecryptionError, match="audit record 2 of thread 't'"):
            await store.do(saver, "list_audit", "t")
    store.sql("UPDATE threadloom_audit_log SET record = ? WHERE thread_id = 'u' AND seq = 1",
              json.dumps({"event": "forged", "seq": 1}))
    async with store.open(enc()) as saver:
        with pytest.raises(UnencryptedValueError, match="audit record 1 of thread 'u'"):
            await store.do(saver, "list_audit", "u")


# -- 4. key rotation and rekey ---------------------------------------------------------------


async def test_keys_rotate_and_rekey_reencrypts_everything(store: Store) -> None:
    async with store.open(enc(KEY1)) as saver:
        await write_thread(store, saver, "t", "s")
        await store.do(saver, "put_audit", "t", [{"event": "resume", "value": "yes"}])
        expected = await read(store, saver, "t")
    async with store.open(enc(KEY2)) as saver:  # the old key is gone: it says which it needs
        with pytest.raises(UnknownKeyError, match=key_id(KEY1)):
            await read(store, saver, "t")
    async with store.open(enc(KEY2, old_keys=[KEY1])) as saver:  # write KEY2, read both
        got = await read(store, saver, "t")
        assert got.checkpoint["channel_values"] == expected.checkpoint["channel_values"]
        await store.do(saver, "put_writes", got.config, [("who", "new")], "task-2")
        report = await (arekey(saver, batch_size=2) if store.is_async
                        else asyncio.to_thread(rekey, saver, batch_size=2))
        assert report.key_id == key_id(KEY2) and report.total_resealed > 0
        again = await (arekey(saver) if store.is_async else asyncio.to_thread(rekey, saver))
        assert again.total_resealed == 0  # idempotent: a rerun finds nothing left
    async with store.open(enc(KEY2)) as saver:  # now the old key can go
        got = await read(store, saver, "t")
        assert got.checkpoint["channel_values"] == expected.checkpoint["channel_values"]
        assert got.pending_writes == [*expected.pending_writes, ("task-2", "who", "new")]
        assert [r["value"] for r in await store.do(saver, "list_audit", "t")] == ["yes"]


async def test_rekey_encrypts_a_plaintext_store_only_when_asked(store: Store) -> None:
    async with store.open() as saver:
        await write_thread(store, saver, "t", "plain")
        await store.do(saver, "put_audit", "t", [{"event": "resume", "value": "plain"}])
    async with store.open(enc()) as saver:
        with pytest.raises(UnencryptedValueError):
            await (arekey(saver) if store.is_async else asyncio.to_thread(rekey, saver))
    async with store.open(enc(allow_plaintext_reads=True)) as saver:
        await (arekey(saver) if store.is_async else asyncio.to_thread(rekey, saver))
    async with store.open(enc()) as saver:
        assert (await read(store, saver, "t")).checkpoint["channel_values"]["who"] == "plain"
        log = await store.do(saver, "list_audit", "t")
        verify_chain(log, head=await store.do(saver, "audit_head", "t"))
        if store.kind != "memory":
            for table in ("threadloom_checkpoints", "threadloom_blobs", "threadloom_writes"):
                for (typ,) in store.sql(f"SELECT type FROM {table}"):
                    assert typ == "empty" or typ.endswith(":" + key_id(KEY1)), (table, typ)
            assert all(b"plain" not in bytes(b) for (b,) in store.sql(
                "SELECT blob FROM threadloom_blobs WHERE blob IS NOT NULL"))


async def test_rekey_stops_at_a_damaged_row_and_resumes(store: Store) -> None:
    """Batches are transactions: a row that cannot be read stops the run with an error
    naming it; batches before it stay done, the batch holding it is left whole (old key,
    still readable), and a rerun once it is fixed carries on."""
    if store.kind == "memory":
        pytest.skip("the memory saver rekeys in one step")
    async with store.open(enc(KEY1)) as saver:
        for i in range(6):
            await write_thread(store, saver, f"t{i}", f"s{i}")
    rows = store.sql("SELECT thread_id, channel, version FROM threadloom_blobs WHERE type <> "
                     "'empty' ORDER BY thread_id, checkpoint_ns, channel, version")
    victim = rows[len(rows) // 2]
    saved = store.sql("SELECT type, blob FROM threadloom_blobs WHERE thread_id = ? AND "
                      "channel = ? AND version = ?", *victim)[0]
    store.sql("UPDATE threadloom_blobs SET blob = ? WHERE thread_id = ? AND channel = ? AND "
              "version = ?", b"\x00" * 40, *victim)
    async with store.open(enc(KEY2, old_keys=[KEY1])) as saver:
        with pytest.raises(DecryptionError, match=f"thread {victim[0]!r}"):
            await (arekey(saver, batch_size=3) if store.is_async
                   else asyncio.to_thread(rekey, saver, batch_size=3))
    kinds = [t.endswith(key_id(KEY2)) for (t,) in store.sql(
        "SELECT type FROM threadloom_blobs WHERE type <> 'empty' "
        "ORDER BY thread_id, checkpoint_ns, channel, version")]
    at = rows.index(victim)
    assert all(kinds[: at // 3 * 3])  # the batches before the damaged row's: done
    assert not any(kinds[at // 3 * 3 :])  # its batch and after: untouched
    store.sql("UPDATE threadloom_blobs SET blob = ? WHERE thread_id = ? AND channel = ? AND "
              "version = ?", bytes(saved[1]), *victim)
    async with store.open(enc(KEY2, old_keys=[KEY1])) as saver:
        await (arekey(saver, batch_size=3) if store.is_async
               else asyncio.to_thread(rekey, saver, batch_size=3))
    async with store.open(enc(KEY2)) as saver:
        for i in range(6):
            got = await read(store, saver, f"t{i}")
            assert got.checkpoint["channel_values"]["who"] == f"s{i}"


def test_rekey_refuses_a_saver_that_does_not_encrypt() -> None:
    with pytest.raises(TypeError, match="EncryptedSerializer"):
        rekey(InMemorySaver())
    with pytest.raises(ValueError, match="batch_size"):
        rekey(InMemorySaver(serde=enc()), batch_size=0)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_cli_rekey(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        store = Store("sqlite", str(tmp_path / "cli.db"))
        where = ["--sqlite", store.where]
    else:
        store = Store("postgres", request.getfixturevalue("fresh_postgres_database"))
        where = ["--postgres", store.where]

    async def setup() -> None:
        async with store.open(enc(KEY1)) as saver:
            await write_thread(store, saver, "t", "s")
            saver.put_audit("t", [{"event": "resume", "value": "ok"}])

    asyncio.run(setup())
    monkeypatch.delenv("THREADLOOM_AES_KEY", raising=False)
    assert cli_main(["rekey", *where]) == 2  # no key: refused, nothing touched
    assert "THREADLOOM_AES_KEY" in capsys.readouterr().err
    monkeypatch.setenv("THREADLOOM_AES_KEY", KEY2.hex())
    assert cli_main(["rekey", *where]) == 1  # the old key is needed to read
    assert key_id(KEY1) in capsys.readouterr().err
    monkeypatch.setenv("THREADLOOM_AES_OLD_KEYS", KEY1.hex())
    assert cli_main(["rekey", *where, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["key_id"] == key_id(KEY2) and sum(report["resealed"].values()) > 0
    assert cli_main(["rekey", *where]) == 0
    assert capsys.readouterr().out.startswith("0 value(s) re-encrypted")
    monkeypatch.delenv("THREADLOOM_AES_OLD_KEYS")
    assert cli_main(["audit", *where, "--thread", "t", "--verify"]) == 0  # reads with KEY2
    assert '"value": "ok"' in capsys.readouterr().out


# -- a graph with approvals on an encrypted store ---------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_nothing_a_person_decided_is_stored_in_plaintext(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Resume answers, edited tool arguments, update_state values: none of them appears
    in any table of an encrypted store, and the audit chain still verifies."""
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool

    from threadloom.hitl import ApprovalPolicy, echo_digests
    from threadloom.hitl.approval_hooks import checkpoint_anchors
    from threadloom.prebuilt import ScriptedChatModel, create_react_agent
    from threadloom.types import Command

    @tool
    def wire_transfer(iban: str) -> str:
        """Send money to an account."""
        return f"sent to {iban}"

    def respond(messages: list[Any]) -> Any:
        if len(messages) > 1:
            return "Done."
        return {"content": "", "tool_calls": [
            {"name": "wire_transfer", "args": {"iban": "DE89-PROPOSED"}, "id": "c1"}]}

    if backend == "sqlite":
        store = Store("sqlite", str(tmp_path / "graph.db"))
    else:
        store = Store("postgres", request.getfixturevalue("fresh_postgres_database"))
    config = {"configurable": {"thread_id": "t", "reviewer": {"id": "bob", "roles": ["ops"]}}}

    async def run() -> None:
        async with store.open(enc()) as saver:
            agent = create_react_agent(ScriptedChatModel(respond=respond), [wire_transfer],
                                       checkpointer=saver,
                                       approval=ApprovalPolicy(default="always"))
            agent.invoke({"messages": [HumanMessage("pay the PROMPT-SECRET invoice")]}, config)
            answer = echo_digests(agent.get_state(config).interrupts,
                                  [{"type": "edit", "args": {"iban": "DE89-EDITED"}}])
            agent.invoke(Command(resume=answer), config)
            agent.update_state(config, {"messages": [HumanMessage("UPDATE-SECRET")]})
            log = agent.get_audit_log(config)
            assert [r["event"] for r in log] == ["decision", "update_state"]
            assert log[0]["args_diff"]["changed"]["iban"]["to"] == "DE89-EDITED"
            verify_chain(log, head=saver.audit_head("t"),
                         anchors=checkpoint_anchors(saver, "t"))

    asyncio.run(run())
    for table in ("threadloom_checkpoints", "threadloom_blobs", "threadloom_writes",
                  "threadloom_audit_log"):
        for row in store.sql(f"SELECT * FROM {table}"):
            text = repr([bytes(v) if isinstance(v, memoryview) else v for v in row])
            for secret in ("PROPOSED", "EDITED", "PROMPT-SECRET", "UPDATE-SECRET"):
                assert secret not in text, (table, secret)


def test_a_cipher_without_associated_data_still_binds_values() -> None:
    """A custom cipher with LangGraph's two-method protocol (no ``aad``) gets the place
    sealed inside the plaintext instead: the same refusal of a moved value."""
    from threadloom.checkpoint.serde.encrypted import AesGcmCipher
    from threadloom.checkpoint.serde.place import write_place

    class Wrapped:  # encrypt(plaintext) / decrypt(name, ciphertext) only
        key_id = "custom-1"

        def __init__(self) -> None:
            self.inner = AesGcmCipher(KEY1)

        def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
            return self.inner.encrypt(plaintext)

        def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
            return self.inner.decrypt(ciphername, ciphertext)

    serde = EncryptedSerializer(Wrapped())
    here = write_place("t", "", "c1", "task", 0, "x")
    there = write_place("t", "", "c1", "task", 1, "x")
    data = serde.dumps_typed_at({"v": 1}, here)
    assert data[0] == "msgpack+aesgcm:custom-1"
    assert serde.loads_typed_at(data, here) == {"v": 1}
    with pytest.raises(DecryptionError):
        serde.loads_typed_at(data, there)

    class NoId(Wrapped):
        key_id = None  # type: ignore[assignment]

    with pytest.raises(Exception, match="key_id"):
        EncryptedSerializer(NoId(), old_ciphers=[NoId()])


async def test_a_pruned_encrypted_log_still_verifies_and_rekeys(store: Store) -> None:
    """``audit_keep_last`` pruning leaves its anchor record sealed at its place, like the
    records; the log verifies before and after a key rotation."""
    async with store.open(enc()) as saver:
        saver.audit_keep_last = 1
        await write_thread(store, saver, "t", "s")
        for i in range(3):
            await store.do(saver, "put_audit", "t", [{"event": "resume", "value": f"v{i}"}])
        await store.do(saver, "prune", "t")
        pruned = await store.do(saver, "list_audit", "t")
        assert [(r["event"], r["seq"]) for r in pruned] == [("pruned", 2), ("resume", 3)]
        verify_chain(pruned, head=await store.do(saver, "audit_head", "t"))
        assert all('"v2"' not in text and '"pruned"' not in text  # (quotes: not base64)
                   for text in _raw_audit(store, saver, "t"))
    async with store.open(enc(KEY2, old_keys=[KEY1])) as saver:
        await (arekey(saver) if store.is_async else asyncio.to_thread(rekey, saver))
    async with store.open(enc(KEY2)) as saver:
        assert await store.do(saver, "list_audit", "t") == pruned


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rekey_killed_midway_loses_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``threadloom rekey`` killed (SIGKILL) in the middle of its work: every value still
    reads (under the old or the new key), none is lost or half-written, and running it
    again finishes the job. (If the process finished before the kill landed, the
    outcome must be the same.)"""
    import os
    import signal
    import subprocess
    import sys
    import time

    if backend == "sqlite":
        store = Store("sqlite", str(tmp_path / "crash.db"))
        where = ["--sqlite", store.where]
    else:
        store = Store("postgres", request.getfixturevalue("fresh_postgres_database"))
        where = ["--postgres", store.where]
    threads = [f"t{i:03d}" for i in range(120)]

    async def setup() -> None:
        async with store.open(enc(KEY1)) as saver:
            for t in threads:
                await write_thread(store, saver, t, f"secret of {t}")

    asyncio.run(setup())
    count_sql = "SELECT COUNT(*) FROM threadloom_blobs WHERE type LIKE ?"
    rows_before = store.sql("SELECT COUNT(*) FROM threadloom_blobs")[0][0]
    env = {**os.environ, "THREADLOOM_AES_KEY": KEY2.hex(), "THREADLOOM_AES_OLD_KEYS": KEY1.hex(),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    command = [sys.executable, "-m", "threadloom.cli", "rekey", *where, "--batch-size", "1"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120  # a bound on waiting, not a measurement
    while proc.poll() is None and time.monotonic() < deadline:
        if store.sql(count_sql, f"%:{key_id(KEY2)}")[0][0] > 0:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    async def check(serde: Any) -> None:
        async with store.open(serde) as saver:
            for t in threads:
                got = await read(store, saver, t)
                assert got.checkpoint["channel_values"]["who"] == f"secret of {t}"
                assert len(got.checkpoint["channel_values"]["notes"]) == 13
                assert got.pending_writes == [("task-1", "who", f"secret of {t} write")]

    assert store.sql("SELECT COUNT(*) FROM threadloom_blobs")[0][0] == rows_before
    asyncio.run(check(enc(KEY2, old_keys=[KEY1])))  # a mix of old and new: all readable
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert store.sql(count_sql, f"%:{key_id(KEY1)}")[0][0] == 0
    asyncio.run(check(enc(KEY2)))  # everything under the new key now


async def test_metadata_stays_queryable_but_a_change_to_it_is_detected(store: Store) -> None:
    """The metadata column stays plaintext JSON (``list(filter=...)`` runs in the
    database), but a copy is sealed in the checkpoint row: a change made behind the
    saver's back (e.g. to the audit anchor it holds) is refused."""
    if store.kind == "memory":
        pytest.skip("the memory saver seals metadata itself")
    async with store.open(enc()) as saver:
        config = await store.do(saver, "put", cfg("t"), make_cp({"a": 1}, {"a": "1"}),
                                {"source": "input", "step": -1, "big": 1e300,
                                 "audit_anchor": "1:abc"}, {"a": "1"})
        if store.is_async:
            found = [t async for t in saver.alist(None, filter={"source": "input"})]
        else:
            found = list(saver.list(None, filter={"source": "input"}))
        assert [t.config for t in found] == [config]
        assert found[0].metadata["big"] == 1e300 and found[0].metadata["step"] == -1
    column = "metadata::text" if store.kind.startswith("postgres") else "metadata"
    (text,), = store.sql(f"SELECT {column} FROM threadloom_checkpoints")
    forged = text.replace("1:abc", "9:fff")
    assert forged != text
    cast = "?::jsonb" if store.kind.startswith("postgres") else "?"
    store.sql(f"UPDATE threadloom_checkpoints SET metadata = {cast}", forged)
    async with store.open(enc()) as saver:
        with pytest.raises(CorruptCheckpointError, match="metadata of thread 't'.*altered"):
            await read(store, saver, "t")
