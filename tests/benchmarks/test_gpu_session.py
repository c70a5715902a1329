"""``benchmarks/gpu_session.sh`` checked on the CPU: every command it would run on a GPU parses.

A lent GPU gives one call of a few minutes, and a misspelt flag in one of the script's
``python3 -m benchmarks.X`` lines would lose that part of it. These tests read the script,
expand its arrays, ``$OUT`` and the ``step`` function's arguments as bash would, and parse each
benchmark command with its module's own parser (``parse_args`` where the module checks more
than argparse does, else ``build_parser()``) without running anything; ``benchmarks.run``
brings the commands of its suite along. They also check the pytest options, files and test
names the script gives, and that the parts its help and its "unknown part" message name are the
parts its ``case`` runs. Each check is shown to fail on a copy of the script with one mistake.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"
OUT = "/tmp/gpu-session-out"  # $OUT: any folder
REDIRECT = re.compile(r"(?<=\s)\d*(?:>>|>&|&>|>|<)\s*\S+")
ARRAY_SET = re.compile(r"^\s*(\w+)=\((.*)\)\s*$")
ARRAY_USE = re.compile(r"\$\{(\w+)\[@\]\}")
SCALAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
CASE_LABEL = re.compile(r"^\s*([\w|*-]+)\)(?=\s|$)")


@dataclass(frozen=True)
class Command:
    """One ``python3 -m MODULE ARGV...`` the script runs; ``where`` names its line."""

    where: str
    module: str
    argv: tuple[str, ...]


def _strip_comment(line: str) -> str:
    """The line without a ``#`` comment (one that starts a word outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with continuations joined and comments dropped."""
    lines: list[tuple[int, str]] = []
    start, buffer = 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        start = start or number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        joined = _strip_comment(buffer + line).rstrip()
        if joined.strip():
            lines.append((start, joined))
        start, buffer = 0, ""
    return lines


