"""LangGraph's names for threadloom pieces that its test suites build fixtures from:
``InMemorySaver(factory=PersistentDict)``, ``JsonPlusSerializer``,
``EncryptedSerializer.from_pycryptodome_aes`` and ``copy_checkpoint``."""

from __future__ import annotations

import operator
from functools import partial
from typing import Annotated, Any, TypedDict

import pytest

from threadloom.checkpoint.base import copy_checkpoint, empty_checkpoint
from threadloom.checkpoint.memory import InMemorySaver, PersistentDict
from threadloom.checkpoint.serde.base import UnregisteredTypeError
from threadloom.checkpoint.serde.encrypted import EncryptedSerializer
from threadloom.checkpoint.serde.jsonplus import JsonPlusSerializer
from threadloom.graph import START, StateGraph


class S(TypedDict):
    log: Annotated[list, operator.add]


def _graph(saver: Any) -> Any:
    builder = StateGraph(S)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_edge(START, "a")
    return builder.compile(checkpointer=saver)


def test_persistent_dict_saver_survives_a_restart(tmp_path: Any) -> None:
    path = str(tmp_path / "saver.pkl")
    config = {"configurable": {"thread_id": "t"}}
    with InMemorySaver(factory=partial(PersistentDict, filename=path)) as saver:
        _graph(saver).invoke({"log": []}, config)
        _graph(saver).invoke({"log": []}, config)
    # a new saver on the same file sees the thread (the three tables share the file)
    with InMemorySaver(factory=partial(PersistentDict, filename=path)) as again:
        assert _graph(again).get_state(config).values == {"log": ["a", "a"]}
        assert len(list(again.list(config))) == 6  # input, start, a: twice
        _graph(again).invoke({"log": []}, config)  # and goes on from there
        assert _graph(again).get_state(config).values == {"log": ["a", "a", "a"]}
        assert isinstance(again.storage, PersistentDict)
        assert again.storage.section == "storage" and again.blobs.section == "blobs"


def test_persistent_dict_alone(tmp_path: Any) -> None:
    path = str(tmp_path / "d.pkl")
    d = PersistentDict(list, filename=path)
    d["x"].append(1)
    d.sync()
    assert dict(PersistentDict(list, filename=path)) == {"x": [1]}
    assert dict(PersistentDict(list, filename=path, section="other")) == {}


def test_saver_stack_closes_with_the_saver() -> None:
    closed: list[str] = []
    saver = InMemorySaver()
    saver.stack.callback(closed.append, "done")
    with saver:
        pass
    assert closed == ["done"]


class Custom:
    def __init__(self, n: int = 0) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Custom) and other.n == self.n


def test_jsonplus_serializer_is_the_strict_msgpack_serializer() -> None:
    strict = JsonPlusSerializer(allowed_msgpack_modules=None)
    assert strict.loads_typed(strict.dumps_typed({"a": [1, "b"]})) == {"a": [1, "b"]}
    with pytest.raises(UnregisteredTypeError):
        strict.dumps_typed(Custom(1))
    by_name = JsonPlusSerializer(allowed_msgpack_modules=[(__name__, "Custom")])
    assert by_name.loads_typed(by_name.dumps_typed(Custom(2))) == Custom(2)
    with pytest.raises(ValueError, match="not a class"):
        JsonPlusSerializer(allowed_msgpack_modules=[(__name__, "_graph")])


def test_encrypted_serializer_from_pycryptodome_aes() -> None:
    pytest.importorskip("Crypto")
    serde = EncryptedSerializer.from_pycryptodome_aes(key=b"1234567890123456")
    tag, data = serde.dumps_typed({"secret": 1})
    assert "+aesgcm:" in tag and b"secret" not in data
    assert serde.loads_typed((tag, data)) == {"secret": 1}
    _graph_saver = InMemorySaver(serde=serde)
    config = {"configurable": {"thread_id": "t"}}
    assert _graph(_graph_saver).invoke({"log": []}, config) == {"log": ["a"]}


def test_copy_checkpoint_copies_the_maps() -> None:
    cp = empty_checkpoint()
    cp["channel_values"]["x"] = [1]
    cp["versions_seen"]["node"] = {"x": 1}
    copied = copy_checkpoint(cp)
    copied["channel_values"]["y"] = 2
    copied["versions_seen"]["node"]["x"] = 2
    assert cp["channel_values"] == {"x": [1]} and cp["versions_seen"]["node"] == {"x": 1}
    assert copied["channel_values"]["x"] is cp["channel_values"]["x"]
