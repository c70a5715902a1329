"""The documentation site: strict build, an API page for every public module, result tables."""

from __future__ import annotations

import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
import warnings
from html import unescape
from pathlib import Path
from types import ModuleType

import pytest

import multitask_unet

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_DIRECTIVE = re.compile(r"^:::\s+(?P<name>[\w.]+)\s*$", re.MULTILINE)


def _load_ext(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_hook() -> ModuleType:
    return _load_ext("results_hook")


def public_modules() -> list[str]:
    """Every importable module of the package without a ``_``-prefixed part.

    Deprecation shims (old import paths, marked ``__deprecated_path__ = True``) are left out:
    their names are documented where they moved.
    """
    names = ["multitask_unet"]
    for info in pkgutil.walk_packages(multitask_unet.__path__, "multitask_unet."):
        private = any(part.startswith("_") for part in info.name.split("."))
        if not private and not is_deprecated_path(info.name):
            names.append(info.name)
    return sorted(names)


def is_deprecated_path(name: str) -> bool:
    """Whether module ``name`` is a deprecation shim (importing it warns; ignored here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module(name)
    return getattr(module, "__deprecated_path__", False) is True


def documented_modules() -> set[str]:
    """Targets of the ``::: name`` directives of the API reference pages."""
    return {
        m.group("name")
        for page in (DOCS / "reference").glob("*.md")
        for m in _DIRECTIVE.finditer(page.read_text(encoding="utf-8"))
    }


def test_every_public_module_has_an_api_reference_entry() -> None:
    missing = sorted(set(public_modules()) - documented_modules())
    assert not missing, (
        f"public modules without an API reference entry: {missing}; add a line "
        "'::: <module>' to the matching page of docs/reference/ (and the page to mkdocs.yml)"
    )


def test_every_top_level_name_is_linked_from_the_reference_index() -> None:
    index = (DOCS / "reference" / "index.md").read_text(encoding="utf-8")
    missing = [
        name
        for name in multitask_unet.__all__
        if name != "__version__" and f"[`{name}`](" not in index
    ]
    assert not missing, (
        f"multitask_unet.__all__ names missing from docs/reference/index.md: {missing}"
    )


def test_api_reference_leaves_out_deprecated_paths() -> None:
    shims = sorted(
        name
        for name in documented_modules()
        if importlib.util.find_spec(name) is not None and is_deprecated_path(name)
    )
    assert not shims, f"docs/reference/ documents deprecated import paths: {shims}"


def test_api_reference_names_only_existing_modules() -> None:
    stale = sorted(name for name in documented_modules() if importlib.util.find_spec(name) is None)
    assert not stale, f"docs/reference/ documents modules that do not exist: {stale}"


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_ext" not in p.parts
    )
    missing = [p for p in pages if p not in config]
    assert not missing, f"pages missing from the nav of mkdocs.yml: {missing}"


# -- docstrings as mkdocstrings reads them ------------------------------------------------------


@pytest.mark.parametrize(
    ("docstring", "expected"),
    [
        ("Uses :class:`~multitask_unet.data.sampling.batch.Batch`.", "Uses `Batch`."),
        ("See :func:`multitask_unet.create_model`.", "See `multitask_unet.create_model`."),
        (":meth:`Plan.save` and :py:data:`LOSSES`", "`Plan.save` and `LOSSES`"),
        (":mod:`the loaders <multitask_unet.data.sampling.loader>`", "`the loaders`"),
        ("Example:\n    >>> f()\n", "Examples:\n    >>> f()\n"),
        ("    Example:\n        >>> f()", "    Examples:\n        >>> f()"),
        ("An example: not a header", "An example: not a header"),
        ("``literal`` stays", "``literal`` stays"),
        (
            "Layout of a folder::\n\n    CACHE/plan.json",
            "Layout of a folder:\n\n    CACHE/plan.json",
        ),
        (
            "Example::\n\n    multitask-unet plan DATA",
            "**Example**\n\n    multitask-unet plan DATA",
        ),
        ("x = a[::2]  # slices stay", "x = a[::2]  # slices stay"),
        (
            "Args:\n    a, b: Shared.\n        More.\n    c: C.",
            "Args:\n    a: Shared.\n        More.\n    b: Shared.\n        More.\n    c: C.",
        ),
        ("Returns:\n    a, b: not parameters", "Returns:\n    a, b: not parameters"),
        (":func:`~pkg.mod.\n    run` and :mod:`.io`", "`run` and `io`"),
    ],
)
def test_docstrings_are_translated_for_mkdocstrings(docstring: str, expected: str) -> None:
    assert _load_ext("griffe_docstrings").translate(docstring) == expected


def test_roles_whose_target_resolves_become_optional_links() -> None:
    translate = _load_ext("griffe_docstrings").translate
    paths = {"run": "pkg.mod.run"}.get
    assert translate(":func:`run`, :class:`Other`", paths) == (
        '<autoref identifier="pkg.mod.run" optional>`run`</autoref>, `Other`'
    )


# -- result files rendered into pages ----------------------------------------------------------


def test_results_marker_renders_every_number_of_a_result_file(tmp_path: Path) -> None:
    hook = _load_hook()
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    data = {
        "benchmark": "toy",
        "environment": {"device": "cpu", "device_name": "Test CPU (2 cores)", "torch": "9.9"},
        "settings": {"batch": 3},
        "results": {"ours": {"median_s": 1.23456, "n": 5}, "ref": {"median_s": 2.5, "n": 5}},
        "raw": list(range(50)),
        "shape": [1, 2, 32, 64, 64],
        "runs": {"ours": {"seconds": [9.5, 9.25, 9.125, 9.0625], "median_s": 9.125}},
    }
    (results / "toy-cpu.json").write_text(json.dumps(data))
    text = hook.render_marker("benchmarks/results/toy*.json", root=tmp_path)
    assert "Test CPU (2 cores)" in text and "torch 9.9" in text
    assert "| ours | 1.235 | 5 |" in text and "| `ref` | 2.5 | 5 |" in text
    assert "|  | median time (s) | repeats |" in text  # readable column names
    assert "| batch | 3 |" in text
    assert "| shape | 1 × 2 × 32 × 64 × 64 |" in text
    assert "| ours | 9.125 |" in text  # the summary, not the repetitions
    assert "49" not in text and "9.062" not in text  # raw repetitions are left out


def test_results_marker_without_files_says_not_yet_measured(tmp_path: Path) -> None:
    hook = _load_hook()
    text = hook.render_marker("benchmarks/results/none*.json", root=tmp_path)
    assert text.startswith("*Not yet measured")


def test_results_marker_names_a_broken_result_file(tmp_path: Path) -> None:
    hook = _load_hook()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json is not valid JSON"):
        hook.render_marker("bad*.json", root=tmp_path)


def test_results_markers_in_pages_are_expanded(tmp_path: Path) -> None:
    hook = _load_hook()
    page = "# Page\n\n<!-- results: nothing/here*.json -->\n\nText.\n"
    config = {"config_file_path": str(tmp_path / "mkdocs.yml")}
    out = hook.on_page_markdown(page, page=None, config=config, files=None)
    assert "<!-- results" not in out and "*Not yet measured" in out and out.endswith("Text.\n")


def test_crossval_marker_renders_the_headline_table(tmp_path: Path) -> None:
    hook = _load_hook()
    scores = {"dice_a": {"mean": 0.81234, "median": 0.8}, "dice_b": {"mean": 0.4, "median": 0.45}}
    data = {
        "folds": 3,
        "cases": 46,
        "budget": "30m",
        "raw": scores,
        "postprocessed": {"dice_a": {"mean": 0.82, "median": 0.83}},
        "postprocessing": {
            "chosen_on_every_case": {"label_weights": [1, 1, 16], "largest_component": True}
        },
        "environment": {"device": "cpu", "device_name": "Test CPU"},
    }
    (tmp_path / "cv.json").write_text(json.dumps(data))
    page = "<!-- crossval: cv.json dice_a dice_b -->\n"
    config = {"config_file_path": str(tmp_path / "mkdocs.yml")}
    out = hook.on_page_markdown(page, page=None, config=config, files=None)
    assert "| plain argmax | 0.812 | 0.800 | 0.400 | 0.450 |" in out
    assert "| chosen post-processing | 0.820 | 0.830 | – | – |" in out
    assert "label weights 1 × 1 × 16, largest component yes" in out
    assert "3 folds, budget 30m per fold" in out and "Test CPU" in out
    assert "*Not yet measured" in hook.render_crossval(tmp_path / "none.json", [], root=tmp_path)


def test_readme_results_table_is_its_result_file_rendered() -> None:
    """The README shows the front door's cross-validation exactly as the study page renders it."""
    path = ROOT / "benchmarks" / "results" / "pancreas-cpu-crossval3-frontdoor.json"
    columns = ["dice_whole_pancreas", "dice_lesion"]
    rendered = _load_hook().render_crossval(path, columns, root=ROOT)
    table = [line for line in rendered.splitlines() if line.startswith("|")]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(table) >= 4 and all(line in readme for line in table), rendered


@pytest.mark.parametrize(
    "path", sorted((ROOT / "benchmarks" / "results").glob("*.json")), ids=lambda p: p.name
)
def test_committed_result_files_render(path: Path) -> None:
    text = _load_hook().render_file(path, root=ROOT)
    assert text.startswith("### ") and "benchmarks/results" not in text.splitlines()[0]
    assert f"<small>Source: `benchmarks/results/{path.name}`</small>" in text
    assert "Measured on:" in text


# -- the strict build ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once with ``mkdocs build --strict`` for every test that reads it."""
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    site = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
    proc = subprocess.run(
        [*command, "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return site


@pytest.mark.slow
def test_mkdocs_build_strict(site: Path) -> None:
    assert (site / "reference" / "models" / "index.html").is_file()


# What a reader would see as broken markup: (name, pattern on the text outside code).
_TEXT_ARTIFACTS = [
    ("a Sphinx role", re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const):`")),
    ("reST double backticks", re.compile(r"``")),
    ("a reST directive", re.compile(r"(?m)^\s*\.\. [\w-]+::")),
    ("a doctest outside a code block", re.compile(r">>> ")),
    ("a visible HTML comment", re.compile(r"<!--")),
]
# ... and patterns on the HTML (code blocks removed).
_HTML_ARTIFACTS = [
    ("an unparsed docstring section", re.compile(
        r"<p>\s*(?:Args|Arguments|Returns|Raises|Yields|Examples?|Attributes|Parameters):")),
    ("a table rendered as text", re.compile(r"<p>(?:(?!</p>).)*\n\s*\|(?:(?!</p>).)*</p>", re.S)),
    ("a heading with raw Markdown", re.compile(r"<h\d[^>]*>[^<]*(?:\*\*|`|\]\()")),
    ("an unexpanded marker", re.compile(r"<!--\s*(?:results|crossval|cli|summary):")),
    ("a wrapped Returns line read as a second value", re.compile(
        r'>(?:Returns|Yields):</span></p>\s*<table>(?:(?!</table>).)*?<tbody>'
        r"(?:(?!</table>).)*?</tr>\s*<tr", re.S)),
]  # fmt: skip
_CODE = re.compile(r"<(pre|code|script|style|svg)\b.*?</\1>", re.S)
MAX_TOC_ENTRIES = 150  # data.md held 210 before it was split by subpackage


def reader_visible_artifacts(html: str) -> list[str]:
    """Names and excerpts of broken markup a reader would see on the page ``html``."""
    prose = _CODE.sub("", html)
    text = unescape(re.sub(r"<[^>]+>", "", prose))
    found = [(name, m) for name, pattern in _TEXT_ARTIFACTS for m in pattern.finditer(text)]
    found += [(name, m) for name, pattern in _HTML_ARTIFACTS for m in pattern.finditer(prose)]

    contexts = [(name, m.string[max(0, m.start() - 60) : m.end() + 100]) for name, m in found]
    return [f"{n}: ...{' '.join(re.sub(r'<[^>]+>', ' ', c).split())[:300]}..." for n, c in contexts]


@pytest.mark.parametrize(
    "html",
    [
        "<p>See :func:`run`.</p>",
        "<p>as ``sklearn.metrics.roc_curve(...,</p>",
        "<p>.. note::\n   Careful.</p>",
        "<p>&gt;&gt;&gt; f()</p>",
        "<p>&lt;!-- results: x.json --&gt;</p>",
        "<p>Args:\n    x: A value.</p>",
        "<p>A table:\n| a | b |\n|---|---|</p>",
        '<h2 id="x">The **plan**</h2>',
        "<!-- crossval: cv.json dice -->",
        '<span class="doc-section-title">Returns:</span></p>\n<table><thead><tr><th>Type</th>'
        "</tr></thead><tbody><tr><td>a</td></tr>\n<tr><td>wrapped line</td></tr></tbody></table>",
    ],
)
def test_artifacts_are_found(html: str) -> None:
    assert reader_visible_artifacts(html)


def test_code_and_rendered_markup_are_not_artifacts() -> None:
    html = (
        '<p><span class="doc-section-title">Returns:</span></p><table><tbody><tr><td>x</td></tr>'
        "</tbody></table><pre><code>&gt;&gt;&gt; f()\n``x``</code></pre><p><code>a``b</code></p>"
        '<h2 id="x">The plan</h2><!-- a comment -->'
    )
    assert reader_visible_artifacts(html) == []


@pytest.mark.slow
def test_rendered_pages_show_no_broken_markup(site: Path) -> None:
    broken = []
    for page in sorted(site.rglob("*.html")):
        html = page.read_text(encoding="utf-8")
        where = page.relative_to(site).as_posix()
        broken += [f"{where}: {artifact}" for artifact in reader_visible_artifacts(html)]
        for src in re.findall(r'<img[^>]*\ssrc="([^"]+)"', html):
            local = "://" not in src and not src.startswith("data:")
            if local and not (page.parent / src.split("#")[0]).resolve().is_file():
                broken.append(f"{where}: image {src} is not in the site")
        toc = html.split('data-md-component="toc"', 1)[-1].split("</nav>", 1)[0]
        if (n := toc.count('class="md-nav__link"')) > MAX_TOC_ENTRIES:
            broken.append(f"{where}: {n} table-of-contents entries; split the page by subpackage")
    assert not broken, "\n".join(broken[:40])


@pytest.mark.slow
def test_sphinx_roles_become_links_in_the_api_reference(site: Path) -> None:
    """The docstrings' :func:`x` roles link to the target's entry (see griffe_docstrings.py)."""
    html = (site / "reference" / "training" / "index.html").read_text(encoding="utf-8")
    link = re.compile(r'<a class="autorefs autorefs-internal"[^>]*href="[^"]*#([\w.]+)"><code>')
    targets = set(link.findall(html))
    assert "multitask_unet.training.config.TrainConfig" in targets, sorted(targets)[:20]


def test_the_cli_reference_lists_every_argument_of_every_command() -> None:
    import argparse

    hook = _load_ext("cli_hook")
    page = (DOCS / "reference" / "cli.md").read_text()
    for name, parser in hook.subcommands().items():
        assert f"<!-- cli: {name} -->" in page, f"docs/reference/cli.md does not render {name}"
        text = hook.render_command(name)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if action.help == argparse.SUPPRESS:
                assert not any(f"`{o}`" in text for o in action.option_strings)
                continue
            for option in action.option_strings:
                assert f"`{option}`" in text, f"{name} {option}"
    with pytest.raises(ValueError, match="no such command"):
        hook.render_command("trian")
