"""Every module of the package opens with a docstring saying what it holds and why.

The second reader of a module starts at its top: a module without a docstring makes them
read the code to learn what it is for. The docstring must be the module's first statement
(after comments) and say something.
"""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "threadloom"


def _lacking_docstrings(package: pathlib.Path) -> list[str]:
    """The modules of ``package`` (paths relative to its parent) without a module docstring,
    each with what is wrong."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        name = str(path.relative_to(package.parent))
        doc = ast.get_docstring(ast.parse(path.read_text(), name), clean=True)
        if doc is None:
            problems.append(f"{name}: no module docstring")
        elif not doc.strip():
            problems.append(f"{name}: the module docstring is empty")
    return problems


def test_every_module_has_a_docstring() -> None:
    assert _lacking_docstrings(PACKAGE) == []


def test_the_check_names_the_modules_lacking_one(tmp_path: pathlib.Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The package: what and why."""\n')
    (package / "sub" / "__init__.py").write_text("# a comment is not a docstring\nX = 1\n")
    (package / "blank.py").write_text('"""   """\n')
    (package / "late.py").write_text('import os\n\n"""Too late to be the docstring."""\n')
    (package / "good.py").write_text('# coding comment\n"""What it holds.\n\nWhy."""\n')
    assert _lacking_docstrings(package) == [
        "pkg/blank.py: the module docstring is empty",
        "pkg/late.py: no module docstring",
        "pkg/sub/__init__.py: no module docstring",
    ]
