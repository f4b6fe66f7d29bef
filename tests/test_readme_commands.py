"""The README's "Command line" block runs as typed: every `fieldsync …` line in its `sh` blocks is
run, in order and from the repository root, against a fresh database of each kind, and succeeds.
A command renamed, an option dropped or an example file missing fails here, not for a new user."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from server.cli import main
from server.config import PROJECT_ROOT
from tests.conftest import PASSWORD

README = PROJECT_ROOT / "README.md"
# Commands that do not end on their own: only their arguments are checked.
LONG_RUNNING = {("serve",)}


def _section(markdown: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def readme_commands() -> list[list[str]]:
    """The argument lists of the `fieldsync` lines of the README's Command line `sh` blocks."""
    section = _section(README.read_text(encoding="utf-8"), "Command line")
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                assert words[0] == "fieldsync", f"not a fieldsync command: {line}"
                commands.append(words[1:])
    return commands


def _parse_only(args: list[str]) -> None:
    """Parses `args` down to the command without running it (click raises on a bad option)."""
    ctx = click.Context(main, info_name="fieldsync")
    command: click.Command = main
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command {name}"
        ctx, command = click.Context(sub, info_name=name, parent=ctx), sub
    command.make_context(ctx.info_name, list(args), parent=ctx.parent)


def test_the_readme_lists_each_command_on_a_line_of_its_own():
    commands = readme_commands()
    assert len(commands) >= 10
    for args in commands:
        assert "|" not in args and not any(arg.startswith("[") for arg in args), args


def test_every_readme_command_line_runs_as_typed(cli, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # "from the repository root"
    ran = []
    for args in readme_commands():
        if tuple(args[:1]) in LONG_RUNNING:
            _parse_only(args)
            continue
        stdin = f"{PASSWORD}\n" if "--password-stdin" in args else None
        result = cli(*args, input=stdin)
        assert result.exit_code == 0, f"fieldsync {shlex.join(args)}:\n{result.output}"
        ran.append(args[:2])
    # The walk-through ends with the account it made, enabled again, and the demo county loaded.
    listing = cli("users", "list").output
    assert re.search(r"^wang\s+collector\s+yes\s+990102001001$", listing, re.M), listing
    assert ["demo", "--if-empty"] in ran
    assert ["regions", "import"] in ran


@pytest.mark.parametrize(
    "args",
    [["serve", "--host", "127.0.0.1", "--port", "5000"]],
)
def test_parse_only_accepts_the_serve_line_and_would_catch_a_bad_option(args):
    _parse_only(args)
    with pytest.raises(click.NoSuchOption):
        _parse_only([*args, "--no-such-option"])
