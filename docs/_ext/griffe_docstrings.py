"""Griffe extension: read the library's Google-style docstrings the way their authors meant.

Two habits of the docstrings are translated before griffe parses them:

- ``Example:`` section headers become ``Examples:``. Google style (and Napoleon) accept both
  spellings; griffe parses only ``Examples:`` into an examples section (``>>>`` lines rendered
  as code) and reads ``Example:`` as an admonition, whose doctest output Markdown then misreads
  as links.
- reStructuredText literal-block markers: a line ``Text::`` becomes ``Text:`` and a line
  holding only ``Word::`` becomes ``**Word**`` (the indented block after it renders as code in
  Markdown too; a bare ``Example:`` would be read as an admonition and lose the block).
- Grouped parameters (``optimizer, scaler: The optimiser and the scaler.`` in an ``Args:``
  section, as Napoleon reads them) become one entry per name with the shared description;
  griffe would read the group as one parameter that is not in the signature.
- Sphinx cross-reference roles (``:class:`~pkg.mod.Name```, ``:func:`name```, ...), which
  Markdown would print with their role prefix, become inline code showing what Sphinx would
  show: the last component with ``~``, the title of ``Title <target>``, else the target.
  When the target resolves in the docstring's scope (an imported or sibling name, a full
  path, a re-export), the code is a link to the target's entry in the API reference (an
  optional mkdocs-autorefs reference: a target the reference does not render stays code).
  An attribute with no docstring of its own that its class's ``Attributes:`` section
  describes links to the class's entry, whose table shows it.

The translation runs once the whole package is loaded, so that every target can be resolved.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import griffe

__all__ = ["GoogleDocstrings", "role_targets", "translate"]

_EXAMPLE_HEADER = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_LITERAL_WORD = re.compile(r"^(\s*)(\w+)::[ \t]*$", re.MULTILINE)
_LITERAL_TEXT = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
_PARAM_SECTION = re.compile(
    r"^(?P<indent>\s*)(?:Args|Arguments|Params|Parameters|Keyword Args|Keyword Arguments"
    r"|Other Parameters|Attributes):[ \t]*$"
)
_GROUPED_ITEM = re.compile(
    r"^(?P<names>\*{0,2}\w+(?:[ \t]*,[ \t]*\*{0,2}\w+)+)(?P<rest>(?:[ \t]*\([^)]*\))?:.*)$"
)
_ATTRIBUTES_SECTION = re.compile(r"^(?P<indent>[ \t]*)Attributes:[ \t]*$")
_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const|ref):"
    r"`(?P<text>[^`]+)`(?!`)"
)


def _role_parts(match: re.Match[str]) -> tuple[str, str]:
    """The role's target and the text Sphinx would show for it."""
    text = match.group("text").strip()
    titled = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>", text, flags=re.DOTALL)
    if titled:
        return re.sub(r"\s+", "", titled.group("target")).lstrip("~"), titled.group("title")
    text = re.sub(r"\s+", "", text)  # a target wrapped over two lines is still one name
    if text.startswith("~"):
        return text[1:], text[1:].rsplit(".", 1)[-1]
    return text, text.lstrip(".")


def _section_attributes(docstring: str) -> set[str]:
    """The names the ``Attributes:`` sections of ``docstring`` describe."""
    names: set[str] = set()
    lines = docstring.split("\n")
    for i, line in enumerate(lines):
        if (header := _ATTRIBUTES_SECTION.match(line)) is None:
            continue
        items = []
        for item in lines[i + 1 :]:
            if item.strip() and _indent(item) <= len(header.group("indent")):
                break
            items.append(item)
        item_indent = min((_indent(item) for item in items if item.strip()), default=0)
        for item in items:
            entry = re.match(r"([\w, ]+?)(?:[ \t]*\([^)]*\))?:", item.strip())
            if entry and _indent(item) == item_indent:
                names.update(name.strip() for name in entry.group(1).split(","))
    return names


def _entry(obj: griffe.Object) -> str:
    """The path of the reference entry that shows ``obj``: its own, or its class's for an
    attribute with no docstring that the class's ``Attributes:`` section describes."""
    parent = obj.parent
    if not obj.is_attribute or obj.docstring is not None or parent is None or not parent.is_class:
        return obj.path
    docstring = parent.docstring.value if parent.docstring is not None else ""
    return parent.path if obj.name in _section_attributes(docstring) else obj.path