def simple_commands(line: str) -> list[list[str]]:
    """The words of each simple command on a line, split at ``|``, ``;``, ``(`` and the like."""
    lexer = shlex.shlex(REDIRECT.sub(" ", line), posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    commands: list[list[str]] = [[]]
    for word in lexer:
        if word and set(word) <= set("();<>|&"):
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def _scalar(word: str, scalars: dict[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in scalars:
            raise AssertionError(f"{where}: ${name} has no value in this test; give it one")
        return scalars[name]

    expanded = SCALAR.sub(value, word)
    if "$" in expanded:  # an array this test did not see assigned, or another expansion
        raise AssertionError(f"{where}: {word!r} is not expanded by this test; teach it how")
    return expanded


def _commands(
    number: int,
    line: str,
    state: tuple[dict[str, list[str]], dict[str, str], list[str]],
    functions: dict[str, list[tuple[int, str]]],
) -> list[Command]:
    arrays, scalars, positional = state
    where = f"{SCRIPT.name}:{number}"
    if match := ARRAY_SET.match(line):
        arrays[match.group(1)] = shlex.split(match.group(2))
        return []
    found: list[Command] = []
    for words in simple_commands(CASE_LABEL.sub("", line)):
        expanded: list[str] = []
        for word in words:
            if word == "$@":
                expanded += positional
            elif (match := ARRAY_USE.fullmatch(word)) and match.group(1) in arrays:
                expanded += arrays[match.group(1)]
            else:
                expanded.append(word)
        if expanded[0] in functions:  # a call: run the body with these arguments
            args = [_scalar(w, scalars, where) for w in expanded[1:]]
            body = _call(functions[expanded[0]], arrays, dict(scalars), args, functions)
            found += [Command(f"{c.where} from :{number}", c.module, c.argv) for c in body]
        if "python3" in expanded:
            rest = expanded[expanded.index("python3") + 1 :]
            if rest[:1] == ["-m"] and rest[1] != "pip":
                module, *argv = (_scalar(w, scalars, where) for w in rest[1:])
                found.append(Command(where, module, tuple(argv)))
    return found


def _call(
    body: list[tuple[int, str]],
    arrays: dict[str, list[str]],
    scalars: dict[str, str],
    positional: list[str],
    functions: dict[str, list[tuple[int, str]]],
) -> list[Command]:
    """The commands of a function body called with ``positional`` (``local x=$1``, ``shift``)."""
    found: list[Command] = []
    for number, line in body:
        words = line.split()
        if words[0] == "local":
            for word in words[1:]:
                name, _, value = word.partition("=")
                if re.fullmatch(r"\$\d", value):
                    scalars[name] = positional[int(value[1]) - 1]
        elif words[0] == "shift":
            positional = positional[int(words[1]) if len(words) > 1 else 1 :]
        else:
            found += _commands(number, line, (arrays, scalars, positional), functions)
    return found


def script_commands(text: str) -> list[Command]:
    """Every ``python3 -m`` command of the script but pip's, expanded as bash would."""
    functions: dict[str, list[tuple[int, str]]] = {}
    arrays: dict[str, list[str]] = {}
    found: list[Command] = []
    lines = iter(logical_lines(text))
    for number, line in lines:
        if match := re.match(r"\s*(\w+)\(\)\s*\{\s*$", line):
            body = functions.setdefault(match.group(1), [])
            for inner in lines:
                if inner[1].strip() == "}":
                    break
                body.append(inner)
        else:
            found += _commands(number, line, (arrays, {"OUT": OUT}, []), functions)
    return found


def with_suite(commands: list[Command]) -> list[Command]:
    """The commands and, after ``benchmarks.run``, the suite's own commands it would run."""
    from benchmarks import run

    out = []
    for command in commands:
        out.append(command)
        if command.module == "benchmarks.run" and parse_error(command) is None:
            args = run.build_parser().parse_args(list(command.argv))
            for name, argv, *_ in run.suite(args.device, args.quick):
                if not args.only or name in args.only:
                    where = f"{command.where} suite '{name}'"
                    out.append(Command(where, argv[0], tuple(argv[1:])))
    return out


def parse_error(command: Command) -> str | None:
    """None if the module's parser takes the arguments, else what it said."""
    module = importlib.import_module(command.module)
    parse = getattr(module, "parse_args", None) or module.build_parser().parse_args
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            parse(list(command.argv))
    except SystemExit as exc:
        text = said.getvalue().strip().splitlines()
        return f"{command.where}: {text[-1] if text else exc}"
    return None


def pytest_problems(command: Command, config: pytest.Config) -> list[str]:
    """What would stop pytest: an unknown option or plugin, a missing file or test name.

    The options are read by the running pytest's own parser, with every plugin's options.
    """
    options, unknown = config._parser.parse_known_and_unknown_args(list(command.argv))
    problems = [f"{command.where}: pytest has no option {unknown}"] if unknown else []
    manager = config.pluginmanager
    for plugin in options.plugins or ():  # -p NAME loads a plugin, -p no:NAME blocks one
        name = plugin.removeprefix("no:")
        known = manager.has_plugin(name) or manager.is_blocked(name)
        if not (known or (plugin == name and importlib.util.find_spec(name) is not None)):
            problems.append(f"{command.where}: -p {plugin}: no plugin is called {name!r}")
    for target in options.file_or_dir:
        path, *names = target.split("::")
        file = ROOT / path
        if not file.exists():
            problems.append(f"{command.where}: {path} does not exist")
        elif file.is_file() and not re.fullmatch(r"test_.*\.py|.*_test\.py", file.name):
            problems.append(f"{command.where}: pytest collects no tests from {path}")
        elif names and not _defines(file, names):
            problems.append(f"{command.where}: {path} has no test {'::'.join(names)}")
    return problems


def _defines(file: Path, names: list[str]) -> bool:
    """Whether ``file`` defines ``names[0]``, and ``names[1]`` inside it, and so on."""
    body = ast.parse(file.read_text()).body
    for name in names:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        node = next(
            (n for n in body if isinstance(n, kinds) and n.name == name.split("[")[0]), None
        )
        if node is None:
            return False
        body = node.body
    return True


def part_problems(text: str) -> list[str]:
    """Where the parts of the help, the "unknown part" message and the ``case`` disagree."""
    usage = re.search(r"bash benchmarks/gpu_session\.sh \[(.*?)\]", text)
    message = re.search(r"unknown part '\$part': use (.+?)\"", text)
    if usage is None or message is None:
        return ["the usage line or the 'unknown part' message is gone: keep both"]
    named = {
        "usage line": set(re.split(r"[\s|]+", usage.group(1).strip())) - {"..."},
        "'unknown part' message": set(re.split(r",\s*|\s+or\s+", message.group(1).strip())),
    }
    runs: set[str] = set()  # parts of the case that runs them
    stands_for: dict[str, list[str]] = {}  # all and step: several parts
    for _, line in logical_lines(text):
        match = CASE_LABEL.match(line)
        if match is None or match.group(1) == "*":
            continue
        for label in match.group(1).split("|"):
            if added := re.search(r"parts\+=\((.*?)\)", line):
                stands_for[label] = added.group(1).split()
            else:
                runs.add(label)
    known = runs | set(stands_for)
    problems = []
    for where, parts in named.items():
        if parts - known:
            problems.append(f"the {where} names {sorted(parts - known)}: no case branch runs it")
        if known - parts:
            problems.append(f"the {where} leaves out {sorted(known - parts)}")
    problems += [
        f"'{label}' stands for {sorted(set(parts) - runs)}, which no case branch runs"
        for label, parts in stands_for.items()
        if not set(parts) <= runs
    ]
    described = set(re.findall(r"^#   (\w+) +(?=\S)(?!benchmarks/)", text, flags=re.MULTILINE))
    if not described <= known:
        problems.append(f"the help describes {sorted(described - known)}: no case branch runs it")
    return problems


TEXT = SCRIPT.read_text()
COMMANDS = with_suite(script_commands(TEXT))


def _id(command: Command) -> str:
    where = command.where.replace("'", "").replace(" ", "-")
    return f"{where}-{command.module.removeprefix('benchmarks.')}"


@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_command_parses(command: Command, pytestconfig: pytest.Config) -> None:
    if command.module == "pytest":
        assert pytest_problems(command, pytestconfig) == []
        return
    assert command.module.startswith("benchmarks."), f"{command.where}: check {command.module}"
    module = importlib.import_module(command.module)
    assert callable(getattr(module, "build_parser", None)), f"{command.module}: no build_parser()"
    assert parse_error(command) is None


def test_script_runs_every_benchmark_and_test() -> None:
    """The reading above finds what the script runs (a change there must not hide a command)."""
    written = set(re.findall(r"python3 -m (benchmarks\.\w+)", TEXT))
    assert {"benchmarks.bench_heads", "benchmarks.run"} <= written
    assert written <= {c.module for c in COMMANDS}
    pytest_runs = [c for c in COMMANDS if c.module == "pytest"]
    assert len(pytest_runs) == TEXT.count("python3 -m pytest") > 0


def test_parts_agree() -> None:
    assert part_problems(TEXT) == []


def _with_mistake(mistake: tuple[str, str]) -> str:
    """The script's text with ``old`` replaced by ``new`` once."""
    old, new = mistake
    assert old in TEXT, f"update this test: the script no longer has {old!r}"
    return TEXT.replace(old, new, 1)


MISTAKES = {
    "misspelt flag": ("--compare-unsplit --profile", "--compare-unsplt --profile"),
    "flag in step()": ('--name "train_step-b$batch"', '--nmae "train_step-b$batch"'),
    "step name": ("ours_amp_bf16_reduce_overhead)", "ours_amp_bf16_reduce_overhed)"),
    "choice": ("--variants fp32 fp32_b1 bf16 fp16", "--variants fp32 fp32_b1 bf16 fp61"),
    "choice in loop": ("--k 2 4 --compile off", "--k 2 4 --compile of"),
    "nargs": ("--patch 64 128 128", "--patch 64 128"),
    "type": ("--repeats 10", "--repeats ten"),
    "profiled variant": ("attention_query/unsplit --out", "attention_qery/unsplit --out"),
    "heads variant": ("--only attention attention_query", "--only attention attention_qery"),
}


@pytest.mark.parametrize("mistake", MISTAKES.values(), ids=MISTAKES.keys())
def test_a_mistake_in_a_benchmark_command_fails(mistake: tuple[str, str]) -> None:
    commands = with_suite(script_commands(_with_mistake(mistake)))
    errors = [e for c in commands if c.module != "pytest" and (e := parse_error(c))]
    assert errors  # the unchanged script parses: test_command_parses


PYTEST_MISTAKES = {
    "file": ("tests/training/test_cuda.py", "tests/training/test_cud.py"),
    "test name": ("::test_pin_memory_keeps_values", "::test_pin_memory_keep_values"),
    "option": ("--durations=8", "--durashuns=8"),
    "plugin": ("-p no:cacheprovider", "-p no:cache_provider"),
}


@pytest.mark.parametrize("mistake", PYTEST_MISTAKES.values(), ids=PYTEST_MISTAKES.keys())
def test_a_mistake_in_a_pytest_command_fails(
    mistake: tuple[str, str], pytestconfig: pytest.Config
) -> None:
    commands = script_commands(_with_mistake(mistake))
    problems = [
        p for c in commands if c.module == "pytest" for p in pytest_problems(c, pytestconfig)
    ]
    assert len(problems) == 1, problems


PART_MISTAKES = {
    "branch renamed": ("        predict)", "        prediction)"),
    "part left out of the message": ("suite, predict, heads or all", "suite, heads or all"),
    "part left out of the usage": ("| predict | heads", "| heads"),
    "help names no branch": ("#   loop24 the same", "#   loop25 the same"),
    "step stands for no branch": ("step) parts+=(b2 b8)", "step) parts+=(b2 b9)"),
}


@pytest.mark.parametrize("mistake", PART_MISTAKES.values(), ids=PART_MISTAKES.keys())
def test_a_mistake_in_the_parts_fails(mistake: tuple[str, str]) -> None:
    assert part_problems(_with_mistake(mistake))
