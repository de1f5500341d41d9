#!/usr/bin/env python3
"""Run the opencontainers/runtime-tools validation suite against a runtime and summarise it.

The suite's ``validation/<name>/<name>.t`` executables print TAP.  Several of them report a
failure only as a YAML diagnostic block with no ``not ok`` line (``1..0`` plus ``error: ...``),
which ``prove`` counts as a skip; this runner counts those as failures so nothing is hidden.

Usage: RUNTIME_TOOLS_DIR=/path/to/runtime-tools [RUNTIME=ocirun] run_validation.py [names...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Target list for ocirun (the conformance issue); `--targets` selects it.
TARGETS: tuple[str, ...] = (
    "config_updates_without_affect",
    "create",
    "default",
    "delete_only_create_resources",
    "hostname",
    "kill",
    "kill_no_effect",
    "killsig",
    "linux_devices",
    "linux_masked_paths",
    "linux_ns_itype",
    "linux_ns_nopath",
    "linux_ns_path",
    "linux_ns_path_type",
    "linux_readonly_paths",
    "linux_sysctl",
    "linux_uid_mappings",
    "mounts",
    "poststop",
    "prestart_fail",
    "process",
    "process_oom_score_adj",
    "process_rlimits_fail",
    "process_user",
    "root_readonly_true",
    "state",
    "poststart",
    "poststart_fail",
    "poststop_fail",
    "hooks_stdin",
    "linux_rootfs_propagation",
    "linux_cgroups_cpus",
    "linux_cgroups_relative_cpus",
    "linux_cgroups_devices",
    "linux_cgroups_relative_devices",
    "linux_seccomp",
    # Not "process_capabilities_fail": it wants an unknown capability refused (runtime-spec 1.0.x, "MUST cause
    # an error"); since 1.1 the spec says a runtime MUST warn and SHOULD NOT fail, which ocirun (like runc
    # 1.1) now does, so that file fails by design.
)

DEFAULT_TIMEOUT = 180.0

# These files pass by exiting 0 with no TAP at all: the runtime must refuse the config
# (create or start fails); if it does not, they exit 1 through util.Fatal.
EXPECT_ERROR_FILES = frozenset({"process_rlimits_fail", "process_capabilities_fail"})

_TEST_RE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$")
_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
_DIRECTIVE_RE = re.compile(r"#\s*(SKIP|TODO)\b\s*(.*)$", re.IGNORECASE)


@dataclass
class TapTest:
    """One ``ok``/``not ok`` line, with the YAML diagnostic that follows it (if any)."""

    ok: bool
    number: int
    description: str
    directive: str = ""  # "SKIP", "TODO" or ""
    diagnostic: str = ""
    comments: list[str] = field(default_factory=list)  # "# expect: ..., actual: ..." lines after it
    # RuntimeInsideValidate prints the container's {stdout, stderr} as YAML *before* its test line.
    pre_diagnostic: str = ""


@dataclass
class TapReport:
    """What a TAP stream said, including diagnostics that are not attached to any test."""

    version: int | None = None
    plan: int | None = None  # sum of the plans of all streams (None if a stream had none)
    plan_comment: str = ""
    streams: int = 0  # some files (linux_cgroups_cpus) print several "TAP version" streams
    plan_errors: list[str] = field(default_factory=list)
    tests: list[TapTest] = field(default_factory=list)
    orphan_errors: list[str] = field(default_factory=list)  # YAML blocks with an error but no test line
    bail_out: str = ""


@dataclass
class FileResult:
    """Verdict for one ``.t`` file; ``reason`` is the first failing assertion, verbatim."""

    name: str
    passed: bool
    ok: int = 0
    total: int = 0
    skipped: int = 0
    reason: str = ""
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exit_code: int | None = None
    timed_out: bool = False
    duration: float = 0.0
    stdout: str = ""
    stderr: str = ""


def _yaml_error(block: str) -> str | None:
    """Return the ``error`` value of a YAML (JSON-encoded, as tap-go writes it) block, if any."""
    try:
        data = json.loads(block)
    except ValueError:
        m = re.search(r'^\s*"?error"?\s*:\s*(.+)$', block, re.MULTILINE)
        return m.group(1).strip().strip('",') if m else None
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return None


def parse_tap(text: str) -> TapReport:
    """Parse TAP 13 as the runtime-tools harness (mndrix/tap-go) writes it."""
    rep = TapReport()
    lines = text.splitlines()
    i = 0
    # True while the latest significant item is a test line that has no YAML block yet.
    attach_to: TapTest | None = None
    stream_plan: int | None = None
    stream_tests = 0
    last_test: TapTest | None = None
    pending_pre = ""
    while i < len(lines):
        raw = lines[i]
        line = raw.strip()
        i += 1
        if raw.startswith("  ---") or line == "---":
            block: list[str] = []
            while i < len(lines) and lines[i].strip() != "...":
                block.append(lines[i])
                i += 1
            i += 1  # skip the "..." terminator
            body = "\n".join(block)
            if attach_to is not None:
                attach_to.diagnostic = body
                attach_to = None
            else:
                err = _yaml_error(body)
                if err is not None:
                    rep.orphan_errors.append(err)
                pending_pre = body
            continue
        if not line:
            continue
        if line.startswith("#"):
            if last_test is not None:
                last_test.comments.append(line.lstrip("# ").strip())
            continue
        if line.startswith("TAP version"):
            if rep.streams:
                _close_stream(rep, stream_plan, stream_tests)
            rep.streams += 1
            stream_plan, stream_tests = None, 0
            try:
                rep.version = int(line.split()[-1])
            except ValueError:
                rep.version = None
            continue
        if line.startswith("Bail out!"):
            rep.bail_out = line[len("Bail out!") :].strip() or "Bail out!"
            attach_to = None
            continue
        m = _PLAN_RE.match(line)
        if m and raw.rstrip() == line:
            if stream_plan is not None:
                rep.plan_errors.append(f"second plan 1..{m.group(1)} in one stream")
            stream_plan = int(m.group(1))
            rep.plan_comment = (m.group(2) or "").strip()
            attach_to = None
            continue
        m = _TEST_RE.match(line)
        if m and raw.rstrip() == line:
            desc = m.group(3).strip()
            directive = ""
            d = _DIRECTIVE_RE.search(desc)
            if d:
                directive = d.group(1).upper()
                desc = (desc[: d.start()].strip() + " " + d.group(2).strip()).strip()
            number = int(m.group(2)) if m.group(2) else len(rep.tests) + 1
            test = TapTest(ok=m.group(1) == "ok", number=number, description=desc, directive=directive)
            test.pre_diagnostic, pending_pre = pending_pre, ""
            rep.tests.append(test)
            last_test = test
            stream_tests += 1
            attach_to = test
            continue
        # Anything else is a continuation of a multi-line description ("Refer to: ..."), which
        # tap-go prints unescaped; it does not detach the following YAML block from its test.
    if rep.streams == 0 and (stream_plan is not None or stream_tests):
        rep.streams = 1
    if rep.streams:
        _close_stream(rep, stream_plan, stream_tests)
    return rep


def _close_stream(rep: TapReport, plan: int | None, count: int) -> None:
    """Check one TAP stream's plan against its test lines and add it to the total plan."""
    if plan is None:
        rep.plan_errors.append(f"no TAP plan printed (after {count} test lines)")
        rep.plan = None
        return
    if plan != count:
        rep.plan_errors.append(f"plan 1..{plan} but {count} test lines")
    if rep.streams == 1 or rep.plan is not None:
        rep.plan = (rep.plan or 0) + plan


