"""`make compat`: LangGraph's own published tests, run against threadloom.

Downloads the pinned sdists from PyPI into a cache outside the repository
(``$THREADLOOM_COMPAT_CACHE``, default ``~/.cache/threadloom/compat``), runs
each suite's unedited ``tests/`` with pytest through the import alias
(``plugin.py``: ``langgraph.*`` is served by ``threadloom.*``; LangGraph itself
is not installed), and prints one line per suite, then the total.

    python compat/run.py                      # every suite
    python compat/run.py --suite langgraph -- -k interrupt -x   # extra pytest args
    python compat/run.py --check              # exit 1 if a suite falls below its floor
    python compat/run.py --reference          # the same suites on the real LangGraph

``--reference`` runs the same test files the same way (same deselects, same
PostgreSQL, same pytest arguments) in a throwaway venv, ``.venv-reference``,
holding the real pinned LangGraph packages (never ``.venv`` or ``.venv-compat``),
and records each suite's figures in ``compat/reference.json``; every later run
prints, per suite, threadloom's passed count beside LangGraph's own.

A test file that fails to import cannot report its tests; each ``def test_*``
in it is counted as failed (before parametrization, so the figure is a
bound, and the line says how many files could not be collected).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(
    os.environ.get("THREADLOOM_COMPAT_CACHE", Path.home() / ".cache" / "threadloom" / "compat")
)
DESELECT = HERE / "deselect.txt"
FLOOR = HERE / "floor.json"
REFERENCE = HERE / "reference.json"  # LangGraph's own figures on these suites (committed)
RUNS = REPO / ".compat"  # junit and logs of the last run, per checkout (gitignored)
REFERENCE_VENV = REPO / ".venv-reference"  # the real LangGraph, for --reference (gitignored)


SUITE_POSTGRES_PORT = 5442  # where LangGraph's conftest expects its test server


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def suite_postgres():
    """The disposable PostgreSQL server LangGraph's suites expect on localhost:5442.

    LangGraph runs its tests against a throwaway ``postgres`` container on port
    5442; this is the same with the machine's PostgreSQL binaries: a cluster in
    the temp directory, trust auth, and no fsync (its data is thrown away; every
    test creates and drops a database, and with fsync each drop waits seconds for a
    checkpoint). Yields the URL of its ``postgres`` database. A server already on
    the port is used as it is; one this starts stays up for the next run. Without
    PostgreSQL binaries, the suites' address is forwarded to
    ``THREADLOOM_TEST_POSTGRES_URL`` instead (see plugin.py).
    """
    url = f"postgresql://postgres@127.0.0.1:{SUITE_POSTGRES_PORT}/postgres"
    if _port_open(SUITE_POSTGRES_PORT):
        yield url
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    pg_ctl = bins[-1] if bins else shutil.which("pg_ctl")
    if not pg_ctl:
        yield None
        return
    bindir = Path(pg_ctl).parent
    data = Path(tempfile.gettempdir()) / "threadloom-compat-pg"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
    if not (data / "PG_VERSION").exists():
        data.mkdir(mode=0o700, exist_ok=True)
        if as_user:
            shutil.chown(data, "postgres", "postgres")
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL)
    options = (f"-p {SUITE_POSTGRES_PORT} -c listen_addresses=127.0.0.1 "
               f"-c unix_socket_directories={data} -c fsync=off -c full_page_writes=off "
               "-c synchronous_commit=off -c max_connections=300")
    subprocess.run([*as_user, str(pg_ctl), "-D", str(data), "-o", options, "-w", "-l",
                    str(data / "server.log"), "start"], check=True, stdout=subprocess.DEVNULL)
    # Left running for later runs (and for other checkouts running at the same time):
    # stop it with `pg_ctl -D <tmp>/threadloom-compat-pg stop`.
    yield url


@dataclass
class Suite:
    name: str
    requirement: str  # name==version on PyPI
    paths: list[str]  # test paths, relative to the sdist root unless absolute
    package: str | None = None  # a langgraph.* package the sdist itself provides
    extra_args: list[str] = field(default_factory=list)

    @property
    def sdist_dir(self) -> Path:
        name, version = self.requirement.split("==")
        return CACHE / f"{name.replace('-', '_')}-{version}"


SUITES = [
    Suite("langgraph", "langgraph==1.2.22", ["tests"]),
    Suite("langgraph-prebuilt", "langgraph-prebuilt==1.1.3", ["tests"]),
    Suite(
        "langgraph-checkpoint-conformance",
        "langgraph-checkpoint-conformance==0.0.2",
        ["tests", str(HERE / "conformance")],
        package="langgraph.checkpoint.conformance",
    ),
    # The ecosystem: libraries that import langgraph themselves, their unit tests run with the
    # alias active. The library under test is imported from its unpacked sdist (on PYTHONPATH);
    # none of them is installed with its `langgraph` dependency (see the Makefile).
    Suite("langchain-agents", "langchain==1.5.2", ["tests/unit_tests/agents"]),
    Suite("langgraph-supervisor", "langgraph-supervisor==0.0.31", ["tests"]),
    Suite("langgraph-swarm", "langgraph-swarm==0.1.0", ["tests"]),
    Suite("langgraph-bigtool", "langgraph-bigtool==0.0.3", ["tests/unit_tests"]),
]


def fetch(suite: Suite) -> Path:
    """The suite's sdist, unpacked in the cache (downloaded once)."""
    target = suite.sdist_dir
    if (target / "tests").is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         "--dest", str(CACHE), suite.requirement],
        check=True,
    )
    name, version = suite.requirement.split("==")
    stem = f"{name}-{version}".lower().replace("-", "_")
    archives = [p for p in CACHE.glob("*.tar.gz")
                if p.name.lower().replace("-", "_") == stem + ".tar.gz"]
    if not archives:
        raise SystemExit(f"compat: pip did not leave an sdist for {suite.requirement} in {CACHE}")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(CACHE, filter="data")
    unpacked = CACHE / archives[0].name[: -len(".tar.gz")]
    if unpacked != target:
        unpacked.rename(target)
    return target


