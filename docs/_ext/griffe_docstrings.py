"""Griffe extension: read the library's Google-style docstrings the way their authors meant.

Two habits of the docstrings are translated before griffe parses them:

- ``Example:`` section headers become ``Examples:``. Google style (and Napoleon) accept both
  spellings; griffe parses only ``Examples:`` into an examples section (``>>>`` lines rendered
  as code) and reads ``Example:`` as an admonition, whose doctest output Markdown then misreads
  as links.
- reStructuredText literal-block markers: a line ``Text::`` becomes ``Text:`` and a line
  holding only ``Word::`` becomes ``**Word**`` (the indented block after it renders as code in
  Markdown too; a bare ``Example:`` would be read as an admonition and lose the block).
- Sphinx cross-reference roles (``:class:`~pkg.mod.Name```, ``:func:`name```, ...), which
  Markdown would print with their role prefix, become inline code showing what Sphinx would
  show: the last component with ``~``, the title of ``Title <target>``, else the target.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["GoogleDocstrings", "translate"]

_EXAMPLE_HEADER = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_LITERAL_WORD = re.compile(r"^(\s*)(\w+)::[ \t]*$", re.MULTILINE)
_LITERAL_TEXT = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const|ref):"
    r"`(?P<text>[^`]+)`(?!`)"
)


def _role_text(match: re.Match[str]) -> str:
    text = match.group("text").strip()
    titled = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", text)
    if titled:
        text = titled.group("title")
    elif text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return f"`{text}`"


def translate(docstring: str) -> str:
    """The docstring with ``Example:`` headers, literal-block markers and Sphinx roles
    translated (see the module docstring).

    Example:
        >>> translate("See :class:`~a.b.Batch` and :func:`run`.\\n\\nExample:\\n    >>> 1")
        'See `Batch` and `run`.\\n\\nExamples:\\n    >>> 1'
    """
    text = _EXAMPLE_HEADER.sub(r"\1Examples:", docstring)
    text = _LITERAL_TEXT.sub(":", _LITERAL_WORD.sub(r"\1**\2**", text))
    return _ROLE.sub(_role_text, text)


class GoogleDocstrings(griffe.Extension):
    """Apply :func:`translate` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = translate(obj.docstring.value)
