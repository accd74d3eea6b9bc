"""The official JS client, ``@langchain/langgraph-sdk`` (pinned in ``tests/js``), against
the real server on SQLite and on PostgreSQL: each scenario of ``tests/js/workflows.mjs``
in a ``node`` process of its own - the seed's three workflows (the plan review resumed
with a command, the corrected tool call through ``updateState``, the email workflow
streamed), parallel interrupts answered by id, a background run joined, multitask
"reject" refused and a cancelled run resumed, a resumable stream replayed from its start
and from an event id, the store, and calls without a valid key refused.

The client is installed with ``npm ci`` from the committed lock file the first time
(into ``tests/js/node_modules``). Without ``node`` and ``npm``, or when the npm registry
cannot be reached, the tests skip with the reason - except under CI=true, where they
fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server.conftest import RunningServer

JS = Path(__file__).resolve().parents[1] / "js"
SCENARIOS = ["planReview", "correctedToolCall", "streamedEmail", "parallelById",
             "backgroundRunAndJoin", "rejectCancelResume", "resumableStreamReplay", "store",
             "refusedWithoutKey"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the JS client tests cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node() -> str:
    """``node``, with the pinned JS client installed beside ``workflows.mjs``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are not installed (apt-get install -y nodejs npm)")
    assert node is not None and npm is not None
    if not (JS / "node_modules" / "@langchain" / "langgraph-sdk" / "package.json").exists():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            _unavailable(f"npm ci failed in {JS}: {done.stderr[-2000:]}")
    return node


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_js_client_drives_the_server(node: str, served: RunningServer,
                                         scenario: str) -> None:
    done = subprocess.run([node, "workflows.mjs", scenario, served.url, "key-alice"],
                          cwd=JS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{scenario}:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().endswith(f"ok {scenario}")


def test_a_scenario_that_fails_fails_the_test(node: str) -> None:
    """The harness itself: a scenario it does not know is an error, not a pass."""
    done = subprocess.run([node, "workflows.mjs", "noSuchScenario", "http://127.0.0.1:9",
                           "key"], cwd=JS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no scenario noSuchScenario" in done.stderr
