"""--help, COMMAND --help and ocirun(8) come from one table that must describe exactly what the parser accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from ocitest import ROOT, ocirun_cmd

from ocirun import cli, helptext


def _keys(table: dict) -> set[str]:
    return {key for key, _ in table.values()}


def test_every_command_and_flag_is_described_and_nothing_else():
    assert set(helptext.COMMANDS) == set(cli.COMMANDS)
    assert set(helptext.FLAGS) == set(cli.COMMANDS)
    for cmd, (table, *_rest) in cli.COMMANDS.items():
        assert set(helptext.FLAGS[cmd]) == _keys(table), cmd
    assert set(helptext.GLOBAL) == _keys(cli.GLOBAL)


def test_help_output_lists_commands_and_flags():
    out = subprocess.run([*ocirun_cmd(), "--help"], capture_output=True, text=True, check=True).stdout
    assert out == helptext.usage(cli.GLOBAL, cli.COMMANDS)
    for cmd in cli.COMMANDS:
        assert f"\n   {cmd} " in out
    for name in cli.GLOBAL:
        assert ("--" if len(name) > 1 else "-") + name in out, name
    for cmd, (table, *_rest) in cli.COMMANDS.items():
        p = subprocess.run([*ocirun_cmd(), cmd, "--help"], capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout == helptext.command_usage(cmd, table), cmd
        for name in table:
            assert ("--" if len(name) > 1 else "-") + name in p.stdout, (cmd, name)


def test_manpage_renders_without_warnings(tmp_path):
    if not shutil.which("groff"):
        pytest.skip("groff is not installed")
    page = tmp_path / "ocirun.8"
    page.write_text(helptext.manpage(cli.GLOBAL, cli.COMMANDS, "0.0.0", "2026-01-01"))
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    text = subprocess.run(["groff", "-man", "-Tutf8", "-P", "-cbou", str(page)], capture_output=True, text=True,
                          check=True).stdout
    words = " ".join(text.replace("\u2010", "-").split())  # groff justifies lines with extra spaces
    for cmd in cli.COMMANDS:
        assert f"ocirun {cmd}" in words, cmd
    assert "--console-socket" in words


def test_roff_escapes_leading_dots_and_backslashes():
    assert helptext._roff(".x") == "\\&.x"
    assert helptext._roff("a\\b-c") == "a\\eb\\-c"
    assert ROOT  # (the checkout the help comes from)
