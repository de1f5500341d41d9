"""podman (through conmon) driving the runtime with `--runtime <path>`, each scenario under ocirun and runc."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from .clientlib import IMAGE, Podman, wait_for

pytestmark = pytest.mark.clients

MEMORY_LIMIT = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
PIDS_LIMIT = "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"


def detached(podman: Podman, *flags: str, cmd: tuple[str, ...] = ("sleep", "1000")) -> str:
    """A running detached container's name."""
    name = podman.name()
    podman("run", "-d", "--name", name, *flags, IMAGE, *cmd, check=True)
    return name


def inspect(podman: Podman, name: str) -> dict:
    return json.loads(podman("inspect", name, check=True).out)[0]


def status(podman: Podman, name: str) -> str:
    return podman("inspect", "--format", "{{.State.Status}}", name, check=True).out.strip()


def test_run_rm(podman: Podman) -> None:
    """Output and the exit code come back; missing or non-executable commands map to 127 and 126."""
    r = podman("run", "--rm", IMAGE, "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert r.returncode == 3 and r.out == "hello\n" and "oops" in r.err, r
    r = podman("run", "--rm", IMAGE, "true")
    assert r.returncode == 0, r
    r = podman("run", "--rm", IMAGE, "no-such-command")
    assert r.returncode == 127, r
    r = podman("run", "--rm", IMAGE, "/etc/passwd")
    assert r.returncode == 126, r


def test_stdin(podman: Podman) -> None:
    """-i: conmon relays stdin to the container's init (the runtime leaves stdio to it)."""
    r = podman("run", "--rm", "-i", IMAGE, "sh", "-c", "cat; echo done", stdin=b"line one\nline two\n")
    assert r.returncode == 0 and r.out == "line one\nline two\ndone\n", r


def test_device_and_privileged(podman: Podman) -> None:
    """--device and --privileged hand the host's st_mode (file type included) in linux.devices[].fileMode.

    The container sees the host node's own mode and numbers (podman copies them), whatever they are here."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this host")
    st = os.stat("/dev/fuse")
    want = f"character special file {os.major(st.st_rdev):x}:{os.minor(st.st_rdev):x} {stat.S_IMODE(st.st_mode):o}\n"
    r = podman("run", "--rm", "--device", "/dev/fuse", IMAGE, "stat", "-c", "%F %t:%T %a", "/dev/fuse")
    assert r.returncode == 0 and r.out == want, r
    r = podman("run", "--rm", "--privileged", IMAGE, "sh", "-c", "test -c /dev/fuse && grep CapEff /proc/self/status")
    assert r.returncode == 0 and r.out.split()[1] != "0000000000000000", r


def test_environment(podman: Podman) -> None:
    """--env/--workdir apply; conmon's _OCI_SYNCPIPE/_OCI_STARTPIPE stay out of the container."""
    r = podman("run", "--rm", "--env", "FOO=bar baz", "--workdir", "/tmp", IMAGE, "sh", "-c", 'echo "$FOO"; pwd; env')
    assert r.returncode == 0, r
    lines = r.out.splitlines()
    assert lines[:2] == ["bar baz", "/tmp"], r
    assert not [ln for ln in lines if ln.startswith("_OCI_")], r


def test_detach_stop(podman: Podman) -> None:
    """-d then stop: SIGTERM reaches a trapping init (its exit code kept); a deaf one is killed after -t."""
    name = detached(podman, cmd=("sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"))
    assert status(podman, name) == "running"
    podman("stop", "--time", "20", name, check=True)
    st = inspect(podman, name)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 7, st
    name = detached(podman)
    podman("stop", "--time", "1", name, check=True)
    assert inspect(podman, name)["State"]["ExitCode"] == 137


def test_exec(podman: Podman) -> None:
    """exec: output, exit code, --env/--workdir/--user, and 127 for a missing command."""
    name = detached(podman)
    r = podman("exec", name, "sh", "-c", "echo in; exit 5")
    assert r.returncode == 5 and r.out == "in\n", r
    r = podman("exec", "--env", "A=1", "--workdir", "/tmp", "--user", "65534:65534", name,
               "sh", "-c", 'echo "$A $(pwd) $(id -u):$(id -g)"')
    assert r.returncode == 0 and r.out == "1 /tmp 65534:65534\n", r
    r = podman("exec", name, "no-such-command")
    assert r.returncode == 127, r
    r = podman("exec", "-d", name, "sleep", "1000")
    assert r.returncode == 0, r
    top = podman("top", name, "args").out
    assert top.count("sleep 1000") == 2, top


def test_tty(podman: Podman) -> None:
    """-t gives the container a pty on stdio, for run and for exec."""
    r = podman("run", "--rm", "-t", IMAGE, "sh", "-c", "tty; test -t 1 && echo is-a-tty")
    assert r.returncode == 0 and "/dev/pts/" in r.out and "is-a-tty" in r.out, r
    name = detached(podman)
    r = podman("exec", "-t", name, "sh", "-c", "test -t 1 && echo is-a-tty")
    assert r.returncode == 0 and "is-a-tty" in r.out, r


def test_memory_pids_limit(podman: Podman) -> None:
    """--memory and --pids-limit land in the container's cgroup, as the container sees it."""
    r = podman("run", "--rm", "--memory", "64m", "--pids-limit", "10", IMAGE, "sh", "-c",
               f"{MEMORY_LIMIT}; {PIDS_LIMIT}")
    assert r.returncode == 0 and r.out.split() == ["67108864", "10"], r


def test_user(podman: Podman) -> None:
    r = podman("run", "--rm", "--user", "65534:65534", IMAGE, "sh", "-c", "id -u; id -g")
    assert r.returncode == 0 and r.out.split() == ["65534", "65534"], r


def test_read_only(podman: Podman) -> None:
    """--read-only: / refuses writes, the tmpfs podman puts on /tmp (tmpcopyup) accepts them."""
    r = podman("run", "--rm", "--read-only", IMAGE, "sh", "-c", "touch /tmp/x && echo tmp-ok; touch /x")
    assert r.returncode == 1 and "tmp-ok" in r.out and "Read-only file system" in r.err, r


def test_cap_drop_all(podman: Podman) -> None:
    r = podman("run", "--rm", "--cap-drop", "ALL", IMAGE, "grep", "-E", "^Cap(Eff|Prm|Bnd)", "/proc/self/status")
    assert r.returncode == 0, r
    assert [ln.split()[1] for ln in r.out.splitlines()] == ["0000000000000000"] * 3, r


def test_pause_unpause(podman: Podman) -> None:
    name = detached(podman)
    podman("pause", name, check=True)
    assert status(podman, name) == "paused"
    podman("unpause", name, check=True)
    assert status(podman, name) == "running"
    assert podman("exec", name, "true").returncode == 0


def test_logs(podman: Podman) -> None:
    name = detached(podman, cmd=("sh", "-c", "echo to-stdout; echo to-stderr >&2"))
    assert podman("wait", name, check=True).out.strip() == "0"
    r = podman("logs", name, check=True)
    assert "to-stdout" in r.out and "to-stderr" in r.err, r


def test_inspect_and_state(podman: Podman) -> None:
    """podman's view (inspect) matches the runtime's own `state` for the same container."""
    name = detached(podman)
    info = inspect(podman, name)
    st = info["State"]
    assert st["Running"] and st["Pid"] > 0 and os.path.exists(f"/proc/{st['Pid']}"), st
    assert info["OCIRuntime"] in (podman.runtime, podman.runtime_name), info["OCIRuntime"]
    p = subprocess.run([podman.runtime, "state", info["Id"]], capture_output=True, text=True, timeout=30)
    state = json.loads(p.stdout)
    assert state["pid"] == st["Pid"] and state["status"] == "running" and state["id"] == info["Id"], state


def test_stats_and_kill(podman: Podman) -> None:
    """stats reads the container's cgroup files; kill delivers the signal (exit 137 for KILL)."""
    name = detached(podman)
    r = podman("stats", "--no-stream", "--format", "{{.PIDs}} {{.MemUsage}}", name)
    assert r.returncode == 0 and r.out.split()[0] == "1", r
    podman("kill", name, check=True)
    wait_for(lambda: status(podman, name) == "exited", what=f"{name} to exit")
    assert inspect(podman, name)["State"]["ExitCode"] == 137


def test_cgroups_disabled(podman: Podman) -> None:
    """--cgroups=disabled: podman passes crun's `--cgroup-manager disabled`; the container gets no cgroup of
    its own (it stays in conmon's)."""
    name = podman.name()
    path = podman.runtime
    if podman.runtime_name == "ocirun":
        podman.runtime = "ocirun"  # by its name in containers.conf, the one runtime_supports_nocgroup lists
    try:
        r = podman("run", "-d", "--name", name, "--cgroups=disabled", IMAGE, "sleep", "1000")
    finally:
        podman.runtime = path
    if podman.runtime_name == "runc" and r.returncode != 0:
        pytest.skip(f"podman refuses --cgroups=disabled with runc: {r.err.strip()}")
    assert r.returncode == 0, r
    pid = inspect(podman, name)["State"]["Pid"]
    conmon = inspect(podman, name)["State"]["ConmonPid"]
    with open(f"/proc/{pid}/cgroup") as f, open(f"/proc/{conmon}/cgroup") as g:
        assert f.read() == g.read()
    r = podman("exec", name, "echo", "in")
    assert r.returncode == 0 and r.out == "in\n", r
    podman("rm", "-f", name, check=True)


@pytest.mark.parametrize("mode", ["container", "conmon"])
def test_sdnotify(podman: Podman, mode: str) -> None:
    """--sdnotify=container: podman binds conmon's proxy socket on /run/notify and sets NOTIFY_SOCKET in the
    config (it unsets its own for the runtime); the container's READY=1 reaches podman's NOTIFY_SOCKET.
    --sdnotify=conmon: conmon says READY=1 itself once the container runs (and `start` must not wait)."""
    import socket
    import sys
    import tempfile
    import time

    sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
    from sidebyside import SDNOTIFY_C, static_program

    helper = static_program("sdnotify", SDNOTIFY_C)
    d = tempfile.mkdtemp(prefix="ocirun-ntf-", dir="/tmp")
    host = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    host.bind(f"{d}/notify.sock")
    host.settimeout(30)
    saved = podman.env
    podman.env = dict(saved, NOTIFY_SOCKET=f"{d}/notify.sock")
    try:
        name = podman.name()
        script = 'sdnotify "STATUS=up" && sdnotify READY=1 && exec sleep 1000' if mode == "container" else "sleep 1000"
        r = podman("run", "-d", "--name", name, f"--sdnotify={mode}", "-v", f"{helper}:/bin/sdnotify:ro", IMAGE,
                   "sh", "-c", script, timeout=60)
        assert r.returncode == 0, r
        lines: list[str] = []
        end = time.monotonic() + 30
        while "READY=1" not in lines and time.monotonic() < end:
            lines += [ln for ln in host.recv(4096).decode().split("\n") if ln]
        assert "READY=1" in lines, lines  # (conmon sends its own MAINPID, in its own datagram)
        assert status(podman, name) == "running"
    finally:
        podman.env = saved
        host.close()
        import shutil

        shutil.rmtree(d, ignore_errors=True)
