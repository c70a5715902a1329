"""The newcomer's pages run as written, and how long each step takes.

``docs/getting-started.md`` and ``docs/how-to/own-data.md`` are run block by block, in page
order, in one empty folder: every ```` ```python ```` block in one namespace, every command
line of a ```` ```bash ```` block as a process (``multitask-unet`` is this Python's
``python -m multitask_unet.cli``), and a block preceded by ``<!-- file: NAME -->`` is saved as
``NAME`` (a ``--8<-- "PATH"`` line in it stands for the file at PATH, as MkDocs includes it).
A block preceded by ``<!-- skip-test -->`` is left out, as in the docs' Python test.
``tests/docs/test_newcomer_pages.py`` runs the pages with this module; run it directly to
record the time of every step:

    python -m benchmarks.bench_newcomer --out benchmarks/results

which writes ``results/newcomer-<device>.json`` (``cpu`` here; ``cuda`` where a GPU is visible,
since the commands' ``--device auto`` then uses it), rendered on the getting-started page.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("docs/getting-started.md", "docs/how-to/own-data.md")
SKIP_MARKER = "<!-- skip-test -->"
_FILE = re.compile(r"^<!-- file: (?P<name>[\w.\-/]+) -->$")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")
_SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page and the marker line before it."""

    page: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skipped: bool  # preceded by SKIP_MARKER
    file_name: str | None = None  # preceded by <!-- file: NAME -->


@dataclass(frozen=True)
class StepResult:
    """One step of a page run: a Python block, a command line or a saved file."""

    page: str
    step: str
    seconds: float
    returncode: int
    output: str = ""


def code_blocks(text: str, page: str = "<page>") -> list[Block]:
    """The fenced code blocks of ``text``, in order, de-indented, with their markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, info = match.group("indent"), match.group("fence"), match.group("info")
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        previous = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        file_match = _FILE.match(previous)
        blocks.append(
            Block(
                page=page,
                line=start + 1,
                language=info.lower(),
                code="\n".join(body) + "\n",
                skipped=previous == SKIP_MARKER,
                file_name=file_match.group("name") if file_match else None,
            )
        )
    return blocks


def page_blocks(page: str | Path) -> list[Block]:
    """The python, bash and file blocks of ``page`` that run, in order (skipped ones left out)."""
    text = (ROOT / page).read_text(encoding="utf-8")
    return [
        b
        for b in code_blocks(text, str(page))
        if not b.skipped and (b.language in ("python", "bash") or b.file_name)
    ]


def _file_text(block: Block) -> str:
    """The text a file block stands for, with MkDocs' ``--8<--`` includes resolved."""
    out = []
    for line in block.code.splitlines():
        match = _SNIPPET.match(line.strip())
        out.append((ROOT / match.group("path")).read_text(encoding="utf-8") if match else line)
    return "\n".join(x.rstrip("\n") for x in out) + "\n"


def _commands(code: str) -> list[str]:
    """Command lines of a bash block (comments and blank lines dropped, ``\\`` joined)."""
    joined = code.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def _argv(command: str) -> list[str]:
    words = shlex.split(command, comments=True)
    if words and words[0] == "multitask-unet":
        return [sys.executable, "-m", "multitask_unet.cli", *words[1:]]
    return words


def run_page(page: str, workdir: Path, *, timeout: float = 1800) -> list[StepResult]:
    """Run ``page``'s blocks in ``workdir``; stops at the first failing step (its result last)."""
    results: list[StepResult] = []
    namespace: dict[str, Any] = {"__name__": f"page_{Path(page).stem.replace('-', '_')}"}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    previous = Path.cwd()
    os.chdir(workdir)
    python_blocks = 0
    try:
        for block in page_blocks(page):
            started = time.perf_counter()
            if block.file_name is not None:
                (workdir / block.file_name).write_text(_file_text(block), encoding="utf-8")
                results.append(StepResult(page, f"save {block.file_name}", 0.0, 0))
                continue
            if block.language == "python":
                code = compile(block.code, f"{page}:{block.line}", "exec")
                exec(code, namespace)  # the page's own example code
                took = time.perf_counter() - started
                python_blocks += 1  # counted, not by line: the name survives edits of the text
                results.append(StepResult(page, f"Python block {python_blocks}", took, 0))
                continue
            for command in _commands(block.code):
                started = time.perf_counter()
                done = subprocess.run(
                    _argv(command), cwd=workdir, env=env, capture_output=True, text=True,
                    timeout=timeout, check=False,
                )  # fmt: skip
                took = time.perf_counter() - started
                output = (done.stdout + done.stderr)[-4000:]
                results.append(StepResult(page, command, took, done.returncode, output))
                if done.returncode != 0:
                    return results
    finally:
        os.chdir(previous)
    return results


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.bench_newcomer``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from benchmarks.common import environment, machine, save

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows, ok = [], True
    for page in PAGES:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
            for r in run_page(page, Path(tmp)):
                rows.append({"page": r.page, "step": r.step, "seconds": round(r.seconds, 1)})
                if r.returncode:
                    print(r.output, file=sys.stderr)
                    ok = False
    result = {
        "benchmark": "newcomer pages, run as written",
        "environment": environment(device),
        "machine": machine(device),
        "torch_threads": torch.get_num_threads(),
        "steps": rows,
    }
    if ok:
        print(f"wrote {save('newcomer', result, args.out)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
