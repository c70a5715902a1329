"""MkDocs hook: render every option of a ``multitask-unet`` command from its argparse parser.

A page writes ``<!-- cli: COMMAND -->`` on a line of its own; the hook replaces the line by the
command's usage and a table of its arguments (name, meaning, default), read from
``multitask_unet.cli.build_parser()``. The reference therefore lists exactly the options the
installed command takes; hidden aliases kept for old spellings (help ``SUPPRESS``) are left out.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = ["on_page_markdown", "render_command", "subcommands"]

MARKER = re.compile(r"^<!--\s*cli:\s*(?P<command>[\w-]+)\s*-->[ \t]*$", re.MULTILINE)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name."""
    from multitask_unet.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_command(name: str) -> str:
    """Markdown of one subcommand: its usage and one table row per argument."""
    parsers = subcommands()
    if name not in parsers:
        raise ValueError(f"<!-- cli: {name} -->: no such command; commands: {sorted(parsers)}")
    parser = parsers[name]
    usage = " ".join(parser.format_usage().split())
    rows = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            flags = ", ".join(f"`{o}`" for o in action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or action.dest.upper()
                metavar = " ".join(metavar) if isinstance(metavar, tuple) else metavar
                many = action.nargs in ("+", "*")
                flags += f" `{metavar}`" + (" ..." if many else "")
        else:
            flags = f"`{action.metavar or action.dest}`"
        meaning = (action.help or "").replace("%(default)s", str(action.default))
        if action.choices is not None and not isinstance(action.choices, dict):
            meaning += f" (one of {', '.join(map(str, action.choices))})"
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) else f"`{default}`"
        rows.append(f"| {flags} | {_cell(meaning)} | {shown} |")
    lines = [f"### `multitask-unet {name}`", "", f"`{usage.removeprefix('usage: ')}`", ""]
    lines += ["| argument | meaning | default |", "|---|---|---|", *rows, ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: expand every ``<!-- cli: COMMAND -->`` line."""
    if "<!-- cli:" not in markdown:
        return markdown
    return MARKER.sub(lambda m: render_command(m.group("command")), markdown)