def _inner_failure(block: str) -> str:
    """First ``not ok`` of runtimetest's TAP, or its last stderr line, from a {stdout, stderr} block."""
    if not block:
        return ""
    try:
        data = json.loads(block)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    for line in str(data.get("stdout", "")).splitlines():
        if line.startswith("not ok"):
            return line.strip()
    err = [line.strip() for line in str(data.get("stderr", "")).splitlines() if line.strip()]
    return err[-1] if err else ""


def _first_lines(text: str, count: int = 3) -> str:
    """First non-empty stderr lines: "failed to create the container", the runtime's error, ..."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[:count])


def one_line(text: str, width: int = 240) -> str:
    """Squash a multi-line reason into one table cell."""
    flat = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def judge(name: str, stdout: str, stderr: str, exit_code: int | None, timed_out: bool = False) -> FileResult:
    """Turn one file's output into a verdict; every doubt counts against the runtime."""
    rep = parse_tap(stdout)
    res = FileResult(name=name, passed=False, exit_code=exit_code, timed_out=timed_out)
    res.stdout, res.stderr = stdout, stderr
    res.total = len(rep.tests)
    for t in rep.tests:
        if t.directive == "SKIP":
            res.skipped += 1
            res.ok += 1
        elif t.ok or t.directive == "TODO":
            res.ok += 1
        else:
            msg = f"not ok {t.number} - {t.description}"
            err = _yaml_error(t.diagnostic) if t.diagnostic else None
            if err:
                msg += f" [{err}]"
            if t.comments:
                msg += f" # {t.comments[0]}"
            inner = _inner_failure(t.pre_diagnostic)
            if inner:
                msg += f" (inside: {inner})"
            res.failures.append(msg)
    for err in rep.orphan_errors:
        res.failures.append(f"diagnostic: {err}")
    if rep.bail_out:
        res.failures.append(f"Bail out! {rep.bail_out}")
    if timed_out:
        res.failures.append("timed out")
    elif exit_code is None or exit_code != 0:
        head = _first_lines(stderr)
        res.failures.append(f"exit status {exit_code}" + (f": {head}" if head else ""))
    if exit_code == 0 and not timed_out:
        if rep.streams == 0:
            if name not in EXPECT_ERROR_FILES:
                res.failures.append("no TAP output at all")
        else:
            res.failures.extend(rep.plan_errors)
    for line in stderr.splitlines():
        if "WARNING" in line:
            res.warnings.append(line.strip())
    res.passed = not res.failures
    res.reason = res.failures[0] if res.failures else ""
    bare = res.reason.startswith("not ok") and not any(k in res.reason for k in (" [", " # ", "(inside:"))
    if bare and stderr.strip():
        # e.g. linux_seccomp: "not ok 1 - seccomp action is added correctly"; the why is on stderr.
        res.reason += f" (stderr: {_first_lines(stderr, 2)})"
    return res


