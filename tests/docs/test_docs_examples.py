"""The Python examples of the documentation run as written.

Every ```` ```python ```` block of a page under ``docs/`` is executed, the page's blocks in
order and in one module namespace (later blocks use names from earlier ones), in a temporary
working directory; registrations a page makes (an example encoder or head) are undone after its test.
A block that needs real data or a long run is excluded by putting the marker
``<!-- skip-test -->`` on the line right before its opening fence (blank lines allowed between
them); use it sparingly. Blocks in other languages (``bash``, ``yaml``, ...) are not run.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from multitask_unet.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

from benchmarks.bench_newcomer import SKIP_MARKER, code_blocks  # noqa: E402  (one fence parser)

#: Pages owned by other authors whose fragments are not yet runnable as a whole page, with
#: what is missing. Remove an entry once the page's illustrative blocks carry SKIP_MARKER.
PENDING: dict[str, str] = {}
#: Pages whose Python blocks run together with their commands, in test_newcomer_pages.py.
RUN_WITH_COMMANDS = frozenset({"getting-started.md", "how-to/own-data.md"})


def python_pages() -> list[Path]:
    """Every page with at least one ```` ```python ```` block, sorted."""
    return sorted(
        p
        for p in DOCS.rglob("*.md")
        if any(b.language == "python" for b in code_blocks(p.read_text(encoding="utf-8")))
    )


@pytest.fixture
def restore_registries() -> Iterator[None]:
    """Undo registrations made by a page (e.g. an example encoder) after its test."""
    registries = list(
        {
            id(obj): obj
            for name, module in list(sys.modules.items())
            if name.startswith("multitask_unet")
            for obj in vars(module).values()
            if isinstance(obj, Registry)
        }.values()
    )
    saved = [dict(reg._items) for reg in registries]
    yield
    for reg, items in zip(registries, saved, strict=True):
        reg._items.clear()
        reg._items.update(items)


@pytest.mark.usefixtures("restore_registries")
@pytest.mark.parametrize("page", python_pages(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = page.relative_to(DOCS).as_posix()
    if rel in PENDING:
        pytest.skip(f"{rel}: {PENDING[rel]}")
    if rel in RUN_WITH_COMMANDS:
        pytest.skip(f"{rel} runs with its commands in test_newcomer_pages.py")
    blocks = [
        b for b in code_blocks(page.read_text(encoding="utf-8"), rel) if b.language == "python"
    ]
    runnable = [b for b in blocks if not b.skipped]
    if not runnable:
        pytest.skip(f"every Python block of {rel} is marked {SKIP_MARKER}")
    monkeypatch.chdir(tmp_path)
    # A real module, so that classes defined by the page resolve their annotations.
    module = types.ModuleType("docs_example_" + re.sub(r"\W", "_", rel.removesuffix(".md")))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for block in runnable:
        code = compile(block.code, f"docs/{rel}:{block.line}", "exec")
        try:
            exec(code, module.__dict__)
        except Exception as exc:
            raise AssertionError(
                f"the Python block at docs/{rel} line {block.line} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


# -- the block parser itself ---------------------------------------------------------------------

_SAMPLE = """\
# Title

```python
x = 1
```

<!-- skip-test -->

```python
raise RuntimeError("needs real data")
```

```bash
echo not python
```

- item

    ```python
    y = x + 1
    ```
"""


def test_code_blocks_parses_languages_skip_markers_and_indentation() -> None:
    blocks = code_blocks(_SAMPLE)
    assert [(b.language, b.skipped, b.line) for b in blocks] == [
        ("python", False, 3),
        ("python", True, 9),
        ("bash", False, 13),
        ("python", False, 19),
    ]
    assert blocks[0].code == "x = 1\n"
    assert blocks[3].code == "y = x + 1\n"  # the list item's indentation is removed


@pytest.mark.parametrize(
    ("text", "skipped"),
    [
        ("<!-- skip-test -->\n```python\npass\n```\n", True),
        ("<!-- skip-test -->\nSome text.\n\n```python\npass\n```\n", False),
        ("```python\npass\n```\n", False),
    ],
)
def test_skip_marker_applies_only_right_before_a_block(text: str, skipped: bool) -> None:
    (block,) = code_blocks(text)
    assert block.skipped is skipped
