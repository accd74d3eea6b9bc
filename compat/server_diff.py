"""`make compat-server`: threadloom's server answers as the reference Agent Server does.

The scenarios of ``server_scenarios.py`` drive a server through the official async client
(``langgraph_sdk``) and record every answer. ``--reference`` runs them against the
reference server (``langgraph dev`` from ``.venv-reference-server``: langgraph-api with
its in-memory runtime) and writes ``compat/server_reference.json`` (committed, so CI
never installs the reference); without it they run against ``threadloom serve --dev``
(SQLite, or ``--database postgresql://...``) and each observation is compared with the
recorded one:

* ids are replaced by what they name (``<thread>``, ``<run A>``, the system assistants)
  where a scenario named them, other UUIDs by ``<uuid>``, LangGraph's 32-hex interrupt
  ids by ``<hex>``, timestamps by ``<time>``;
* an observation matches when every key the reference returned is there with the same
  value (keys only threadloom returns are listed, not counted against it: the SDK's
  types are open);
* ``compat/server_known.json`` lists differences kept on purpose, each with its reason
  (e.g. section 13 of the server API reference: the reference's quirks); they are shown
  and counted apart.

    python compat/server_diff.py                 # compare threadloom with the recording
    python compat/server_diff.py --reference     # record the reference server's answers
    python compat/server_diff.py -k stream       # only scenarios whose name has "stream"
    python compat/server_diff.py --check         # exit 1 on a difference not known

Prints one line per scenario, the differences, and the total.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RECORDING = HERE / "server_reference.json"
KNOWN = HERE / "server_known.json"
REFERENCE_VENV = REPO / ".venv-reference-server"

sys.path.insert(0, str(HERE))

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX = re.compile(r"\b[0-9a-f]{32}\b")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?$")


def normalize(value: Any, names: dict[str, str]) -> Any:
    """``value`` with ids and timestamps replaced (see the module docstring)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = base = normalize(key, names)
            n = 1
            while name in out:  # two ids normalized alike (two task ids): kept in order
                n += 1
                name = f"{base}#{n}"
            out[name] = normalize(item, names)
        return out
    if isinstance(value, (list, tuple)):
        return [normalize(v, names) for v in value]
    if isinstance(value, str):
        if value in names:
            return names[value]
        if _TIME.match(value):
            return "<time>"
        text = _UUID.sub(lambda m: names.get(m.group(0), "<uuid>"), value)
        return _HEX.sub("<hex>", text)
    return value


def differences(ref: Any, ours: Any, path: str = "") -> tuple[list[str], list[str]]:
    """(differences, keys only ``ours`` has) between two normalized observations."""
    diffs: list[str] = []
    extra: list[str] = []
    if isinstance(ref, dict) and isinstance(ours, dict):
        for key, value in ref.items():
            where = f"{path}.{key}"
            if key not in ours:
                diffs.append(f"{where}: missing (reference: {_short(value)})")
            else:
                d, e = differences(value, ours[key], where)
                diffs += d
                extra += e
        extra += [f"{path}.{key}" for key in ours if key not in ref]
    elif isinstance(ref, list) and isinstance(ours, list):
        if len(ref) != len(ours):
            diffs.append(f"{path}: {len(ours)} items, reference {len(ref)}: "
                         f"ours {_short(ours)} / reference {_short(ref)}")
        else:
            for i, (a, b) in enumerate(zip(ref, ours, strict=True)):
                d, e = differences(a, b, f"{path}[{i}]")
                diffs += d
                extra += e
    elif ref != ours:
        diffs.append(f"{path}: {_short(ours)}, reference {_short(ref)}")
    return diffs, extra


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


async def record(url: str, only: str | None) -> dict[str, list[list[Any]]]:
    """Run the scenarios against ``url``: {scenario: [[label, normalized value], ...]}."""
    from langgraph_sdk import get_client
    from server_scenarios import SCENARIOS, Recorder

    client = get_client(url=url, api_key=None, timeout=60)
    out: dict[str, list[list[Any]]] = {}
    for name, fn in SCENARIOS.items():
        if only and only not in name:
            continue
        rec = Recorder()
        try:
            await fn(client, rec)
        except Exception as exc:  # a scenario that cannot go on records why
            rec.put("scenario failed", f"{type(exc).__name__}: {exc}")
        out[name] = [[label, normalize(value, rec.names)] for label, value in rec.observations]
    return out


@contextmanager
def _config() -> Iterator[Path]:
    from server_graphs import GRAPHS

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "langgraph.json").write_text(json.dumps({
            "dependencies": [str(HERE)],
            "graphs": {g: f"{HERE / 'server_graphs.py'}:{g}" for g in GRAPHS},
        }))
        yield folder


