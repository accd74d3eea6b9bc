"""Every Python example in the README runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    # Each block in a fresh interpreter, as a reader would run it: a block may change
    # the process (install_as_langgraph), and none may lean on another's imports.
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]],
        cwd=README.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"README.md python block {index} failed:\n{proc.stderr}"