def deselect_file(suite: Suite, out: Path) -> int:
    """Write the suite's node ids from deselect.txt to *out*; return how many lines."""
    lines = []
    for raw in DESELECT.read_text().splitlines() if DESELECT.exists() else []:
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        name, _, nodeid = entry.partition(" ")
        if name == suite.name:
            lines.append(nodeid.strip())
    out.write_text("\n".join(lines) + "\n")
    return len(lines)


def count_tests_in(path: Path) -> int:
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return 1
    return sum(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        for node in ast.walk(tree)
    ) or 1


@dataclass
class Figures:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    deselected: int = 0
    uncollected_files: int = 0
    seconds: float = 0.0

    @property
    def selected(self) -> int:
        return self.passed + self.failed + self.skipped

    @property
    def rate(self) -> float:
        ran = self.passed + self.failed
        return 100.0 * self.passed / ran if ran else 0.0

    def add(self, other: Figures) -> None:
        for f in ("passed", "failed", "skipped", "deselected", "uncollected_files", "seconds"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def counts(self) -> dict[str, int]:
        """The test counts (no timing), as compat/reference.json records them."""
        return {"passed": self.passed, "failed": self.failed, "skipped": self.skipped,
                "deselected": self.deselected, "uncollected_files": self.uncollected_files}

    def line(self, name: str) -> str:
        extra = f", {self.uncollected_files} files not collected" if self.uncollected_files else ""
        return (f"{name:34} {self.rate:5.1f}%  passed {self.passed}, failed {self.failed}, "
                f"skipped {self.skipped}, deselected {self.deselected}{extra} "
                f"({self.seconds:.0f} s)")


def read_junit(path: Path, root: Path, figures: Figures, skip=lambda name: False) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        if skip(case.get("name", "")):
            continue
        outcome = "passed"
        collection_error = False
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                collection_error |= "collection failure" in (child.get("message") or "")
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        if collection_error:  # the module could not be imported: count its tests as failed
            module = case.get("classname") or case.get("name") or ""
            file = root / (module.replace(".", "/") + ".py")
            figures.failed += count_tests_in(file) if file.exists() else 1
            figures.uncollected_files += 1
            continue
        setattr(figures, outcome, getattr(figures, outcome) + 1)


@dataclass(frozen=True)
class Target:
    """What the suites run against: threadloom through the alias, or the real LangGraph."""

    label: str
    python: str  # the interpreter that runs pytest
    runs: Path  # where each suite's junit and log land
    alias: bool  # serve `import langgraph...` from threadloom (compat/plugin.py)


THREADLOOM = Target("threadloom", sys.executable, RUNS, alias=True)


def run_suite(suite: Suite, pytest_args: list[str], workers: str,
              postgres_url: str | None, target: Target = THREADLOOM) -> Figures:
    root = fetch(suite)
    work = target.runs / suite.name
    work.mkdir(parents=True, exist_ok=True)
    junit = work / "junit.xml"
    results = work / "results.jsonl"
    deselect = work / "deselect.txt"
    for p in (junit, results):
        p.unlink(missing_ok=True)
    figures = Figures(deselected=deselect_file(suite, deselect))
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(HERE), str(root), str(REPO)]),
        THREADLOOM_COMPAT_DESELECT=str(deselect),
        THREADLOOM_COMPAT_SUITE=suite.name,
        THREADLOOM_COMPAT_RESULTS=str(results),
        NO_DOCKER="false",
        LANGSMITH_TRACING="false",
    )
    if not target.alias:
        env["THREADLOOM_COMPAT_REFERENCE"] = "1"  # plugin.py: leave `langgraph` to LangGraph
    if postgres_url:
        env["THREADLOOM_TEST_POSTGRES_URL"] = postgres_url
    else:
        env["THREADLOOM_COMPAT_FORWARD_POSTGRES"] = "1"
    if suite.package:
        env["THREADLOOM_COMPAT_SUITE_PACKAGE"] = suite.package
        env["THREADLOOM_COMPAT_SUITE_ROOT"] = str(root)
    paths = [p if os.path.isabs(p) else str(root / p) for p in suite.paths]
    # test paths among the pytest arguments (tests/test_x.py, tests/test_x.py::name) choose
    # what runs instead of the suite's default paths
    if any((root / a.split("::")[0]).exists() for a in pytest_args if not a.startswith("-")):
        paths = []
    cmd = [target.python, "-m", "pytest", *paths, "-p", "plugin", "-p", "no:cacheprovider",
           "--rootdir", str(root), "-c", str(root / "pyproject.toml"),
           "-q", "--tb=line", "-o", "addopts=", f"--junitxml={junit}",
           "--continue-on-collection-errors",
           "-W", "ignore::DeprecationWarning"]
    if workers != "0":
        cmd += ["-n", workers]
    cmd += pytest_args
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    figures.seconds = time.monotonic() - started
    (work / "pytest.log").write_text(proc.stdout)
    if not junit.exists():
        print(proc.stdout[-3000:])
        figures.failed += 1
        return figures
    reported = set()
    if results.exists():  # the conformance file: count the spec's tests, not the savers
        for line in results.read_text().splitlines():
            record = json.loads(line)
            reported.add(record["saver"])
            setattr(figures, record["outcome"], getattr(figures, record["outcome"]) + 1)
    read_junit(junit, root, figures, skip=lambda name: name.split("[")[0] == "test_conformance"
               and name.split("[", 1)[1].rstrip("]") in reported)
    return figures


