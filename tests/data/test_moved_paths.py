"""The data package's layout: old module paths still work (with a warning), no import cycles."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import multitask_unet.data

#: Old module path -> the module(s) its names moved to.
MOVED = {
    "fingerprint": ["planning.fingerprint"],
    "patch_planning": ["planning.patch_size"],
    "budget": ["planning.budget_section"],
    "cache": ["preprocessing.cache"],
    "cropping": ["preprocessing.cropping"],
    "resampling": ["preprocessing.resampling"],
    "patches": ["sampling.patches", "sampling.crop"],
    "loader": ["sampling.loader"],
    "augmentation": ["sampling.augmentation", "sampling.spatial"],
    "batch": ["sampling.batch"],
}
DATA = Path(multitask_unet.data.__file__).parent


def _reimport(name: str) -> tuple[object, list[warnings.WarningMessage]]:
    sys.modules.pop(name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        __import__(name)  # no frame of its own: the warning points at this line
    module = sys.modules[name]
    return module, [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_warns_once_and_gives_the_same_objects(old: str) -> None:
    news = [importlib.import_module(f"multitask_unet.data.{n}") for n in MOVED[old]]
    module, caught = _reimport(f"multitask_unet.data.{old}")
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert message.startswith(f"multitask_unet.data.{old} moved to ")
    assert all(new.__name__ in message for new in news)
    assert caught[0].filename == __file__  # attributed to the importing line, not importlib
    assert module.__deprecated_path__ is True
    assert sorted(module.__all__) == sorted(n for new in news for n in new.__all__)
    for new in news:
        for name in new.__all__:
            assert getattr(module, name) is getattr(new, name), name


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("planning", ["Plan", "PreprocessingConfig", "create_plan", "compute_fingerprint"]),
        ("preprocessing", ["CaseProperties", "preprocess_case", "restore_native"]),
        ("sampling", ["BalancedCaseSampler", "case_weights", "sampling_warnings"]),
    ],
)
def test_packages_keep_the_names_of_the_modules_they_replace(package: str, names: list) -> None:
    module, caught = _reimport(f"multitask_unet.data.{package}")
    assert not caught and set(names) <= set(module.__all__)
    assert all(hasattr(module, n) for n in module.__all__)


def test_library_imports_raise_no_deprecation_warning() -> None:
    """``multitask_unet`` and every public module import cleanly with warnings as errors."""
    code = textwrap.dedent(
        """
        import importlib, importlib.util, pkgutil, warnings
        warnings.simplefilter("error", DeprecationWarning)
        import multitask_unet
        for info in pkgutil.walk_packages(multitask_unet.__path__, "multitask_unet."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            origin = importlib.util.find_spec(info.name).origin
            if "__deprecated_path__ = True" not in open(origin, encoding="utf-8").read():
                importlib.import_module(info.name)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _module_imports(path: Path) -> set[str]:
    """Modules of ``multitask_unet.data`` that ``path`` imports, in functions too (lazy imports
    are cycles waiting to happen) but not under ``if TYPE_CHECKING:``."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {n for n in names if n.startswith("multitask_unet.data")}


def test_data_modules_import_no_cycle() -> None:
    """Importing a module runs its packages' ``__init__`` too, so those count as edges."""
    modules = {}
    for path in DATA.rglob("*.py"):
        parts = path.relative_to(DATA.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target in _module_imports(path):
            while target not in modules and "." in target:  # `from pkg import name`
                target = target.rpartition(".")[0]
            parent = target.rpartition(".")[0]
            while parent.startswith("multitask_unet.data"):  # packages above the target
                edges.add(parent)
                parent = parent.rpartition(".")[0]
            edges.add(target)
        own = {name, *(name.rsplit(".", k)[0] for k in range(1, name.count(".")))}
        graph[name] = edges - own  # a package's own __init__ and parents are already running

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack, node]))
        for nxt in sorted(graph.get(node, ())):
            if nxt not in done:
                visit(nxt, [*stack, node])
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        visit(name, [])
