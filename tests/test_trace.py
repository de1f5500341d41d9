"""--trace / OCIRUN_TRACE: the steps of the runtime and of the container's init, in order, on stderr."""

from __future__ import annotations

import json
import os

import pytest

from ocirun.cli import GLOBAL, Args, _trace_mode, parse

PREFIX = "ocirun trace: "


def text_steps(err: str) -> list[tuple[str, str]]:
    """(who, step) of every text trace line."""
    out = []
    for ln in err.splitlines():
        if ln.startswith(PREFIX):
            f = ln[len(PREFIX):].split()
            # at "ms" (dur "ms" | "-") who step detail...
            rest = f[3:] if f[2] == "-" else f[4:]
            out.append((rest[0], rest[1]))
    return out


def in_order(seq: list[str], wanted: list[str]) -> bool:
    it = iter(seq)
    return all(any(s == w for s in it) for w in wanted)


def test_trace_flag_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIRUN_TRACE", raising=False)
    assert _trace_mode(parse(["--trace", "state", "x"])[0]) == "text"
    assert _trace_mode(parse(["--trace=json", "state", "x"])[0]) == "json"
    assert _trace_mode(parse(["--trace=1", "state", "x"])[0]) == "text"
    assert _trace_mode(parse(["state", "x"])[0]) == ""
    monkeypatch.setenv("OCIRUN_TRACE", "json")
    assert _trace_mode(Args(GLOBAL)) == "json"
    monkeypatch.setenv("OCIRUN_TRACE", "1")
    assert _trace_mode(Args(GLOBAL)) == "text"
    monkeypatch.setenv("OCIRUN_TRACE", "0")
    assert _trace_mode(Args(GLOBAL)) == ""


def test_run_trace_lists_runtime_and_init_steps_in_order(rt, bundle) -> None:  # noqa: ANN001
    b = bundle(["echo", "hello"])
    p = rt("--trace", "run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert p.out == "hello\n"  # the trace goes to stderr only
    steps = text_steps(p.err)
    names = [s for _, s in steps]
    assert in_order(names, ["config.load", "cgroup.mkdir", "clone", "mount", "pivot_root", "capset", "execve",
                            "wait", "cgroup.rmdir"]), names
    who = dict((s, w) for w, s in steps)
    assert who["clone"] == "runtime" and who["pivot_root"] == "init" and who["execve"] == "init"
    # Nothing but trace lines on stderr.
    assert all(ln.startswith(PREFIX) for ln in p.err.splitlines()), p.err


def test_json_trace_lines_parse(rt, bundle, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    b = bundle(["true"])
    monkeypatch.setenv("OCIRUN_TRACE", "json")
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    events = [json.loads(ln) for ln in p.err.splitlines()]
    assert events
    for e in events:
        assert set(e) == {"at_ms", "dur_ms", "who", "step", "detail"}
        assert e["dur_ms"] is None or e["dur_ms"] >= 0
    names = [e["step"] for e in events]
    assert in_order(names, ["clone", "mount", "pivot_root", "execve"]), names
    ex = next(e for e in events if e["step"] == "execve")
    assert ex["who"] == "init" and "true" in ex["detail"] and ex["dur_ms"] is None
    monkeypatch.delenv("OCIRUN_TRACE")
    b2 = bundle(["true"])
    p = rt("--trace=json", "create", "-b", b2.path, b2.id)
    assert p.returncode == 0, p.err
    assert all(json.loads(ln)["step"] for ln in p.err.splitlines())
    rt("delete", "--force", b2.id, check=True)


def test_trace_off_prints_nothing(rt, bundle, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("OCIRUN_TRACE", raising=False)
    b = bundle(["true"])
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.err == ""
    monkeypatch.setenv("OCIRUN_TRACE", "0")
    b = bundle(["true"])
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.err == ""


def test_exec_trace_and_failed_step(rt, bundle) -> None:  # noqa: ANN001
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    try:
        p = rt("--trace", "exec", b.id, "true")
        assert p.returncode == 0, p.err
        steps = text_steps(p.err)
        assert in_order([s for _, s in steps], ["state.load", "clone", "cgroup.attach", "execve", "exec'd"]), steps
        assert ("exec", "execve") in steps
        p = rt("--trace", "exec", b.id, "/no/such/command")
        assert p.returncode == 255
        failed = [ln for ln in p.err.splitlines() if ln.startswith(PREFIX) and "failed:" in ln]
        assert failed and "find_exec" in failed[0], p.err
        assert "ocirun: " in p.err  # the error itself is still reported
    finally:
        rt("delete", "--force", b.id, check=True)


def test_untraced_create_imports_no_tracer() -> None:
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys, ocirun.cli, ocirun.create, ocirun.run, ocirun.executor\n"
            "print('ocirun.tracer' in sys.modules, 'mmap' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=root)).stdout
    assert out.split() == ["False", "False"]
