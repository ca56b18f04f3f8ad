"""A one-shot program's Landlock domain, entered inside its bubblewrap sandbox.

bubblewrap lays the sandbox's mounts, which a process in a Landlock domain that handles file
access may not do, so the domain is entered after them: bubblewrap runs this module in place
of the program, `python -I -m qrt_executor.confine RULES -- COMMAND...`, where RULES is a JSON
list of `[path, access, directory]` (`landlock.Rule`'s fields, `encode` makes it). It restricts
itself (`landlock.restrict`) and executes COMMAND, which inherits the domain. Where the kernel
refuses the domain it exits with `REFUSED` and the reason on stderr: the program does not run
without its walls. It imports nothing but `landlock` (ctypes, os), so it costs a one-shot
execution one small interpreter start.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence

from . import landlock

REFUSED = 126
"""The exit code when the domain cannot be entered or COMMAND cannot be executed (a shell's
"found but cannot run")."""


def encode(rules: Iterable[landlock.Rule]) -> str:
    """`rules` as this module's RULES argument."""
    return json.dumps([[rule.path, rule.access, rule.directory] for rule in rules])


def decode(text: str) -> list[landlock.Rule]:
    """The rules of a RULES argument; raises ValueError when it is not one."""
    found = json.loads(text)
    if not isinstance(found, list):
        raise ValueError("RULES must be a JSON list")
    rules = []
    for item in found:
        match item:
            case [str(path), int(access), bool(directory)]:
                rules.append(landlock.Rule(path, access, directory))
            case _:
                raise ValueError(f"not a rule: {item!r}")
    return rules


def command_line(python: str, rules: Iterable[landlock.Rule], command: Sequence[str]) -> list[str]:
    """The command that runs `command` inside the domain of `rules`, with interpreter
    `python` (one that imports qrt_executor: the executor's own)."""
    return [python, "-I", "-m", "qrt_executor.confine", encode(rules), "--", *command]


def main(argv: Sequence[str]) -> int:
    """Enter the domain of `argv`'s RULES, then execute its COMMAND; returns only on failure."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m qrt_executor.confine RULES -- COMMAND...", file=sys.stderr)
        return 2
    try:
        rules = decode(argv[0])
        if not landlock.restrict(rules):
            raise OSError("this kernel has no Landlock to enter")
    except (OSError, ValueError) as exc:
        print(f"[qrt] the program's file wall cannot be built: {exc}", file=sys.stderr)
        return REFUSED
    command = list(argv[2:])
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"[qrt] cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
    return REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
