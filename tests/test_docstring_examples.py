"""Every docstring example of the package runs and prints what it shows.

The API reference renders these docstrings, so a user copies their examples first. Examples
that need files or a GPU carry ``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import multitask_unet

PACKAGE_DIR = Path(multitask_unet.__file__).parent


def modules_with_examples() -> list[str]:
    """Names of the package's modules whose own docstrings hold ``>>>`` examples."""
    names = ["multitask_unet"] + [
        info.name
        for info in pkgutil.walk_packages(multitask_unet.__path__, "multitask_unet.")
        if not info.name.endswith("__main__")  # running it is the command line
    ]
    out = []
    for name in names:
        parts = name.split(".")[1:]
        path = PACKAGE_DIR.joinpath(*parts)
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if ">>>" in source.read_text(encoding="utf-8"):
            out.append(name)
    return out


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module) if t.examples and t.filename == module.__file__]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
