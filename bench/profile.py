"""Where threadloom's time goes: cProfile over benchmark figures, top functions by tottime.

    .venv-bench/bin/python bench/profile.py                      # chain, approval, interrupt,
                                                           # fan-out, all on the memory saver
    .venv-bench/bin/python bench/profile.py --figure approval/sqlite --figure compile/none
    .venv-bench/bin/python bench/profile.py --top 40 --seconds 3

``--figure`` takes a figure key of ``bench/run.py`` (see its table; ``--list`` prints them).
Only threadloom runs here; the time is spent on copies of the same programs.
"""

import sys
from pathlib import Path

# Run as a script, this folder would shadow the standard library's ``profile`` module,
# which ``cProfile`` imports: take this folder off the path, import ``bench`` from the root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402

from bench.api import load_api  # noqa: E402
from bench.cases import Figure, figures  # noqa: E402
from bench.harness import calibrate  # noqa: E402
from bench.savers import open_saver, unavailable  # noqa: E402

DEFAULT = ["chain/memory", "approval/memory", "interrupt/memory", "fanout/memory"]
ROOTS = (str(_HERE.parent) + "/", "site-packages/", "lib/python")


def _where(filename: str, line: int, name: str) -> str:
    for root in ROOTS:
        if root in filename:
            filename = filename.split(root, 1)[1]
            break
    return f"{filename}:{line}({name})" if line else name


def top_functions(profiler: cProfile.Profile, top: int, calls: int) -> list[str]:
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in rows) or 1.0
    out = [f"{'tottime':>9} {'%':>5} {'cumtime':>9} {'ncalls':>10} {'µs/run':>8}  function"]
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in rows[:top]:
        out.append(
            f"{tottime:9.3f} {100 * tottime / total:5.1f} {cumtime:9.3f} {ncalls:10,} "
            f"{1e6 * tottime / calls:8.1f}  {_where(filename, line, name)}"
        )
    return out


def profile_figure(fig: Figure, top: int, seconds: float) -> None:
    reason = unavailable("threadloom", fig.saver)
    if reason:
        print(f"\n== {fig.key}: skipped ({reason})")
        return
    api = load_api("threadloom")
    with open_saver("threadloom", fig.saver) as saver:
        prepared = fig.prepare(api, saver, fig.saver, fig.key)
        calls = calibrate(prepared.run, seconds / 3)  # profiling slows it about threefold
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            prepared.run()
        profiler.disable()
    print(
        f"\n== {fig.key} ({fig.label}, saver {fig.saver}): {calls} runs under cProfile, "
        f"top {top} by tottime"
    )
    print("\n".join(top_functions(profiler, top, calls)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--figure",
        action="append",
        metavar="KEY",
        help=f"figure key to profile (default: {', '.join(DEFAULT)})",
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="about how long each profiled loop runs"
    )
    parser.add_argument("--list", action="store_true", help="print the figure keys")
    args = parser.parse_args(argv)
    known = {f.key: f for f in figures()}
    if args.list:
        print("\n".join(known))
        return 0
    for key in args.figure or DEFAULT:
        if key not in known:
            parser.error(f"unknown figure {key!r}; --list prints them")
        profile_figure(known[key], args.top, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
