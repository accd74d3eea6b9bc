"""Timing: calibrated batches, the two libraries alternating, medians and spreads."""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Prepared:
    """One library's ready-to-time program.

    ``run`` does one unit of work (on a fresh thread where it writes); its time is divided
    by ``units`` (node steps, cycles, reads). ``output`` is the normalized result of a check
    run made while preparing; ``extra`` carries other figures of that run (stored bytes).
    """

    run: Callable[[], Any]
    units: int
    output: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stats:
    """Seconds per unit over the repeats."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def iqr(self) -> tuple[float, float]:
        if len(self.samples) < 4:
            return self.low, self.high
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]


def _timed(run: Callable[[], Any], n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        run()
    return time.perf_counter() - start


def calibrate(run: Callable[[], Any], target_s: float, max_n: int = 100_000) -> int:
    """How many calls of ``run`` make one sample of about ``target_s`` seconds."""
    elapsed = _timed(run, 1)
    n = 1
    while elapsed < target_s / 10 and n < max_n:  # too fast to judge from one call
        n *= 10
        elapsed = _timed(run, n)
    return max(1, min(max_n, round(n * target_s / max(elapsed, 1e-9))))


def measure(prepared: Mapping[str, Prepared], repeats: int, target_s: float) -> dict[str, Stats]:
    """Per-unit seconds for each library, samples taken A, B, A, B, ..."""
    batch = {lib: calibrate(p.run, target_s) for lib, p in prepared.items()}
    samples: dict[str, list[float]] = {lib: [] for lib in prepared}
    for _ in range(repeats):
        for lib, p in prepared.items():
            elapsed = _timed(p.run, batch[lib])
            samples[lib].append(elapsed / (batch[lib] * p.units))
    return {lib: Stats(tuple(s)) for lib, s in samples.items()}


def peak_bytes(program: Callable[[], Any]) -> int:
    """tracemalloc's peak while ``program`` runs once (building included)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        program()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
