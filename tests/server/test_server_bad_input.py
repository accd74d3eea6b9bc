"""Requests schemathesis found answered with a 500: each is now a clear 4xx (or works),
on SQLite and on PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from langgraph_sdk.errors import UnprocessableEntityError

KEY = {"x-api-key": "key-alice"}


def _http(served) -> httpx.Client:
    return httpx.Client(base_url=served.url, headers=KEY, timeout=30)


@pytest.mark.parametrize("body", [
    {"suffix": [""]},
    {"prefix": ["a\x00b"]},
    {"prefix": ["a.b"]},
])
def test_bad_namespace_labels_in_a_listing_are_422(served, body) -> None:
    with _http(served) as http:
        answer = http.post("/store/namespaces", json=body)
    assert answer.status_code == 422
    assert "prefix" in answer.json()["detail"] or "suffix" in answer.json()["detail"]


async def test_store_refusals_are_422_naming_the_reason(client) -> None:
    with pytest.raises(UnprocessableEntityError, match="index"):
        await client.store.put_item(["docs"], "k", {"a": 1}, index=[""])
    with pytest.raises(UnprocessableEntityError, match="(?i)semantic search"):
        await client.store.search_items(["docs"], query="what is in it")
    with pytest.raises(UnprocessableEntityError, match="(?i)ttl"):
        await client.store.put_item(["docs"], "k", {"a": 1}, ttl=5)


def test_a_nul_character_in_a_store_value_is_never_a_500(served) -> None:
    """PostgreSQL's jsonb cannot hold NUL: a 422 there; SQLite stores it."""
    with _http(served) as http:
        put = http.put("/store/items", json={"namespace": ["nul"], "key": "k",
                                             "value": {"text": "a\x00b"}})
        if put.status_code == 422:
            assert "store refused" in put.json()["detail"]
        else:
            assert put.status_code == 204
            got = http.get("/store/items", params={"namespace": "nul", "key": "k"})
            assert got.json()["value"] == {"text": "a\x00b"}


def test_integers_beyond_64_bits_round_trip(served) -> None:
    """Exactly, not as the nearest float (2**70 alone, a float exactly, hid that the
    hot routes' parser and every read turned them into floats)."""
    big = 2**70 + 1
    with _http(served) as http:
        put = http.put("/store/items", json={"namespace": ["big"], "key": "k",
                                             "value": {"n": big}})
        assert put.status_code == 204
        found = http.post("/store/items/search", json={"namespace_prefix": ["big"]})
        assert found.status_code == 200
        assert found.json()["items"][0]["value"] == {"n": big}
        thread = http.post("/threads", json={"metadata": {"n": big}})
        assert thread.status_code == 200
        assert thread.json()["metadata"]["n"] == big
        got = http.get(f"/threads/{thread.json()['thread_id']}")
        assert got.json()["metadata"]["n"] == big
        negative = http.post("/threads", json={"metadata": {"n": -(2**66) - 7, "ok": 1.5}})
        assert negative.json()["metadata"] == {"n": -(2**66) - 7, "ok": 1.5}
        found = http.post("/threads/search", json={"metadata": {"n": big}})
        assert [t["metadata"]["n"] for t in found.json()] == [big]


def test_a_lone_surrogate_in_metadata_never_breaks_a_read(served) -> None:
    """A thread whose metadata holds a lone surrogate (valid JSON, which orjson refuses
    to read) is stored and read back; every search still works - one such thread made
    every later search or listing of threads a 500."""
    body = b'{"metadata": {"label": "half \\ud800 pair", "kind": "surrogate-test"}}'
    with _http(served) as http:
        made = http.post("/threads", content=body,
                         headers={"content-type": "application/json"})
        assert made.status_code == 200, made.text
        tid = made.json()["thread_id"]
        assert http.get(f"/threads/{tid}").json()["metadata"]["label"] == "half \ud800 pair"
        found = http.post("/threads/search", json={"metadata": {"kind": "surrogate-test"}})
        assert found.status_code == 200 and [t["thread_id"] for t in found.json()] == [tid]
        everything = http.post("/threads/search", json={"limit": 1000})
        assert everything.status_code == 200
        assert http.post("/threads/count", json={}).status_code == 200


def test_an_offset_beyond_the_database_integers_is_422(served) -> None:
    with _http(served) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        runs = http.get(f"/threads/{tid}/runs", params={"offset": 2**70})
        threads = http.post("/threads/search", json={"offset": 2**70})
    assert runs.status_code == 422 and "offset" in runs.json()["detail"]
    assert threads.status_code == 422 and "offset" in threads.json()["detail"]


