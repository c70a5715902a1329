"""Griffe extension: read Google-style ``Example:`` sections as ``Examples:``.

Google style (and Napoleon) accept both spellings; griffe parses only ``Examples:`` into an
examples section (rendering ``>>>`` lines as code) and treats ``Example:`` as an admonition,
whose doctest output Markdown then misreads as links. This extension renames the section
header before griffe parses the docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADER = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headers to ``Examples:`` in every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_HEADER.sub(r"\1Examples:", obj.docstring.value)