def bundle_mounts() -> set[str]:
    """Host mount points inside suite bundles (/tmp/ocitestNNN); a runtime must not leak any."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return set()
    points = (line.split(" ")[4] for line in text.splitlines() if line.count(" ") > 4)
    return {p for p in points if "/ocitest" in p}


def run_one(name: str, suite_dir: Path, runtime: str, timeout: float = DEFAULT_TIMEOUT) -> FileResult:
    """Run validation/<name>/<name>.t from the suite root (it needs ./runtimetest and the rootfs tarball)."""
    exe = suite_dir / "validation" / name / f"{name}.t"
    if not os.access(exe, os.X_OK):
        return FileResult(
            name=name,
            passed=False,
            reason=f"{exe} not built (make runtimetest validation-executables)",
            failures=["not built"],
        )
    env = dict(os.environ, RUNTIME=runtime)
    mounts_before = bundle_mounts()
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(exe)],
        cwd=suite_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        # The .t leaves runtime children around; take its whole session down.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    res = judge(name, out, err, None if timed_out else proc.returncode, timed_out)
    res.duration = time.monotonic() - start
    leaked = sorted(bundle_mounts() - mounts_before)
    if leaked:
        # rootfsPropagation "shared" done wrong propagates the container's /proc, /sys, ... back to
        # the host, and the suite's rm -rf of the bundle then walks into them.
        res.warnings.append(f"WARNING: {len(leaked)} mount(s) leaked into the host: {', '.join(leaked[:4])}")
    return res


def all_names(suite_dir: Path) -> list[str]:
    """Every validation test the suite has sources for (built or not)."""
    vdir = suite_dir / "validation"
    return sorted(p.name for p in vdir.iterdir() if p.is_dir() and (p / f"{p.name}.go").exists())


def resolve_runtime(runtime: str) -> str | None:
    """Absolute path of the runtime: the .t files run with another cwd and LookPath it."""
    if os.sep in runtime:
        p = Path(runtime).resolve()
        return str(p) if os.access(p, os.X_OK) else None
    return shutil.which(runtime)


def suite_dir_from_env() -> tuple[Path | None, str]:
    """The built suite from RUNTIME_TOOLS_DIR, or None and why it cannot be used."""
    value = os.environ.get("RUNTIME_TOOLS_DIR", "")
    if not value:
        return None, "RUNTIME_TOOLS_DIR is not set (build opencontainers/runtime-tools; see README.md)"
    d = Path(value)
    if not (d / "validation").is_dir():
        return None, f"RUNTIME_TOOLS_DIR={value} has no validation/ directory"
    return d, ""


def format_row(res: FileResult) -> str:
    """One summary line: verdict, name, ok/total, first failing assertion."""
    verdict = "PASS" if res.passed else "FAIL"
    counts = f"{res.ok}/{res.total}"
    if res.skipped:
        counts += f" ({res.skipped} skip)"
    tail = res.reason
    if res.passed and res.warnings:
        tail = "warning: " + res.warnings[0]
    return f"{verdict} {res.name:<34} {counts:>10}  {one_line(tail)}".rstrip()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit 0 only when every selected file passed (or the suite is absent)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="validation test names (default: all)")
    ap.add_argument("--only", default="", help="comma-separated validation test names")
    ap.add_argument("--targets", action="store_true", help="run ocirun's target list")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per-file timeout, seconds")
    ap.add_argument("--json", dest="json_path", help="write machine-readable results here")
    ap.add_argument("--runtime", default=os.environ.get("RUNTIME", "ocirun"), help="runtime (env RUNTIME)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each file's TAP output on failure")
    args = ap.parse_args(argv)

    suite, why = suite_dir_from_env()
    if suite is None:
        print(f"SKIP runtime-tools validation: {why}")
        return 0
    runtime = resolve_runtime(args.runtime)
    if runtime is None:
        print(f"error: runtime {args.runtime!r} not found or not executable", file=sys.stderr)
        return 2

    names = list(args.names) + [n for n in args.only.split(",") if n.strip()]
    names = [n.strip() for n in names]
    if args.targets:
        names += [n for n in TARGETS if n not in names]
    if not names:
        names = all_names(suite)
    known = set(all_names(suite))
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: unknown validation test(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("warning: not root; most validation tests need root", file=sys.stderr)

    print(f"# runtime-tools suite {suite}, runtime {runtime}, {len(names)} file(s)", flush=True)
    results: list[FileResult] = []
    for name in names:
        res = run_one(name, suite, runtime, args.timeout)
        results.append(res)
        print(format_row(res), flush=True)
        if args.verbose and not res.passed:
            for line in (res.stdout + res.stderr).splitlines():
                print(f"    | {line}")
    passed = sum(r.passed for r in results)
    failed = len(results) - passed
    if args.json_path:
        payload = {
            "runtime": runtime,
            "suite": str(suite),
            "passed": passed,
            "failed": failed,
            "results": [asdict(r) for r in results],
        }
        Path(args.json_path).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
