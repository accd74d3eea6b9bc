"""Authentication and authorization: API keys, the reference's custom ``Auth`` object,
and approvals whose reviewer is the authenticated caller."""

from __future__ import annotations

import httpx
import pytest
from langgraph_sdk.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)


async def test_api_keys_are_required(served) -> None:
    with pytest.raises(AuthenticationError):
        await served.client(key=None).threads.create()
    with pytest.raises(AuthenticationError):
        await served.client(key="wrong").assistants.search()
    assert await served.client(key="key-bob").threads.create()


@pytest.fixture(scope="module")
def custom(serve_config):
    """A server with the custom auth object of tests/server/auth.py."""
    from tests.server.conftest import GRAPHS

    return serve_config({"graphs": GRAPHS, "auth": {"path": "./auth.py:auth"}})


def _as(custom, name: str):
    from langgraph_sdk import get_client

    return get_client(url=custom.url, api_key=None,
                      headers={"Authorization": f"Bearer user-{name}"})


async def test_custom_auth_scopes_threads_and_store(custom) -> None:
    from langgraph_sdk import get_client

    with pytest.raises(AuthenticationError):
        await get_client(url=custom.url, api_key=None).threads.search()
    alice, bob = _as(custom, "alice"), _as(custom, "bob")
    thread = await alice.threads.create(metadata={"topic": "x"})
    assert thread["metadata"] == {
        "topic": "x", "owner": "alice", "team": "payments",
        "user_keys": ["display_name", "identity", "is_authenticated", "permissions", "team"],
    }
    assert (await bob.threads.create())["metadata"] == {"owner": "bob"}  # no team
    with pytest.raises(NotFoundError):  # outside bob's filter: missing, not forbidden
        await bob.threads.get(thread["thread_id"])
    with pytest.raises(NotFoundError):
        await bob.runs.create(thread["thread_id"], "email", input={"messages": []})
    assert thread["thread_id"] not in [t["thread_id"] for t in await bob.threads.search()]
    assert thread["thread_id"] in [t["thread_id"] for t in await alice.threads.search()]
    with pytest.raises(PermissionDeniedError):
        await alice.assistants.create("email")
    await alice.store.put_item(["notes"], "n1", {"text": "mine"})
    assert await bob.store.get_item(["notes"], "n1") is None
    item = await alice.store.get_item(["notes"], "n1")
    assert item["value"] == {"text": "mine"} and item["namespace"] == ["alice", "notes"]


async def test_reviewer_comes_from_authentication(served) -> None:
    """The approval needs the finance role: mallory (intern) is refused even when her
    request claims to be alice; alice's approval is recorded as alice's; a second answer
    is a 409 naming the earlier decision."""
    alice, mallory, bob = (served.client(k) for k in ("key-alice", "key-mallory", "key-bob"))
    tid = (await alice.threads.create())["thread_id"]
    out = await alice.runs.wait(tid, "payment", input={"amount": 500})
    assert out["__interrupt__"]
    forged = {"configurable": {"reviewer": {"id": "alice", "roles": ["finance"]}}}
    refused = await mallory.runs.wait(tid, "payment", command={"resume": {"type": "accept"}},
                                      config=forged, raise_error=False)
    assert refused["__error__"]["error"] == "ReviewerNotAllowedError"
    assert "mallory" in refused["__error__"]["message"]
    done = await alice.runs.wait(tid, "payment", command={"resume": {"type": "accept"}})
    assert done["outcome"] == "paid"
    with pytest.raises(ConflictError) as second:
        await bob.runs.create(tid, "payment", command={"resume": {"type": "reject"}})
    with pytest.raises(httpx.HTTPStatusError) as waited:  # wait: the same 409
        await bob.runs.wait(tid, "payment", command={"resume": {"type": "reject"}})
    assert waited.value.response.status_code == 409
    body = second.value.response.json()
    assert body["decision"]["who"]["id"] == "alice"
    assert "already" in body["detail"]
    log = served.server.ctx.storage.checkpointer.list_audit(tid)
    decisions = [r for r in log if r.get("event") == "decision"]
    assert [(d["who"]["id"], d["decision"]) for d in decisions] == [("alice", "accept")]
    refusals = [r for r in log if r.get("event") != "decision"]
    assert [(r.get("who") or {}).get("id") for r in refusals] == ["mallory"]


def test_the_authenticated_user_is_the_sdks_base_user() -> None:
    from langgraph_sdk.auth.types import BaseUser

    from threadloom.server.auth import AuthUser

    user = AuthUser("alice", ("finance",), fields={"team": "payments"})
    assert isinstance(user, BaseUser)
    assert "team" in user and "identity" in user and "org" not in user
    assert list(user) == ["identity", "permissions", "display_name", "is_authenticated", "team"]
    assert {key: user[key] for key in user}["team"] == "payments"
