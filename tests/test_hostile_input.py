"""Hostile input (issue 11): every bad config gets one `ocirun: ` line, and none reaches the host.

Real containers, checked from outside (state dir, cgroup, processes; the fixtures check mounts and cgroups)
and, where it runs, from inside; runc beside ocirun where the issue asks for its behaviour.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from ocitest import proc_status
from test_errors import processes_in

RUNC = shutil.which("runc")


def refused(rt, b, msg: str, *, command: str = "create") -> str:  # noqa: ANN001
    """`command` fails with exactly `msg` (one line) and leaves no state dir or process."""
    p = rt(command, "-b", b.path, b.id)
    assert p.returncode == 1 and p.err == f"ocirun: {msg}\n", p.err
    assert not os.path.exists(os.path.join(rt.root, b.id)) and processes_in(b.path) == []
    return p.err


def runc(b, tmp_path, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    """`runc run` of the same bundle (it removes the cgroup it made; the fixture checks that)."""
    if RUNC is None:
        pytest.skip("runc not installed")
    root, cid = str(tmp_path / "runc-root"), b.id + "-runc"
    try:
        return subprocess.run([RUNC, "--root", root, "run", "-b", b.path, cid], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([RUNC, "--root", root, "delete", "-f", cid], capture_output=True)


def write_text(b, text: str) -> None:  # noqa: ANN001
    with open(os.path.join(b.path, "config.json"), "w") as f:
        f.write(text)


# ---------------------------------------------------------------- JSON text


def test_trailing_comma_names_line_and_column(rt, bundle):
    """The most common mistake; it used to be `internal error: SystemError: <_json.Scanner ...> returned NULL`."""
    b = bundle(["true"])
    text = json.dumps(b.spec, indent=1).replace('"readonly": true', '"readonly": true,')
    write_text(b, text)
    at = text.index('"readonly": true,') + len('"readonly": true,')
    nl = text.rfind("\n", 0, text.index("}", at))
    line, col = text.count("\n", 0, nl + 1) + 1, text.index("}", at) - nl
    refused(rt, b, f"config.json: line {line} column {col}: trailing comma before }}")


@pytest.mark.parametrize(("edit", "msg"), [
    (lambda t: t[:-1], "line {last} column 1: Expecting ',' delimiter"),
    (lambda t: t.replace('"args"', '"args" "x"', 1), "line {args} column 10: Expecting ':' delimiter"),
    (lambda t: t.replace('"sleep"', "'sleep'", 1), "line {sleep} column 4: Expecting value"),
    (lambda t: t.replace('"sleep"', '"sl\teep"', 1), "line {sleep} column 7: Invalid control character"),
    (lambda t: t.replace('"sleep"', '"sl\\qeep"', 1), "line {sleep} column 7: Invalid \\escape"),
])
def test_syntax_errors_name_line_and_column(rt, bundle, edit, msg):
    b = bundle(["sleep", "1"])
    text = json.dumps(b.spec, indent=1)
    lines = {"last": text.count("\n") + 1, "args": _line_of(text, '"args"'), "sleep": _line_of(text, '"sleep"')}
    write_text(b, edit(text))
    refused(rt, b, "config.json: " + msg.format(**lines))


def _line_of(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def test_invalid_utf8_names_line_and_column(rt, bundle):
    b = bundle(["true"])
    with open(os.path.join(b.path, "config.json"), "wb") as f:
        f.write(b'{\n "ociVersion": "1.0.\xff"}')
    refused(rt, b, "config.json: line 2 column 21: invalid UTF-8 (byte 0xff)")


# ---------------------------------------------------------------- strings C cannot carry


def test_nul_in_an_argument_is_refused_not_cut_short(rt, bundle):
    """"/bin/busybox\\0x" used to run busybox: the C string ended at the NUL."""
    b = bundle(["/bin/busybox\0x", "true"])
    b.write()
    refused(rt, b, 'config.json: process.args[0]: string "/bin/busybox\\u0000x" contains a NUL byte', command="run")


@pytest.mark.parametrize(("where", "value", "path"), [
    ("cwd", "/tmp\0/x", "process.cwd"),
    ("env", ["PATH=/bin", "A=b\0c"], "process.env[1]"),
    ("cgroupsPath", "/ocirun-test/x\0y", "linux.cgroupsPath"),
    ("sysctl", {"kernel.shmmni": "4096\0 9"}, 'linux.sysctl["kernel.shmmni"]'),
    ("hostname", "a\0b", "hostname"),
])
def test_nul_anywhere_is_refused_with_its_path(rt, bundle, where, value, path):
    """cgroupsPath with a NUL used to end in ValueError and leave the state directory behind."""
    b = bundle(["true"])
    if where in ("cwd", "env"):
        b.spec["process"][where] = value
    elif where == "hostname":
        b.spec["hostname"] = value
    else:
        b.spec["linux"][where] = value
    b.write()
    text = value if isinstance(value, str) else value[-1] if isinstance(value, list) else next(iter(value.values()))
    quoted = json.dumps(text)
    refused(rt, b, f"config.json: {path}: string {quoted} contains a NUL byte")


def test_lone_surrogate_is_refused(rt, bundle):
    """It used to end in a UnicodeEncodeError (or a raw traceback, printing the error itself)."""
    b = bundle(["true"])
    b.spec["process"]["env"].append("X=\ud800")
    b.write()
    refused(rt, b, 'config.json: process.env[2]: string "X=\\ud800" contains a lone surrogate: not text')


# ---------------------------------------------------------------- one line, whatever the value


@pytest.mark.parametrize(("mutate", "msg"), [
    (lambda s: s["process"].update(cwd="rel\nocirun: forged"),
     'config.json: process.cwd: must be an absolute path, got "rel\\nocirun: forged"'),
    (lambda s: s["linux"]["namespaces"].insert(0, {"type": "uts\r\n"}),
     'config.json: linux.namespaces[0].type: invalid value "uts\\r\\n": must be one of pid, network, mount, ipc, '
     "uts, user, cgroup, time"),
    (lambda s: s["process"]["rlimits"][0].update(type="RLIMIT\u2028NOFILE"),
     'config.json: process.rlimits[0].type: unknown rlimit "RLIMIT\\u2028NOFILE"'),
])
def test_values_are_quoted_so_the_error_stays_one_line(rt, bundle, mutate, msg):
    b = bundle(["true"])
    mutate(b.spec)
    b.write()
    refused(rt, b, msg)


def test_an_error_from_inside_the_container_is_one_line_too(rt, bundle):
    """The C helper's messages carry raw paths: the CLI escapes whatever reaches the error line."""
    b = bundle(["/no\nsuch"])
    b.write()
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1 and p.err.count("\n") == 1 and "/no\\nsuch" in p.err, p.err


