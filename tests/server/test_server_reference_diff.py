"""The server answers as the reference Agent Server does (``make compat-server``).

``compat/server_diff.py`` drives ``threadloom serve`` through the official client with
the scenarios of ``compat/server_scenarios.py`` and compares every answer with the one
recorded from the reference server (``langgraph dev``) in
``compat/server_reference.json``. Each scenario is a test here, on SQLite and on
PostgreSQL: it fails on any difference that ``compat/server_known.json`` does not list
with its reason."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

COMPAT = Path(__file__).resolve().parents[2] / "compat"
sys.path.insert(0, str(COMPAT))

import server_diff  # noqa: E402
from server_scenarios import SCENARIOS  # noqa: E402

RECORDED = json.loads(server_diff.RECORDING.read_text())
KNOWN = json.loads(server_diff.KNOWN.read_text())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def observed(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """Every scenario's observations from one server (a subprocess, as
    ``make compat-server`` starts it)."""
    database = None
    if request.param == "postgres":
        database = request.getfixturevalue("module_postgres_database")
    with server_diff.serve(reference=False, database=database) as url:
        yield asyncio.run(server_diff.record(url, None))


def test_every_scenario_is_recorded() -> None:
    assert sorted(RECORDED) == sorted(SCENARIOS), (
        "compat/server_reference.json is out of date: make compat-server-reference"
    )


def test_known_differences_give_reasons() -> None:
    for section in ("keys", "observations"):
        for key, reason in KNOWN[section].items():
            assert isinstance(reason, str) and len(reason) > 20, (section, key)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_answers_as_the_reference(scenario: str, observed: dict[str, Any]) -> None:
    report = server_diff.compare({scenario: RECORDED[scenario]}, observed, KNOWN)[scenario]
    unexplained = [line for line in report["lines"] if "only threadloom has" not in line]
    assert report["different"] == 0, "\n".join(unexplained)
