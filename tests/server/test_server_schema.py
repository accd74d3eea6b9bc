"""Generated requests against the real server's ``/openapi.json`` (schemathesis): none is
answered with a server error (5xx), on SQLite and on PostgreSQL.

Every operation the schema lists gets ``EXAMPLES`` generated requests (bodies from the
pydantic request models, path and query parameters from their declared types); in
about half of them the path ids are swapped for ids that exist (a thread with a
finished run, an assistant, a cron; in bodies, a graph id as ``assistant_id``), so the
requests reach past the 404s and 422s into the services, and runs are made and executed.
``THREADLOOM_SCHEMA_EXAMPLES=200`` runs a longer search.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

EXAMPLES = int(os.environ.get("THREADLOOM_SCHEMA_EXAMPLES", "12"))
KEY = {"x-api-key": "key-alice"}
# routes that stream for as long as the client listens (no end to wait for)
ENDLESS = {("GET", "/approvals/stream"), ("GET", "/threads/{thread_id}/stream")}


def _known_ids(url: str) -> dict[str, str]:
    """Ids that exist: a thread whose run has finished (its run), an assistant, a cron."""
    with httpx.Client(base_url=url, headers=KEY, timeout=30) as http:
        thread = http.post("/threads", json={"metadata": {"schema": True}}).json()
        tid = thread["thread_id"]
        run = http.post(f"/threads/{tid}/runs", json={
            "assistant_id": "email", "input": {"messages": [{"role": "user", "content": "x"}]},
        }).json()
        http.get(f"/threads/{tid}/runs/{run['run_id']}/join").raise_for_status()
        assistant = http.post("/assistants", json={"graph_id": "plan", "name": "schema"}).json()
        cron = http.post("/runs/crons", json={
            "assistant_id": "email", "schedule": "0 0 1 1 *", "enabled": False,
        }).json()
        return {"thread_id": tid, "run_id": run["run_id"],
                "assistant_id": assistant["assistant_id"], "cron_id": cron["cron_id"]}


def _use_known_ids(case: Any, known: dict[str, str]) -> None:
    """Put ids that exist in place of the generated ones: path ids, and the body's
    ``assistant_id`` (a graph id: the run or cron is made and runs) and ``thread_id``.
    A run made so starts now (no ``after_seconds``), so a wait for it ends."""
    for name in case.path_parameters or {}:
        if name in known:
            case.path_parameters[name] = known[name]
    if isinstance(case.body, dict):
        if "assistant_id" in case.body:
            case.body["assistant_id"] = "email"
            case.body.pop("after_seconds", None)
        if "thread_id" in case.body:
            case.body["thread_id"] = known["thread_id"]


def _check_operation(operation: Any, url: str, answers: Counter[str]
                     ) -> tuple[int, str | None]:
    """Run the generated requests of one operation: (how many, the first failure);
    ``answers`` counts the statuses by class (``2xx``, ``4xx``)."""
    ran = 0
    known = _known_ids(url)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), use_known=st.booleans())
    def check(case: Any, use_known: bool) -> None:
        nonlocal ran
        ran += 1
        if use_known:
            _use_known_ids(case, known)
        response = case.call_and_validate(
            base_url=url, headers=KEY, timeout=20,
            checks=[not_a_server_error, response_schema_conformance],
        )
        answers[f"{response.status_code // 100}xx"] += 1

    try:
        check()
    except Exception as exc:  # the failure schemathesis reports, with a curl to replay it
        return ran, f"{operation.method.upper()} {operation.path}: {exc}"
    return ran, None


def test_no_generated_request_is_a_server_error(served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40  # every route of the API (server-api.md section 3)
    failures, total, tested = [], 0, 0
    answers: Counter[str] = Counter()
    for operation in operations:
        if (operation.method.upper(), operation.path) in ENDLESS:
            continue
        ran, failure = _check_operation(operation, served.url, answers)
        total += ran
        tested += 1
        if failure:
            failures.append(failure)
    print(f"schemathesis: {tested} operations, {total} generated requests, answered "
          f"{dict(sorted(answers.items()))}")
    assert total >= tested * min(EXAMPLES, 5)
    assert answers["2xx"] > total // 5  # not all refused: the services were reached
    assert not failures, "\n\n".join(failures)
