"""``make bench``: threadloom side by side with LangGraph, same programs, one process.

.venv-bench/bin/python bench/run.py            # the full run (under 5 minutes)
.venv-bench/bin/python bench/run.py --quick    # a ~30 s smoke run
.venv-bench/bin/python bench/run.py --only agent
"""

import sys
from pathlib import Path

# Run as a script, this folder would shadow the standard library (``profile``): import the
# benchmark as the ``bench`` package from the project root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
