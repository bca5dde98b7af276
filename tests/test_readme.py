"""The README's commands stay runnable: every ``chemprune`` / ``reaction-nmt`` line in its code
blocks names an existing subcommand, and every option it uses is one that subcommand's argparse
parser accepts. The commands are parsed against the real parsers, never run."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PROGRAMS = ("chemprune", "reaction-nmt")
_NUMBER = re.compile(r"-\d+(\.\d*)?([eE][-+]?\d+)?")


def _strip_comment(line: str) -> str:
    """``line`` without a shell comment: an unquoted ``#`` at the start or after whitespace
    (``CC#N`` is a SMILES, not a comment)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each command line in the fenced code blocks of ``text`` that
    starts with ``chemprune `` or ``reaction-nmt `` (optionally ``.venv/bin/``), with backslash
    continuations joined and trailing comments removed."""
    found: list[tuple[int, str]] = []
    in_block = False
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith("```"):
            in_block, pending = not in_block, None
            continue
        if not in_block:
            continue
        if pending is not None:
            start, command = pending[0], pending[1] + " " + raw.strip()
        else:
            start, command = number, raw.strip()
        if command.endswith("\\"):
            pending = (start, command[:-1].rstrip())
            continue
        pending = None
        command = _strip_comment(command).strip()
        bare = command.removeprefix(".venv/bin/")
        if any(bare.startswith(program + " ") for program in PROGRAMS):
            found.append((start, bare))
    return found


def _parser(program: str) -> argparse.ArgumentParser:
    if program == "chemprune":
        from chemprune.cli import build_parser

        return build_parser()
    from reaction_nmt.cli import build_parser

    return build_parser()


def _pass_through(program: str) -> set[str]:
    """Subcommands that hand single-dash ``-option value`` pairs on to OpenNMT-py."""
    if program != "reaction-nmt":
        return set()
    from reaction_nmt.cli import _PASS_THROUGH

    return set(_PASS_THROUGH)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _values_taken(action: argparse.Action, following: list[str]) -> int:
    """How many of the ``following`` tokens are this option's values."""
    nargs = action.nargs
    if nargs == 0:
        return 0
    if nargs is None:
        return 1 if following else 0
    if isinstance(nargs, int):
        return min(nargs, len(following))
    taken = 0
    for token in following:
        if token.startswith("-") and not _NUMBER.fullmatch(token):
            break
        taken += 1
        if nargs == "?":
            break
    return taken


def command_problems(command: str) -> list[str]:
    """What in ``command`` (a README command line) its parser would not accept: an unknown
    program, subcommand or option, or a value outside an option's choices."""
    tokens = shlex.split(command)
    program = tokens[0]
    if program not in PROGRAMS:
        return [f"unknown program {program!r}"]
    parser = _parser(program)
    pass_through = _pass_through(program)
    path = [program]
    problems: list[str] = []
    i = 1
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token.startswith("-") and token != "-" and not _NUMBER.fullmatch(token):
            name = token.split("=", 1)[0]
            action = parser._option_string_actions.get(name)
            if action is None:
                if len(path) > 1 and path[1] in pass_through and not token.startswith("--"):
                    # an OpenNMT-py option: its value, if any, follows
                    if i < len(tokens) and not tokens[i].startswith("-"):
                        i += 1
                    continue
                problems.append(f"'{' '.join(path)}' has no option {name}")
                continue
            if "=" in token:
                values = [token.split("=", 1)[1]]
            else:
                n = _values_taken(action, tokens[i:])
                values, i = tokens[i : i + n], i + n
            if action.choices is not None and action.type is None:
                for value in values:
                    if value not in action.choices:
                        problems.append(
                            f"'{' '.join(path)} {name}' does not accept {value!r} "
                            f"(choices: {', '.join(map(str, action.choices))})"
                        )
            continue
        sub = _subparsers(parser)
        if sub is not None:  # this parser's subcommand, not chosen yet
            if token not in sub.choices:
                problems.append(
                    f"'{' '.join(path)}' has no subcommand {token!r} "
                    f"(choices: {', '.join(sub.choices)})"
                )
                return problems
            parser = sub.choices[token]
            path.append(token)
        # otherwise a positional argument (a SMILES, a file): nothing to check
    if _subparsers(parser) is not None:
        problems.append(f"'{' '.join(path)}' needs a subcommand")
    return problems


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_has_commands_of_both_programs():
    programs = {command.split()[0] for _, command in COMMANDS}
    assert programs == set(PROGRAMS), programs


@pytest.mark.parametrize(("line", "command"), COMMANDS, ids=[f"L{n}" for n, _ in COMMANDS])
def test_readme_command_is_accepted_by_its_parser(line, command):
    problems = command_problems(command)
    assert not problems, f"README.md:{line}: {command}\n  " + "\n  ".join(problems)


def test_a_bad_option_or_subcommand_is_reported_with_its_readme_line():
    text = "\n".join(
        [
            "# a README",
            "```",
            ".venv/bin/chemprune train --target gap \\",
            "    --no-such-option 3 --out runs/x   # trailing comment --not-an-option",
            "chemprune predcit --model M.pt",
            "reaction-nmt train --data d --out r -train_steps 10 --bogus",
            "chemprune generate sample --model G.pt -n 10 --smiles-out m.smi",
            ".venv/bin/reaction-nmt predict --model m.pt 'CC#N' --n-best 3  # CC#N is not a comment",
            "chemprune export --model M --format onnx --out m.onnx",
            "```",
            "chemprune train --outside-a-code-block",
        ]
    )
    commands = readme_commands(text)
    assert [line for line, _ in commands] == [3, 5, 6, 7, 8, 9]
    assert commands[0][1].endswith("--out runs/x")
    assert commands[4][1].endswith("--n-best 3")
    found = {line: command_problems(command) for line, command in commands}
    assert found[3] == ["'chemprune train' has no option --no-such-option"]
    assert len(found[5]) == 1 and "has no subcommand 'predcit'" in found[5][0]
    assert found[6] == ["'reaction-nmt train' has no option --bogus"]
    assert found[7] == [] and found[8] == []
    assert len(found[9]) == 1 and "does not accept 'onnx'" in found[9][0]