def _role_markup(match: re.Match[str], resolve: Callable[[str], str | None] | None) -> str:
    target, shown = _role_parts(match)
    path = resolve(target.rstrip("()")) if resolve is not None else None
    if path is None:
        return f"`{shown}`"
    return f'<autoref identifier="{path}" optional>`{shown}`</autoref>'


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _split_grouped_parameters(text: str) -> str:
    """One entry per name for every ``a, b: description`` item of a parameter section."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = _PARAM_SECTION.match(lines[i])
        out.append(lines[i])
        i += 1
        if header is None:
            continue
        section_indent = len(header.group("indent"))
        item_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            if line.strip() and _indent(line) <= section_indent:
                break
            if item_indent is None and line.strip():
                item_indent = _indent(line)
            grouped = _GROUPED_ITEM.match(line.strip()) if line.strip() else None
            if grouped is None or _indent(line) != item_indent:
                out.append(line)
                i += 1
                continue
            end = i + 1
            while end < len(lines) and (
                not lines[end].strip() or _indent(lines[end]) > item_indent
            ):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():
                end -= 1
            body = lines[i + 1 : end]
            for name in grouped.group("names").split(","):
                out.append(" " * item_indent + name.strip() + grouped.group("rest"))
                out.extend(body)
            i = end
    return "\n".join(out)


def translate(docstring: str, resolve: Callable[[str], str | None] | None = None) -> str:
    """The docstring with ``Example:`` headers, literal-block markers, grouped parameters and
    Sphinx roles translated (see the module docstring).

    Args:
        docstring: The docstring's text.
        resolve: Gives a role target's full path in the API reference, or None when it has
            none; without it every role becomes inline code.

    Example:
        >>> translate("See :class:`~a.b.Batch` and :func:`run`.\\n\\nExample:\\n    >>> 1")
        'See `Batch` and `run`.\\n\\nExamples:\\n    >>> 1'
        >>> translate(":func:`run`", {"run": "pkg.mod.run"}.get)
        '<autoref identifier="pkg.mod.run" optional>`run`</autoref>'
    """
    text = _EXAMPLE_HEADER.sub(r"\1Examples:", docstring)
    text = _LITERAL_TEXT.sub(":", _LITERAL_WORD.sub(r"\1**\2**", text))
    text = _split_grouped_parameters(text)
    return _ROLE.sub(lambda match: _role_markup(match, resolve), text)


def resolver(
    obj: griffe.Object, package: griffe.Module, paths: Sequence[str] = ()
) -> Callable[[str], str | None]:
    """Resolves role targets written in ``obj``'s docstring to paths of objects of ``package``.

    A target is tried as a name in ``obj``'s scope (its members, its parents', the module's
    imports), as a member its class inherits, relative to ``obj``'s module when it starts with ``.``, as a full path, and last
    as the end of exactly one of ``paths`` (Sphinx's search for an unqualified name); aliases
    (re-exports, imports) lead to the object's own path, the one its reference entry is
    anchored at (its class's, for an attribute only the class's ``Attributes:`` describes).
    """

    def find(path: str) -> str | None:
        parts = path.split(".")
        if parts[0] != package.name:
            return None
        try:
            found: griffe.Object | griffe.Alias = package
            for part in parts[1:]:  # inherited members included
                found = found.all_members[part] if found.is_class else found.members[part]
            return _entry(found.final_target if found.is_alias else found)
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):  # stays code
            return None

    def resolve(target: str) -> str | None:
        module = obj.module
        if target.startswith("."):
            bases = [module.path, *([module.parent.path] if module.parent else [])]
            candidates = [base + target for base in bases]
        else:
            head, _, rest = target.partition(".")
            try:
                scoped = obj.resolve(head)
                candidates = [f"{scoped}.{rest}" if rest else scoped, target]
            except griffe.NameResolutionError:  # not a name of this scope: a full path?
                candidates = [target]
            owner = obj if obj.is_class else obj.parent
            if owner is not None and owner.is_class:  # an inherited member of the class
                candidates.append(f"{owner.path}.{target}")
        for candidate in candidates:
            if (found := find(candidate)) is not None:
                return found
        ends = [path for path in paths if path.endswith("." + target.lstrip("."))]
        return ends[0] if len(ends) == 1 else None

    return resolve


def _objects(obj: griffe.Object) -> list[griffe.Object]:
    """``obj`` and every object defined under it (aliases left out)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_objects(member))
    return found


def role_targets(package: griffe.Module) -> list[tuple[griffe.Object, str, str | None]]:
    """Every role in the docstrings of ``package``: the object whose docstring holds it, the
    role as written, and the path of the reference entry it links to (None: it stays code)."""
    objects = _objects(package)
    paths = [obj.path for obj in objects]
    return [
        (obj, match.group(0), resolver(obj, package, paths)(_role_parts(match)[0].rstrip("()")))
        for obj in objects
        if obj.docstring is not None
        for match in _ROLE.finditer(obj.docstring.value)
    ]


class GoogleDocstrings(griffe.Extension):
    """Apply :func:`translate` to every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        objects = _objects(pkg)
        paths = [obj.path for obj in objects]
        for obj in objects:
            if obj.docstring is not None:
                resolve = resolver(obj, pkg, paths)
                obj.docstring.value = translate(obj.docstring.value, resolve)