# -- the reference side: the same suites on the real LangGraph ------------------------

# What .venv-reference holds besides the suites' own pins (SUITES) and threadloom's
# `compat` extra: the LangGraph packages LangGraph's conftest imports, at the releases
# current with langgraph 1.2.22 (LangGraph's own CI uses the monorepo's copies).
REFERENCE_PACKAGES = [
    "langgraph-checkpoint==4.3.2",
    "langgraph-checkpoint-sqlite==3.1.2",
    "langgraph-checkpoint-postgres==3.2.0",
]
REFERENCE_NO_DEPS = ["langchain-tests==1.1.9"]  # as in the Makefile: its pins are old
COEXISTENCE_TEST = REPO / "tests" / "test_langgraph_coexistence.py"
REFERENCE_LISTED_FAILURES = 200  # reference.json names at most this many failures a suite


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def reference_requirements() -> list[str]:
    """Everything .venv-reference installs with dependencies, the real LangGraph included."""
    project = _pyproject()["project"]
    pins = [s.requirement for s in SUITES if s.package is None]  # conformance: from its sdist
    return [*pins, *REFERENCE_PACKAGES, *project["dependencies"],
            *project["optional-dependencies"]["compat"]]


def ensure_reference_venv() -> str:
    """The interpreter of .venv-reference, created or brought up to date when needed.

    Holds the real LangGraph (pinned as the suites are), the suites' test dependencies
    and threadloom itself (editable, for the coexistence test); never .venv or
    .venv-compat.
    """
    python = REFERENCE_VENV / "bin" / "python"
    wanted = "\n".join(reference_requirements() + REFERENCE_NO_DEPS)
    stamp = REFERENCE_VENV / f".installed-{hashlib.sha256(wanted.encode()).hexdigest()[:12]}"
    if stamp.exists():
        return str(python)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(REFERENCE_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *reference_requirements()], check=True)
    subprocess.run([*pip, "--no-deps", *REFERENCE_NO_DEPS, "-e", str(REPO)], check=True)
    for old in REFERENCE_VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return str(python)


def reference_target(python: str) -> Target:
    return Target("LangGraph", python, RUNS / "reference", alias=False)


def installed_versions(python: str) -> dict[str, str]:
    """The LangGraph and LangChain packages installed for *python*, by name."""
    out = subprocess.run([python, "-m", "pip", "list", "--format=json"], check=True,
                         capture_output=True, text=True).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)
            if p["name"].lower().startswith(("langgraph", "langchain"))}


