"""Unit tests for run_validation's TAP judge, on output shapes the runtime-tools files really print.

These run everywhere (no suite, no root): they pin down that diagnostic-only failures, missing
plans and multi-stream files are not mistaken for passes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_validation as rv  # noqa: E402

STATE_OK = """TAP version 13
ok 1 - state MUST generate an error if it is not provided the ID of a container
Refer to: https://github.com/opencontainers/runtime-spec/blob/v1.1.0/runtime.md#query-state
  ---
  {
    "error": "exit status 1",
    "reference": "https://github.com/opencontainers/runtime-spec/blob/v1.1.0/runtime.md#query-state"
  }
  ...
ok 2 - state MUST return the state of a container as specified in the State section
  ---
  {
    "reference": "x"
  }
  ...
1..2
"""

POSTSTART_FAIL = """TAP version 13
  ---
  {
    "error": "The post-start hooks MUST be called before the `start` operation returns\\nRefer to: x"
  }
  ...
1..0
"""

HOOKS_STDIN_FAIL = """TAP version 13
not ok 1 - the state of the container MUST be passed to "prestart" hook over stdin
  ---
  {
    "error": "1 error occurred:\\n\\t* wrong status \\"creating\\" in the stdin of prestart hook",
    "reference": "x"
  }
  ...
ok 2 - the state of the container MUST be passed to "poststart" hook over stdin
ok 3 - the state of the container MUST be passed to "poststop" hook over stdin
1..3
"""

TWO_STREAMS = """TAP version 13
ok 1 - a
ok 2 - b
1..2
TAP version 13
ok 1 - c
1..1
"""


def test_multiline_description_keeps_yaml_attached() -> None:
    res = rv.judge("state", STATE_OK, "", 0)
    assert res.passed, res.failures
    assert (res.ok, res.total) == (2, 2)


def test_orphan_yaml_error_is_a_failure() -> None:
    res = rv.judge("poststart", POSTSTART_FAIL, "", 0)
    assert not res.passed
    assert "post-start hooks MUST be called" in res.reason


def test_empty_plan_without_diagnostic_passes() -> None:
    res = rv.judge("prestart_fail", "TAP version 13\n1..0\n", "", 0)
    assert res.passed
    assert (res.ok, res.total) == (0, 0)


def test_not_ok_reports_yaml_error() -> None:
    res = rv.judge("hooks_stdin", HOOKS_STDIN_FAIL, "", 0)
    assert not res.passed
    assert res.reason.startswith('not ok 1 - the state of the container MUST be passed to "prestart"')
    assert "creating" in res.reason
    assert (res.ok, res.total) == (2, 3)


def test_second_yaml_after_test_is_orphan() -> None:
    out = STATE_OK.replace("1..2\n", '  ---\n  {\n    "error": "bad state JSON"\n  }\n  ...\n1..2\n')
    res = rv.judge("state", out, "", 0)
    assert not res.passed
    assert res.reason == "diagnostic: bad state JSON"


def test_several_tap_streams() -> None:
    res = rv.judge("linux_cgroups_cpus", TWO_STREAMS, "", 0)
    assert res.passed, res.failures
    assert (res.ok, res.total) == (3, 3)


def test_plan_mismatch_and_missing_plan() -> None:
    assert not rv.judge("x", "TAP version 13\nok 1 - a\n1..2\n", "", 0).passed
    res = rv.judge("default", "TAP version 13\nok 1 - a\n", "", 0)
    assert not res.passed
    assert "no TAP plan" in res.reason


def test_not_ok_reports_first_comment() -> None:
    out = "TAP version 13\nok 1 - find devices\nnot ok 2 - devices c 10:229 rwm is set correctly\n"
    out += "# expect: c 10:229 rwm, actual: b 0:0 m\n"
    out += "# The runtime MUST apply entries in the listed order\n1..2\n"
    res = rv.judge("linux_cgroups_devices", out, "", 0)
    assert res.reason == ("not ok 2 - devices c 10:229 rwm is set correctly # expect: c 10:229 rwm, actual: b 0:0 m")


def test_empty_description_with_trailing_space() -> None:
    res = rv.judge("linux_seccomp", "TAP version 13\nok 1 - \nok 2 - seccomp action is added correctly\n1..2\n", "", 0)
    assert res.passed, res.failures


def test_inner_runtimetest_failure_is_quoted() -> None:
    inner = 'TAP version 13\nok 1 - a\nnot ok 297 - shared root propagation exposes "/t/m/e"\n'
    block = json.dumps({"stderr": "", "stdout": inner}, indent=2).replace("\n", "\n  ")
    out = f"TAP version 13\n  ---\n  {block}\n  ...\nnot ok 1 - check root propagation: shared\n1..1\n"
    res = rv.judge("linux_rootfs_propagation", out, "", 0)
    assert res.reason == (
        'not ok 1 - check root propagation: shared (inside: not ok 297 - shared root propagation exposes "/t/m/e")'
    )


def test_fatal_exit_reports_stderr() -> None:
    err = "failed to create the container\nocirun: create: boom\nexit status 1\n"
    res = rv.judge("default", "", err, 1)
    assert not res.passed
    assert res.reason.startswith("exit status 1: failed to create the container | ocirun: create: boom")


@pytest.mark.parametrize("name", sorted(rv.EXPECT_ERROR_FILES))
def test_expect_error_files_pass_on_silent_exit_0(name: str) -> None:
    stderr = "failed to create the container\nocirun: create: unknown rlimit\n"
    assert rv.judge(name, "", stderr, 0).passed
    assert not rv.judge("default", "", "", 0).passed


def test_skips_count_as_ok_and_timeout_fails() -> None:
    res = rv.judge("x", "TAP version 13\nok 1 # SKIP not set\n1..1\n", "", 0)
    assert res.passed and res.skipped == 1
    res = rv.judge("x", "TAP version 13\nok 1 - a\n", "", None, timed_out=True)
    assert not res.passed and res.reason == "timed out"


def test_missing_suite_skips(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RUNTIME_TOOLS_DIR", raising=False)
    assert rv.main([]) == 0
    assert "SKIP" in capsys.readouterr().out
    monkeypatch.setenv("RUNTIME_TOOLS_DIR", "/nonexistent/runtime-tools")
    assert rv.main(["--only", "create"]) == 0
    assert "no validation/ directory" in capsys.readouterr().out