@contextmanager
def serve(reference: bool, database: str | None) -> Iterator[str]:
    """A server on a free port: the reference (``langgraph dev``) or threadloom (on
    PostgreSQL, its API process and one worker)."""
    from threadloom.server.embedded import free_port, wait_until_up

    with _config() as folder:
        port = free_port()
        config = str(folder / "langgraph.json")
        log = folder / "server.log"
        if reference:
            if not (REFERENCE_VENV / "bin" / "langgraph").exists():
                raise SystemExit(f"no {REFERENCE_VENV}/bin/langgraph: make "
                                 ".venv-reference-server/.installed builds it")
            cmd = [str(REFERENCE_VENV / "bin" / "langgraph"), "dev", "--no-browser",
                   "--no-reload", "--port", str(port), "--config", config,
                   "--n-jobs-per-worker", "10"]
        else:
            cmd = [sys.executable, "-m", "threadloom.cli", "serve", "--config", config,
                   "--port", str(port), "--dev", "--log-level", "warning",
                   "--database", database or str(folder / "diff.db")]
        env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false",
               "PYTHONPATH": str(HERE)}
        cmds = [cmd]
        if database and database.startswith("postgres"):  # the API only queues runs there
            cmds.append([sys.executable, "-m", "threadloom.cli", "worker", "--config", config,
                         "--log-level", "warning", "--database", database])
        procs = []
        with open(log, "wb") as out:
            for command in cmds:
                procs.append(subprocess.Popen(command, cwd=folder, env=env, stdout=out,
                                              stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_up(url, procs[0], timeout=90)
            except SystemExit as exc:
                raise SystemExit(f"{exc}:\n{log.read_text()[-3000:]}") from None
            yield url
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def compare(recorded: dict[str, Any], ours: dict[str, Any], known: dict[str, Any]
            ) -> dict[str, Any]:
    """Per scenario: observations matching, differing (known or not), and the lines."""
    report: dict[str, Any] = {}
    for name, ref_obs in recorded.items():
        if name not in ours:
            continue
        got = dict((label, value) for label, value in ours[name])
        lines: list[str] = []
        matched = unknown = known_count = 0
        for label, ref_value in ref_obs:
            key = f"{name}/{label}"
            if label not in got:
                diffs, extra = [": not observed"], []
            else:
                diffs, extra = differences(ref_value, got[label])
            unexplained = [d for d in diffs if not _known(key, d, known)]
            if not diffs:
                matched += 1
            elif unexplained:
                unknown += 1
                lines += [f"  {label}{d}" for d in unexplained]
            else:
                known_count += 1
            if extra:
                lines.append(f"  {label}: only threadloom has {', '.join(extra[:6])}"
                             + (" ..." if len(extra) > 6 else ""))
        report[name] = {"total": len(ref_obs), "matched": matched, "known": known_count,
                        "different": unknown, "lines": lines}
    return report


def _known(key: str, diff: str, known: dict[str, Any]) -> bool:
    """Whether ``known`` explains ``diff`` of observation ``key`` (``scenario/label``):
    its ``keys`` name fields whose difference is known wherever they are (the last
    part of the path), its ``observations`` prefixes of ``scenario/label<path>``
    (``*/`` for any scenario)."""
    path = diff.split(":", 1)[0]
    last = re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1]
    if last in known.get("keys", {}):
        return True
    full = key + path
    for pattern in known.get("observations", {}):
        if pattern.startswith("*/"):
            if ("/" + full.split("/", 1)[1]).startswith(pattern[1:]):
                return True
        elif full.startswith(pattern):
            return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", action="store_true",
                        help="record the reference server's answers")
    parser.add_argument("--url", help="a running server instead of starting one")
    parser.add_argument("--database", help="threadloom's database (default: SQLite)")
    parser.add_argument("-k", dest="only", help="only scenarios whose name has this")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 on a difference not in server_known.json")
    parser.add_argument("--json", help="also write threadloom's recording here")
    args = parser.parse_args()

    if args.url:
        observed = asyncio.run(record(args.url, args.only))
    else:
        with serve(args.reference, args.database) as url:
            observed = asyncio.run(record(url, args.only))
    if args.reference:
        recorded = json.loads(RECORDING.read_text()) if RECORDING.exists() and args.only \
            else {}
        recorded.update(observed)
        RECORDING.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"recorded {sum(len(v) for v in observed.values())} observations of "
              f"{len(observed)} scenarios in {RECORDING.relative_to(REPO)}")
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(RECORDING.read_text())
    known = json.loads(KNOWN.read_text()) if KNOWN.exists() else {}
    report = compare(recorded, observed, known)
    totals = {"total": 0, "matched": 0, "known": 0, "different": 0}
    for name, r in report.items():
        for k in totals:
            totals[k] += r[k]
        flag = "ok " if r["different"] == 0 else "DIFF"
        print(f"{flag} {name}: {r['matched']}/{r['total']} match"
              + (f", {r['known']} known" if r["known"] else "")
              + (f", {r['different']} different" if r["different"] else ""))
        for line in r["lines"]:
            print(line)
    print(f"\nserver API against the reference: {totals['matched']}/{totals['total']} "
          f"observations match ({100 * totals['matched'] / max(1, totals['total']):.1f}%), "
          f"{totals['known']} differ as known, {totals['different']} differ")
    return 1 if args.check and totals["different"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
