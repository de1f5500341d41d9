"""`ocirun exec` on real containers: namespaces, cgroup, process settings, terminals, errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest
from ocitest import ROOT, ocirun_cmd, proc_status, wait_stopped
from test_tty import pty_run

# CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE: the default spec's set
DEFAULT_CAPS = (1 << 29) | (1 << 5) | (1 << 10)
CAP_NET_ADMIN = 12


@pytest.fixture
def ctr(rt, bundle):  # noqa: ANN001, ANN201
    """A running `sleep 1000` container with a cgroup namespace too; force-deleted afterwards."""
    b = bundle(["sleep", "1000"])
    if not any(n["type"] == "cgroup" for n in b.spec["linux"]["namespaces"]):  # (the v2 default has one)
        b.spec["linux"]["namespaces"].append({"type": "cgroup"})
    b.write()
    rt("create", "-b", b.path, b.id, check=True)
    rt("start", b.id, check=True)
    yield b
    rt("delete", "-f", b.id)


def init_pid(rt, cid: str) -> int:  # noqa: ANN001
    return rt.state(cid)["pid"]


def exec_detached(rt, tmp_path, cid: str, *args: str) -> int:  # noqa: ANN001
    pid_file = tmp_path / f"exec-{time.monotonic_ns()}.pid"
    rt("exec", "-d", "--pid-file", str(pid_file), cid, *args, check=True)
    return int(pid_file.read_text())


def kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def cgroup_lines(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return sorted(f.read().splitlines())


def test_joins_every_namespace_and_the_cgroup(rt, ctr, tmp_path):
    init = init_pid(rt, ctr.id)
    pid = exec_detached(rt, tmp_path, ctr.id, "sleep", "1000")
    try:
        names = sorted(os.listdir(f"/proc/{init}/ns"))
        assert {"pid", "mnt", "net", "ipc", "uts", "cgroup"} <= set(names)
        for ns in names:
            assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert cgroup_lines(pid) == cgroup_lines(init)
        assert any(ctr.cgroup in ln for ln in cgroup_lines(pid))
        assert os.readlink(f"/proc/{pid}/root") == os.readlink(f"/proc/{init}/root")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read() == b"sleep\x001000\x00"
        # Seen from inside, the exec'd process is in the container's pid namespace.
        p = rt("exec", ctr.id, "ps", "-o", "pid,comm", check=True)
        pids = {ln.split()[0] for ln in p.out.splitlines()[1:]}
        assert "1" in pids and len(pids) == 3, p.out  # init, the detached sleep, ps
    finally:
        kill(pid)


def test_exit_status_and_output(rt, ctr):
    p = rt("exec", ctr.id, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert p.returncode == 7
    assert p.out == "out\n" and p.err == "err\n"
    p = rt("exec", ctr.id, "sh", "-c", "kill -TERM $$")
    assert p.returncode == 128 + 15


def test_env_cwd_user_flags(rt, ctr, monkeypatch):
    monkeypatch.setenv("OCIRUN_HOST_SECRET", "leak")
    p = rt("exec", ctr.id, "env", check=True)
    env = dict(ln.split("=", 1) for ln in p.out.splitlines())
    assert "OCIRUN_HOST_SECRET" not in env
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["TERM"] == "xterm"
    p = rt("exec", "-e", "FOO=bar", "-e", "TERM=dumb", "--cwd", "/tmp", "-u", "1000:1001", "-g", "5",
           "-g", "6", ctr.id, "sh", "-c", 'echo "$FOO $TERM"; pwd; id -u; id -g; id -G', check=True)
    assert p.out.splitlines() == ["bar dumb", "/tmp", "1000", "1001", "1001 5 6"]
    p = rt("exec", "-u", "65534", ctr.id, "sh", "-c", "id -u; id -g", check=True)
    assert p.out.split() == ["65534", "0"]  # no :GID keeps the container's gid, as runc


def test_caps_match_the_container_and_cap_adds(rt, ctr):
    init = proc_status(init_pid(rt, ctr.id))
    p = rt("exec", ctr.id, "cat", "/proc/self/status", check=True)
    st = dict(ln.split(":\t", 1) for ln in p.out.splitlines() if ":\t" in ln)
    for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "NoNewPrivs"):
        assert st[k] == init[k], k
    assert int(st["CapEff"], 16) == DEFAULT_CAPS
    p = rt("exec", "--cap", "CAP_NET_ADMIN", ctr.id, "cat", "/proc/self/status", check=True)
    st = dict(ln.split(":\t", 1) for ln in p.out.splitlines() if ":\t" in ln)
    for k in ("CapEff", "CapPrm", "CapBnd"):
        assert int(st[k], 16) == DEFAULT_CAPS | (1 << CAP_NET_ADMIN), k
    # An unknown name is a warning and is left out (runtime-spec 1.1: MUST warn, SHOULD NOT fail; runc 1.1 too).
    p = rt("exec", "--cap", "CAP_NOPE", "--cap", "CAP_NET_ADMIN", ctr.id, "cat", "/proc/self/status", check=True)
    assert p.err == 'ocirun: warning: --cap: unknown capability "CAP_NOPE": ignored\n'
    st = dict(ln.split(":\t", 1) for ln in p.out.splitlines() if ":\t" in ln)
    assert int(st["CapEff"], 16) == DEFAULT_CAPS | (1 << CAP_NET_ADMIN)


def test_process_json(rt, ctr, tmp_path):
    proc = {"args": ["sh", "-c", 'echo "$X"; pwd; id -u'], "env": ["X=from-json", "PATH=/bin"], "cwd": "/tmp",
            "user": {"uid": 123, "gid": 456}}
    f = tmp_path / "process.json"
    f.write_text(json.dumps(proc))
    p = rt("exec", "-p", str(f), ctr.id, check=True)
    assert p.out.splitlines() == ["from-json", "/tmp", "123"]
    f.write_text(json.dumps({"args": ["true"], "cwd": "relative"}))
    p = rt("exec", "-p", str(f), ctr.id)
    assert p.returncode == 255 and "process.cwd" in p.err and str(f) in p.err


def test_missing_command(rt, ctr):
    p = rt("exec", ctr.id, "nosuch")
    assert p.returncode == 255
    assert 'exec: "nosuch": executable file not found in $PATH: No such file or directory' in p.err
    p = rt("exec", ctr.id, "/etc/passwd")
    assert p.returncode == 255 and "permission denied" in p.err.lower()
    p = rt("exec", ctr.id)
    assert p.returncode == 255 and "process args cannot be empty" in p.err


def test_refused_when_stopped_or_paused(rt, ctr):
    rt("pause", ctr.id, check=True)
    try:
        p = rt("exec", ctr.id, "true")
        assert p.returncode == 255 and "cannot exec in a paused container" in p.err
    finally:
        rt("resume", ctr.id, check=True)
    rt("exec", ctr.id, "true", check=True)
    rt("kill", ctr.id, "KILL", check=True)
    wait_stopped(rt, ctr.id)
    p = rt("exec", ctr.id, "true")
    assert p.returncode == 255 and "stopped" in p.err and "container not running" in p.err


def test_detach_pid_file_is_a_live_process(rt, ctr, tmp_path):
    start = time.monotonic()
    pid = exec_detached(rt, tmp_path, ctr.id, "sleep", "1000")
    assert time.monotonic() - start < 10
    try:
        time.sleep(0.3)  # the runtime has exited: the process must not have died with it
        st = proc_status(pid)
        assert st["State"][0] in "SR", st["State"]
        assert st["Name"] == "sleep"
    finally:
        kill(pid)


def test_tty_with_console_socket(rt, ctr, tmp_path):
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(20)
    try:
        rt("exec", "-d", "-t", "--console-socket", path, ctr.id, "sh", "-c", "tty; read x; echo bye-$x",
           check=True)
        conn, _ = srv.accept()
        with conn:
            msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        assert len(fds) == 1 and msg.startswith(b"/dev/pts/")
        master = fds[0]
        try:
            out = _read_until(master, b"\n")
            assert out.strip().decode().startswith("/dev/pts/"), out
            os.write(master, b"now\n")
            out = _read_until(master, b"bye-now")
            assert b"bye-now" in out
        finally:
            os.close(master)
    finally:
        srv.close()


def _read_until(fd: int, want: bytes, timeout: float = 10) -> bytes:
    import select

    out = b""
    end = time.monotonic() + timeout
    while want not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
    return out


def test_tty_in_the_foreground_relays(rt, ctr):
    out, status = pty_run([*ocirun_cmd(), "--root", rt.root, "exec", "-t", ctr.id, "sh", "-c",
                           "tty; stty size; exit 4"], rows=20, cols=70)
    lines = out.decode(errors="replace").replace("\r\n", "\n").splitlines()
    assert status == 4, lines
    assert lines[0].startswith("/dev/pts/") and "20 70" in lines


def test_terminal_flag_errors(rt, ctr, tmp_path):
    p = rt("exec", "-d", "-t", ctr.id, "true")
    assert p.returncode == 255 and "console socket" in p.err
    p = rt("exec", "--console-socket", str(tmp_path / "x.sock"), ctr.id, "true")
    assert p.returncode == 255 and "console socket" in p.err
    p = rt("exec", "--apparmor", "unconfined", ctr.id, "true")
    assert p.returncode == 255 and "--apparmor" in p.err and "not supported" in p.err
    p = rt("exec", "--process-label", "x", ctr.id, "true")
    assert p.returncode == 255 and "--process-label" in p.err


def test_preserve_fds(rt, ctr, tmp_path):
    out = tmp_path / "fd3.txt"
    cmd = " ".join([*ocirun_cmd(), "--root", rt.root, "exec", "--preserve-fds", "1", ctr.id,
                    "sh", "-c", "'echo via-fd3 >&3; ls /proc/self/fd'"])
    p = subprocess.run(["sh", "-c", f"{cmd} 3>{out}"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0, p.stderr
    assert out.read_text() == "via-fd3\n"
    assert sorted(p.stdout.split()) == ["0", "1", "2", "3", "4"]  # 4: ls's own directory fd
    p = rt("exec", "--preserve-fds", "40", ctr.id, "true")
    assert p.returncode == 255 and "preserved-fd" in p.err


def test_seccomp_of_the_container_applies(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    b.write()
    rt("create", "-b", b.path, b.id, check=True)
    try:
        rt("start", b.id, check=True)
        p = rt("exec", b.id, "sh", "-c", "mkdir /tmp/x; grep Seccomp: /proc/self/status")
        assert "Operation not permitted" in p.err, p.err
        assert "Seccomp:\t2" in p.out
    finally:
        rt("delete", "-f", b.id)


def test_user_namespace_container(rt, bundle, tmp_path):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.write()
    os.chown(b.rootfs, 100000, 100000)
    d = b.path
    while d != "/":  # pytest's tmp dirs are 0700: the mapped root must be able to reach the rootfs
        os.chmod(d, os.stat(d).st_mode | 0o055)
        d = os.path.dirname(d)
    rt("create", "-b", b.path, b.id, check=True)
    try:
        rt("start", b.id, check=True)
        init = init_pid(rt, b.id)
        pid = exec_detached(rt, tmp_path, b.id, "sleep", "1000")
        try:
            for ns in ("user", "mnt", "pid", "net"):
                assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
            assert proc_status(pid)["Uid"].split()[0] == "100000"
        finally:
            kill(pid)
        p = rt("exec", b.id, "id", "-u", check=True)
        assert p.out == "0\n"
    finally:
        rt("delete", "-f", b.id)


def test_cgroup_flag_places_the_process_in_a_sub_cgroup(rt, ctr, tmp_path):
    """--cgroup PATH (every hierarchy) and --cgroup CONTROLLER:PATH, repeatable, as runc's exec."""
    if "paths" not in rt.internal(ctr.id)["cgroup"]:
        pytest.skip("controller hierarchies of their own: cgroup v1 or hybrid only")
    paths = rt.internal(ctr.id)["cgroup"]["paths"]
    for d in set(paths.values()):
        os.mkdir(os.path.join(d, "sub"))
        for knob in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset child starts empty
            if os.path.exists(os.path.join(d, knob)):
                with open(os.path.join(d, knob)) as src, open(os.path.join(d, "sub", knob), "w") as dst:
                    dst.write(src.read())
    def exec_in(*flags: str) -> int:
        pid_file = tmp_path / f"exec-{time.monotonic_ns()}.pid"
        rt("exec", "-d", "--pid-file", str(pid_file), *flags, ctr.id, "sleep", "1000", check=True)
        return int(pid_file.read_text())

    pid = exec_in("--cgroup", "sub")
    try:
        assert all(ln.endswith(ctr.cgroup + "/sub") for ln in cgroup_lines(pid) if ctr.cgroup in ln)
    finally:
        kill(pid)
    pid = exec_in("--cgroup", "pids:sub", "--cgroup", "memory:sub")
    try:
        lines = {ln.split(":")[1]: ln.split(":", 2)[2] for ln in cgroup_lines(pid)}
        assert lines["pids"].endswith(ctr.cgroup + "/sub") and lines["memory"].endswith(ctr.cgroup + "/sub")
        assert lines["freezer"].endswith(ctr.cgroup)
    finally:
        kill(pid)


def test_pid_file_that_cannot_be_written_fails_exec_and_kills_the_process(rt, ctr, tmp_path):
    before = set(rt("ps", "--format", "json", ctr.id, check=True).out.split())
    p = rt("exec", "-d", "--pid-file", str(tmp_path / "missing" / "pid"), ctr.id, "sleep", "1000")
    assert p.returncode == 255 and p.err.startswith("ocirun: --pid-file ") and "no such file" in p.err, p.err
    assert "Traceback" not in p.err and "internal error" not in p.err
    time.sleep(0.2)
    assert set(rt("ps", "--format", "json", ctr.id, check=True).out.split()) == before