def test_a_latest_version_beyond_the_database_integers_is_422(served) -> None:
    """schemathesis: ``POST /assistants/{id}/latest`` with a version past 64 bits was the
    driver's OverflowError, a 500; a version in range that does not exist stays a 404."""
    with _http(served) as http:
        aid = http.post("/assistants", json={"graph_id": "email"}).json()["assistant_id"]
        big = http.post(f"/assistants/{aid}/latest", json={"version": 18550781017279418368})
        missing = http.post(f"/assistants/{aid}/latest", json={"version": 2**63 - 1})
    assert big.status_code == 422 and "version" in big.json()["detail"]
    assert missing.status_code == 404


async def test_a_history_filter_the_checkpointer_refuses_is_422(client) -> None:
    thread = await client.threads.create(graph_id="email")
    await client.runs.wait(thread["thread_id"], "email",
                           input={"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(UnprocessableEntityError, match="Invalid history query.*filter key"):
        await client.threads.get_history(thread["thread_id"], metadata={"bad key!": 1})
    assert await client.threads.get_history(thread["thread_id"], metadata={"step": 0})


async def test_a_cron_patch_with_nulls_keeps_those_fields(client, served) -> None:
    cron = await client.crons.create("email", schedule="0 0 1 1 *", enabled=False)
    with _http(served) as http:
        answer = http.patch(f"/runs/crons/{cron['cron_id']}",
                            json={"schedule": None, "metadata": None, "enabled": None})
    assert answer.status_code == 200
    assert answer.json()["schedule"] == "0 0 1 1 *"
    assert answer.json()["enabled"] is False


def test_the_schema_describes_the_error_bodies_sent(served) -> None:
    with _http(served) as http:
        schema = http.get("/openapi.json").json()
        bad = http.post("/threads/search", json={"limit": "many"})
    error = schema["components"]["schemas"]["HTTPValidationError"]
    assert error["properties"]["detail"]["type"] == "string"
    assert isinstance(bad.json()["detail"], str) and bad.status_code == 422
    get_thread = schema["paths"]["/threads/{thread_id}"]["get"]
    assert get_thread["parameters"][0]["schema"]["format"] == "uuid"


@pytest.mark.parametrize("body", [
    {"before": "1f0\x00abc", "limit": 5},
    {"before": {"checkpoint_id": "x\x00y"}},
    {"checkpoint": {"checkpoint_id": "x\x00y"}},
])
def test_a_nul_character_in_a_history_query_is_422(served, body) -> None:
    with _http(served) as http:
        tid = http.post("/threads", json={"metadata": {"graph_id": "payment"}}).json()[
            "thread_id"]
        answer = http.post(f"/threads/{tid}/history", json=body)
    assert answer.status_code in (200, 422), answer.text  # SQLite stores NUL: no match
    if answer.status_code == 422:
        assert "Invalid history query" in answer.json()["detail"]


def test_a_nul_character_in_a_checkpoint_id_read_is_422_or_not_found(served) -> None:
    with _http(served) as http:
        tid = http.post("/threads", json={"metadata": {"graph_id": "payment"}}).json()[
            "thread_id"]
        answer = http.post(f"/threads/{tid}/state/checkpoint",
                           json={"checkpoint": {"checkpoint_id": "x\x00y"}})
    assert answer.status_code in (200, 404, 422), answer.text


@pytest.mark.parametrize(("path", "body"), [
    ("/threads/search", {"metadata": {"kind": {"$bogus": 1}}}),
    ("/threads/count", {"metadata": {"kind": {"$bogus": 1}}}),
    ("/threads/search", {"values": {"items": [{"$regex": "x"}]}}),
    ("/assistants/search", {"metadata": {"kind": {"$bogus": 1}}}),
    ("/assistants/count", {"metadata": {"kind": {"$bogus": 1}}}),
])
def test_an_unknown_filter_operator_is_422_naming_it(served, path, body) -> None:
    """Whether or not a stored record reaches it (it was a 500 once one did: a thread
    holding the key; nothing at all when none did)."""
    with _http(served) as http:
        http.post("/threads", json={"metadata": {"kind": "op-test"}})
        answer = http.post(path, json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "unknown filter operator" in detail and ("$bogus" in detail or "$regex" in detail)
    assert "$eq, $ne, $contains or $in" in detail


@pytest.mark.parametrize("url", ["file:///etc/passwd", "not a url", "http://", "ftp://host/x",
                                 "http://[::1"])
def test_a_webhook_that_cannot_be_delivered_is_422(served, url) -> None:
    """A run's or a cron's webhook must be an absolute http(s) URL with a host: the
    run or cron was made, and its delivery retried for hours, each attempt failing
    the same way."""
    with _http(served) as http:
        tid = http.post("/threads", json={}).json()["thread_id"]
        run = http.post(f"/threads/{tid}/runs", json={"assistant_id": "slow", "webhook": url})
        cron = http.post("/runs/crons", json={"assistant_id": "slow", "schedule": "0 0 * * *",
                                              "webhook": url})
        assert http.get(f"/threads/{tid}/runs").json() == []
    for answer in (run, cron):
        assert answer.status_code == 422, answer.text
        assert "webhook" in answer.json()["detail"], answer.text