def run_coexistence(python: str) -> Figures:
    """tests/test_langgraph_coexistence.py with the real LangGraph and threadloom installed."""
    work = RUNS / "reference" / "coexistence"
    work.mkdir(parents=True, exist_ok=True)
    junit = work / "junit.xml"
    junit.unlink(missing_ok=True)
    started = time.monotonic()
    proc = subprocess.run(
        [python, "-m", "pytest", str(COEXISTENCE_TEST), "-q", "-rs", "-p", "no:cacheprovider",
         f"--junitxml={junit}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    (work / "pytest.log").write_text(proc.stdout)
    figures = Figures(seconds=time.monotonic() - started)
    if junit.exists():
        read_junit(junit, REPO, figures)
    else:
        figures.failed += 1
    return figures


def failed_tests(junit: Path) -> list[str]:
    """The ids (``module::name``) of the tests that failed in a junit report."""
    if not junit.exists():
        return []
    ids = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if any(child.tag in ("failure", "error") for child in case):
            module = (case.get("classname") or "").rsplit(".", 1)[-1]
            ids.append(f"{module}::{case.get('name', '')}")
    return sorted(ids)


def load_reference() -> dict:
    return json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}


def record_reference(python: str, suites: dict[str, Figures],
                     coexistence: Figures | None) -> None:
    """Merge this run's LangGraph figures into compat/reference.json."""
    data = load_reference()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    data["python"] = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        check=True, capture_output=True, text=True).stdout.strip()
    data["packages"] = installed_versions(python)
    recorded = data.setdefault("suites", {})
    for name, figures in suites.items():
        # which tests fail on LangGraph itself, to tell them apart from threadloom's
        failed = failed_tests(reference_target(python).runs / name / "junit.xml")
        recorded[name] = {**figures.counts(), "recorded": today,
                          "failed_tests": failed[:REFERENCE_LISTED_FAILURES]}
    data["suites"] = {s.name: recorded[s.name] for s in SUITES if s.name in recorded}
    if coexistence is not None:
        data["coexistence"] = {**coexistence.counts(), "recorded": today,
                               "test": str(COEXISTENCE_TEST.relative_to(REPO))}
    REFERENCE.write_text(json.dumps(data, indent=2) + "\n")


def versus_reference(figures: Figures, reference: dict | None) -> str:
    """`` | LangGraph passed N: threadloom passes R% of it`` (empty without a reference)."""
    if not reference:
        return ""
    if not reference["passed"]:
        return "  | LangGraph passed 0"
    ratio = 100.0 * figures.passed / reference["passed"]
    return f"  | LangGraph passed {reference['passed']}: {ratio:5.1f}% of it"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", choices=[s.name for s in SUITES])
    parser.add_argument("--workers", default=os.environ.get("THREADLOOM_COMPAT_WORKERS", "2"),
                        help="pytest-xdist workers (0: no xdist)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a suite's pass rate falls below compat/floor.json")
    parser.add_argument("--reference", action="store_true",
                        help="run the suites on the real LangGraph (.venv-reference) and "
                        "record their figures in compat/reference.json")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    chosen = [s for s in SUITES if not args.suite or s.name in args.suite]
    if args.reference:
        return main_reference(chosen, args.pytest_args, args.workers)
    total = Figures()
    floors = json.loads(FLOOR.read_text()) if FLOOR.exists() else {}
    # a run of chosen test files is not comparable with a whole suite's reference count
    reference = {} if args.pytest_args else load_reference().get("suites", {})
    below = []
    with suite_postgres() as postgres_url:
        for suite in chosen:
            figures = run_suite(suite, args.pytest_args, args.workers, postgres_url)
            print(figures.line(suite.name) + versus_reference(figures, reference.get(suite.name)),
                  flush=True)
            total.add(figures)
            if figures.rate < floors.get(suite.name, 0.0):
                below.append(f"{suite.name}: {figures.rate:.1f}% < floor {floors[suite.name]}%")
    print(total.line("total"))
    print(f"logs: {RUNS}/<suite>/pytest.log")
    if args.check and below:
        print("compat: below the recorded floor: " + "; ".join(below))
        return 1
    return 0


def main_reference(chosen: list[Suite], pytest_args: list[str], workers: str) -> int:
    """``--reference``: the chosen suites on the real LangGraph; whole runs are recorded."""
    python = ensure_reference_venv()
    target = reference_target(python)
    results: dict[str, Figures] = {}
    with suite_postgres() as postgres_url:
        for suite in chosen:
            figures = run_suite(suite, pytest_args, workers, postgres_url, target)
            print(figures.line(f"{suite.name} (LangGraph)"), flush=True)
            results[suite.name] = figures
    coexistence = run_coexistence(python)
    print(coexistence.line("coexistence (LangGraph+threadloom)"))
    print(f"logs: {target.runs}/<suite>/pytest.log")
    if pytest_args:
        print("compat: chosen test files only: compat/reference.json left as it was")
        return 0
    record_reference(python, results, coexistence)
    print(f"recorded in {REFERENCE.relative_to(REPO)}")
    return 0 if coexistence.failed == 0 and coexistence.skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