# ---------------------------------------------------------------- ids


@pytest.mark.parametrize("uid", [4294967295, 2147483648])
def test_uid_beyond_runcs_range_is_refused(rt, bundle, tmp_path, uid):
    """4294967295 is -1 to setresuid(2), "unchanged": the process ran as root. runc refuses both."""
    b = bundle(["id", "-u"])
    b.spec["process"]["user"]["uid"] = uid
    b.write()
    refused(rt, b, f"config.json: process.user.uid: {uid} is out of range: must be between 0 and 2147483647",
            command="run")
    r = runc(b, tmp_path)
    assert r.returncode != 0 and "uids and gids must be in range 0-2147483647" in r.stderr and r.stdout == ""


def test_largest_uid_runs_as_itself(rt, bundle, tmp_path):
    b = bundle(["id", "-u"])
    b.spec["process"]["user"]["uid"] = 2147483647
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.out.strip() == "2147483647", p.err
    r = runc(b, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "2147483647", r.stderr


def test_many_additional_gids(rt, bundle):
    """Beyond the plan's argument limit: a clear error at config time, not `clone: invalid argument`;
    below it the kernel takes them all (NGROUPS_MAX is 65536)."""
    from ocirun.config import PLAN_MAX_ARGS

    b = bundle(["sleep", "100"])
    b.spec["process"]["user"]["additionalGids"] = list(range(1, PLAN_MAX_ARGS + 1))
    b.write()
    refused(rt, b, f"config.json: process.user.additionalGids: {PLAN_MAX_ARGS} groups: at most "
                   f"{PLAN_MAX_ARGS - 1} are supported")
    b.spec["process"]["user"]["additionalGids"] = list(range(1, 5001))
    b.write()
    rt("create", "-b", b.path, b.id, check=True)
    try:
        assert len(proc_status(rt.state(b.id)["pid"])["Groups"].split()) == 5000
    finally:
        rt("delete", "--force", b.id, check=True)


@pytest.fixture
def ctr(rt, bundle):  # noqa: ANN001, ANN201
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    yield b
    rt("delete", "--force", b.id)


@pytest.mark.parametrize(("flags", "msg"), [
    (["--user", "4294967295"], "--user: uid 4294967295 is out of range: must be between 0 and 2147483647"),
    (["--user", "0:2147483648"], "--user: gid 2147483648 is out of range: must be between 0 and 2147483647"),
    (["--user", "-1"], "--user: uid -1 is out of range: must be between 0 and 2147483647"),
    (["--user", "1_000"], '--user: invalid uid "1_000": must be a decimal number'),
    (["--additional-gids", "4294967295"],
     "--additional-gids: gid 4294967295 is out of range: must be between 0 and 2147483647"),
])
def test_exec_ids_beyond_range(rt, ctr, flags, msg):
    p = rt("exec", *flags, ctr.id, "id")
    assert p.returncode == 255 and p.err == f"ocirun: {msg}\n" and p.out == "", p.err


def test_runc_refuses_the_same_exec_ids(bundle, tmp_path):
    """runc 1.1.5 beside: the same flags fail with "uids and gids must be in range 0-2147483647"."""
    if RUNC is None:
        pytest.skip("runc not installed")
    b = bundle(["sleep", "1000"])
    root, cid = str(tmp_path / "runc-root"), b.id + "-runc"
    # (no pipes: the detached container would hold them open)
    subprocess.run([RUNC, "--root", root, "run", "-d", "-b", b.path, cid], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for flags in (["--user", "4294967295"], ["--user", "0:2147483648"], ["--additional-gids", "4294967295"]):
            r = subprocess.run([RUNC, "--root", root, "exec", *flags, cid, "id"], capture_output=True, text=True)
            assert r.returncode != 0 and "uids and gids must be in range 0-2147483647" in r.stderr, r.stderr
    finally:
        subprocess.run([RUNC, "--root", root, "delete", "-f", cid], capture_output=True)


def test_exec_arguments_that_are_not_utf8_pass_as_bytes(rt, ctr):
    """argv is bytes: Python holds what is not UTF-8 as lone surrogates (surrogateescape), which used to end in
    `internal error: UnicodeEncodeError`; runc passes such bytes on as they are, and so do we now."""
    p = rt("exec", "--env", "A=\udcff", ctr.id, "sh", "-c", 'echo "$A" "$1"', "sh", "x\udcfey")
    assert p.returncode == 0 and p.stdout == b"\xff x\xfey\n", p.err
    p = rt("exec", "--cwd", "/no\udcff", ctr.id, "true")
    assert p.returncode == 255 and p.err.count("\n") == 1 and "chdir to cwd /no" in p.err, p.err


def test_exec_process_file_ids_and_json(rt, ctr, tmp_path):
    f = tmp_path / "process.json"
    f.write_text(json.dumps({"args": ["id", "-u"], "cwd": "/", "user": {"uid": 4294967295, "gid": 0}}))
    p = rt("exec", "--process", str(f), ctr.id)
    assert p.returncode == 255 and p.err == (f"ocirun: --process {f}: process.user.uid: 4294967295 is out of "
                                             "range: must be between 0 and 2147483647\n"), p.err
    f.write_text('{"args": ["id"], "cwd": "/",}')
    p = rt("exec", "--process", str(f), ctr.id)
    assert p.returncode == 255 and p.err == f"ocirun: --process {f}: line 1 column 29: trailing comma before }}\n"
    f.write_text(json.dumps({"args": ["true"], "cwd": "/", "capabilities": {"bounding": ["CAP_NOPE"]}}))
    p = rt("exec", "--process", str(f), ctr.id)
    assert p.returncode == 0 and p.err == (f"ocirun: warning: --process {f}: process.capabilities.bounding[0]: "
                                           'unknown capability "CAP_NOPE": ignored\n'), p.err
    f.write_text('{"args": ["/bin/busybox\\u0000x"], "cwd": "/"}')
    p = rt("exec", "--process", str(f), ctr.id)
    assert p.returncode == 255 and p.err == (f'ocirun: --process {f}: args[0]: string "/bin/busybox\\u0000x" '
                                             "contains a NUL byte\n"), p.err


# ---------------------------------------------------------------- device cgroup


def test_empty_device_access_is_refused(rt, bundle, tmp_path):
    """`{"allow": true, "access": ""}` read as "rwm": every device (a *:* rwm). runc refuses it too."""
    b = bundle(["true"])
    b.spec["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"}, {"allow": True, "access": ""}]
    b.write()
    refused(rt, b, 'config.json: linux.resources.devices[1].access: must not be empty (say "rwm" for every access)')
    r = runc(b, tmp_path)
    assert r.returncode != 0 and "device access at 1 field cannot be empty" in r.stderr, r.stderr


# ---------------------------------------------------------------- capabilities (issue 12)


def test_unknown_capability_is_a_warning(rt, bundle, tmp_path):
    """runtime-spec 1.1: MUST warn, SHOULD NOT fail. runc 1.1.5 does the same ("ignoring unknown or
    unavailable capabilities: [CAP_UNKNOWN]"); the container runs with the capabilities that exist."""
    b = bundle(["grep", "^Cap", "/proc/self/status"])
    for kind in ("bounding", "effective", "permitted"):
        b.spec["process"]["capabilities"][kind].append("CAP_UNKNOWN")
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert p.err.splitlines() == [
        f'ocirun: warning: config.json: process.capabilities.{kind}[3]: unknown capability "CAP_UNKNOWN": ignored'
        for kind in ("bounding", "effective", "permitted")]
    r = runc(b, tmp_path)
    assert r.returncode == 0 and "ignoring unknown or unavailable capabilities: [CAP_UNKNOWN]" in r.stderr, r.stderr
    assert p.out == r.stdout  # the same capability sets as runc's: the known three


def test_warning_goes_to_the_json_log(rt, bundle, tmp_path):
    from ocitest import ocirun_cmd

    b = bundle(["true"])
    b.spec["process"]["capabilities"]["bounding"].append("CAP_UNKNOWN")
    b.write()
    log = tmp_path / "log.json"
    p = subprocess.run([*ocirun_cmd(), "--root", rt.root, "--log", str(log), "--log-format", "json", "run", "-b",
                        b.path, b.id], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    [entry] = [json.loads(ln) for ln in log.read_text().splitlines() if '"warning"' in ln]
    assert entry["msg"] == 'config.json: process.capabilities.bounding[3]: unknown capability "CAP_UNKNOWN": ignored'


# ---------------------------------------------------------------- devices anywhere, inside the rootfs (issue 12)


def test_device_outside_dev_is_made_inside_the_rootfs(rt, bundle, tmp_path):
    """runtime-spec 1.1: a device path MAY be anywhere. A symlink in the rootfs cannot take it outside: the
    C helper resolves every path inside the root (RESOLVE_IN_ROOT), creating missing directories there."""
    escape = tmp_path / "host-side"  # where a runtime following the symlink on the host would create it
    # (a write needs a filesystem without nodev: the test VM's /tmp has it)
    nodev = os.statvfs(str(tmp_path)).f_flag & os.ST_NODEV
    b = bundle(["sh", "-c", "ls -l /opt/devs/null /escape/null" + ("" if nodev else "; echo hi > /opt/devs/null")])
    os.symlink(str(escape), os.path.join(b.rootfs, "escape"))
    b.spec["linux"]["devices"] = [{"path": "/opt/devs/null", "type": "c", "major": 1, "minor": 3},
                                  {"path": "/escape/null", "type": "c", "major": 1, "minor": 3}]
    b.spec["root"]["readonly"] = False
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert [ln.split()[0][0] + " " + " ".join(ln.split()[4:6]) for ln in p.out.splitlines()] == ["c 1, 3"] * 2
    assert not escape.exists()
    inside = os.path.join(b.rootfs, str(escape).lstrip("/"), "null")
    assert os.path.exists(inside) and os.stat(inside).st_rdev == os.makedev(1, 3)


def test_a_corrupt_state_json_names_line_and_column(rt):
    """state.json goes through the same JSON reader: a damaged one is one line too, not an internal error."""
    d = os.path.join(rt.root, "broken")
    os.makedirs(d)
    with open(os.path.join(d, "state.json"), "w") as f:
        f.write('{"id": "broken", "pid": 1,}')
    try:
        for cmd in (["state", "broken"], ["kill", "broken", "KILL"]):
            p = rt(*cmd)
            assert p.returncode == 1, p.err
            assert p.err.count("\n") == 1 and f"{d}/state.json: line 1 column 27: trailing comma before }}" in p.err
    finally:
        shutil.rmtree(d)


HOSTILE_FLAGS = [
    ["exec", "--preserve-fds", "99999999999999999999", "{id}", "true"],
    ["exec", "--user", "1:2:3", "{id}", "true"],
    ["exec", "--user", "\udcff", "{id}", "true"],
    ["exec", "--additional-gids", "1e3", "{id}", "true"],
    ["exec", "--cap", "CAP_\n", "{id}", "true"],
    ["exec", "--env", "=x", "{id}", "true"],
    ["exec", "--cgroup", "a:b:c", "{id}", "true"],
    ["exec", "--process", "/dev/null", "{id}"],
    ["exec", "--process", "/proc/self/mem", "{id}"],
    ["exec", "--process", "/", "{id}"],
    ["kill", "{id}", "SIGFOO\n"],
    ["kill", "{id}", "99999999999999999999"],
    ["update", "--memory", "1e999", "{id}"],
    ["update", "--pids-limit", "99999999999999999999", "{id}"],
    ["update", "--cpuset-cpus", "0-\udcff", "{id}"],
    ["update", "--resources", "/", "{id}"],
    ["events", "--interval", "1e999s", "{id}"],
    ["create", "--preserve-fds", "99999999999999999999", "-b", "{bundle}", "other"],
    ["create", "-b", "{bundle}", "bad\nid"],
    ["state", "no\udcffsuch"],
]


@pytest.mark.parametrize("argv", HOSTILE_FLAGS, ids=[" ".join(a).encode("unicode_escape").decode()
                                                     for a in HOSTILE_FLAGS])
def test_hostile_command_line_values_give_one_line(rt, ctr, argv):
    p = rt(*[a.format(id=ctr.id, bundle=ctr.path) for a in argv])
    lines = p.err.splitlines()
    assert "internal error" not in p.err and "Traceback" not in p.err, p.err
    if p.returncode:
        assert len([ln for ln in lines if not ln.startswith("ocirun: warning: ")]) == 1, p.err
    assert all(ln.startswith("ocirun: ") for ln in lines), p.err
    assert not os.path.exists(os.path.join(rt.root, "other"))
