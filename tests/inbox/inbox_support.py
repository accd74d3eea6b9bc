"""What the approval inbox's tests share: the served config (``examples/inbox``, what
``make serve`` runs), the demo keys - alice (ops, finance), bob (finance) and carol, who
asks - and ``Inbox``, a running server with helpers to start work and read rows.

Every test starts its own threads, so tests sharing one server do not see each other's
requests (they look at their own threads' rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "inbox" / "langgraph.json"
ALICE, BOB, CAROL = "demo-alice", "demo-bob", "demo-carol"


@dataclass
class Inbox:
    """A running inbox server: its URL, ``Server`` object and database file."""

    url: str
    server: Any
    database: Path

    def start(self, graph: str, payload: dict[str, Any], key: str = CAROL) -> str:
        """Start a run of ``graph`` as ``key`` (carol asks) and wait until it pauses;
        the new thread's id."""
        from langgraph_sdk import get_sync_client

        client = get_sync_client(url=self.url, api_key=key, timeout=30)
        thread = client.threads.create()
        client.runs.wait(thread["thread_id"], graph, input=payload)
        return thread["thread_id"]

    def state(self, thread_id: str) -> dict[str, Any]:
        """The thread's values."""
        from langgraph_sdk import get_sync_client

        client = get_sync_client(url=self.url, api_key=CAROL, timeout=30)
        return client.threads.get_state(thread_id)["values"]

    def http(self, key: str | None) -> Any:
        """An HTTP client signed in with ``key`` (None: no credentials)."""
        import httpx

        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def rows(self, key: str, thread_id: str, **params: Any) -> list[dict[str, Any]]:
        """The pending rows ``key`` sees on one thread."""
        with self.http(key) as http:
            response = http.get("/approvals", params=params)
            response.raise_for_status()
            return [r for r in response.json()["items"] if r["thread_id"] == thread_id]


def seed_call(path: str = "/tmp/old_data.csv") -> dict[str, Any]:
    """The seed's request: delete a file."""
    return {"messages": [{"role": "user", "content": f"Delete the file {path}"}]}


def email_request() -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Send the quarterly report."}]}


def cleanup_request() -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Clean up my disk."}]}


def refund(seconds: float = 600, amount: float = 129.9) -> dict[str, Any]:
    return {"order_id": "A-1042", "amount": amount, "deadline_seconds": seconds}
