"""What the benchmark prints: the machine, the tables, the target verdicts."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from collections.abc import Sequence
from importlib import metadata

PACKAGES = (
    "threadloom",
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "langchain-core",
    "psycopg",
    "msgpack",
    "ormsgpack",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "source tree" if package == "threadloom" else "not installed"


def postgres_version(url: str) -> str:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


def machine_lines(pg_url: str) -> list[str]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    lines = [
        f"CPU: {cpu_model()}; {os.cpu_count()} cores ({affinity} usable)",
        f"Python {sys.version.split()[0]} ({platform.python_implementation()}) "
        f"on {platform.platform()}",
        f"SQLite {sqlite3.sqlite_version}; PostgreSQL {postgres_version(pg_url)}",
    ]
    lines.append(", ".join(f"{p} {_version(p)}" for p in PACKAGES))
    return lines


def num(value: float) -> str:
    """Three significant digits, never in exponent form."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    digits = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    if magnitude < 0.01:
        digits = 4
    return f"{value:,.{digits}f}"


def kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: int = 2) -> str:
    """A plain text table; columns from index ``right`` on are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i >= right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def verdict(ratio: float | None, target: float | None) -> str:
    if target is None:
        return "-"
    if ratio is None:
        return "n/a"
    return "PASS" if ratio <= target else "FAIL"


def target_text(target: float | None) -> str:
    if target is None:
        return "-"
    inverse = 1 / target
    return f"<= 1/{inverse:g}"
