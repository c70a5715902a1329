"""Every Sphinx role in the package's docstrings links to an entry the API reference shows.

Checked on what mkdocstrings renders, without building the site: griffe's view of the package,
the ``::: module`` directives of docs/reference/ and the options of mkdocs.yml, which leave out
names starting with ``_``, objects without a docstring and submodules no page names. A role
whose target is not shown renders as plain code; docs/_ext/griffe_docstrings.py turns the
others into links.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

griffe = pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import griffe_docstrings  # noqa: E402


@pytest.fixture(scope="module")
def package() -> Any:
    return griffe.load("multitask_unet", search_paths=[str(ROOT / "src")])


def reference_modules() -> set[str]:
    """The modules the API reference pages render (``::: name`` lines)."""
    pages = (DOCS / "reference").glob("*.md")
    return {
        name for page in pages for name in re.findall(r"(?m)^:::\s+([\w.]+)\s*$", page.read_text())
    }


def why_not_shown(package: Any, path: str, modules: set[str]) -> str | None:
    """Why the API reference shows no entry for the object at ``path``; None when it does."""
    obj = package
    for part in path.split(".")[1:]:
        obj = obj.members[part]
    module = obj if obj.is_module else obj.module
    if module.path not in modules:
        return f"no page of docs/reference/ has '::: {module.path}'"
    while obj is not module:
        if obj.name.startswith("_"):
            return f"{obj.name} is private (mkdocs.yml: filters ['!^_'])"
        if not obj.has_docstrings:
            return f"{obj.path} has no docstring"
        obj = obj.parent
    return None


def test_mkdocs_options_are_those_the_check_assumes() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    plugin = next(p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict))
    options = plugin["handlers"]["python"]["options"]
    assert options["filters"] == ["!^_"], "update why_not_shown to the new filters"
    assert not options.get("show_if_no_docstring") and options["show_submodules"] is False


def test_every_role_links_to_an_entry_the_reference_shows(package: Any) -> None:
    modules = reference_modules()
    broken = []
    for obj, role, path in griffe_docstrings.role_targets(package):
        if path is None:
            broken.append(f"{obj.path}: {role} names no object of the package")
        elif (reason := why_not_shown(package, path, modules)) is not None:
            broken.append(f"{obj.path}: {role} -> {path}: {reason}")
    assert not broken, (
        "roles that render as plain code instead of links; give the target a docstring (a "
        "string after a constant, an Attributes: entry of its class) or write ``name`` for a "
        "private target:\n" + "\n".join(broken)
    )


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("multitask_unet.cli._plans.plans_network", "no page"),
        ("multitask_unet.layers.blocks._ResidualBlock", "private"),
        ("multitask_unet.encoders.base.Encoder.spatial_dims", "no docstring"),
        ("multitask_unet.training.budget.recipe.BUDGET_RECIPE", None),
        ("multitask_unet.data.sampling.batch.Batch", None),
    ],
)
def test_targets_the_reference_leaves_out_are_found(
    package: Any, path: str, reason: str | None
) -> None:
    found = why_not_shown(package, path, reference_modules())
    assert found is None if reason is None else reason in (found or "")


def test_a_role_on_an_attribute_its_class_describes_links_to_the_class(package: Any) -> None:
    batch = package["data.sampling.batch"]
    paths = [obj.path for obj in griffe_docstrings._objects(package)]
    resolve = griffe_docstrings.resolver(batch["MISSING_LABEL"], package, paths)
    assert resolve("Batch.label") == "multitask_unet.data.sampling.batch.Batch"
    assert resolve("Batch.collate") == "multitask_unet.data.sampling.batch.Batch.collate"
    assert resolve("MISSING_LABEL") == "multitask_unet.data.sampling.batch.MISSING_LABEL"


def test_attributes_sections_are_read_item_by_item() -> None:
    docstring = (
        "Text: not an item.\n\nAttributes:\n    a: A.\n        more: a continued line.\n"
        "    b, c (int): B and C.\n\nReturns:\n    d: not an attribute."
    )
    assert griffe_docstrings._section_attributes(docstring) == {"a", "b", "c"}
