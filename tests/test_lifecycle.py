"""The runtime.md state machine on real containers, checked from outside (/proc) and inside."""

from __future__ import annotations

import os
import time

from ocitest import ns_inode, wait_stopped

from ocirun.state import proc_stat


def gone(pid: int) -> bool:
    st = proc_stat(pid)
    return st is None or st[0] == "Z"


def test_run_prints_and_exits_with_status(rt, bundle):
    b = bundle(["sh", "-c", "echo inside pid $$; exit 3"])
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 3, p.err
    assert p.out == "inside pid 1\n"
    assert rt("state", b.id).returncode == 1  # run deletes the container after


def test_create_start_kill_delete(rt, bundle):
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    st = rt.state(b.id)
    assert st["status"] == "created" and st["id"] == b.id and st["bundle"] == b.path
    pid = st["pid"]
    for ns in ("pid", "mnt", "net", "ipc", "uts"):
        assert ns_inode(pid, ns) != ns_inode("self", ns), ns
    # Until start the init waits: the user's program has not been executed yet.
    assert os.readlink(f"/proc/{pid}/exe") != os.path.join(b.rootfs, "bin/busybox")
    rt("start", b.id, check=True)
    assert rt.state(b.id)["status"] == "running"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read() == b"sleep\x001000\x00"
    rt("kill", b.id, "KILL", check=True)
    wait_stopped(rt, b.id)
    st = rt.state(b.id)
    assert st["status"] == "stopped" and st["pid"] == 0
    rt("delete", b.id, check=True)
    p = rt("state", b.id)
    assert p.returncode == 1 and "does not exist" in p.err


def test_state_machine_errors(rt, bundle):
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1 and "already exists" in p.err
    rt("start", b.id, check=True)
    p = rt("start", b.id)
    assert p.returncode == 1 and "running" in p.err
    p = rt("delete", b.id)
    assert p.returncode == 1 and "not stopped" in p.err
    assert rt.state(b.id)["status"] == "running"  # the failed delete had no effect
    rt("kill", b.id, "SIGKILL", check=True)
    wait_stopped(rt, b.id)
    p = rt("kill", b.id, "TERM")
    assert p.returncode == 1 and "container not running" in p.err
    p = rt("start", b.id)
    assert p.returncode == 1 and "stopped" in p.err
    rt("delete", b.id, check=True)


def test_unknown_container(rt):
    for cmd in (["state", "nosuch"], ["start", "nosuch"], ["kill", "nosuch", "9"], ["delete", "nosuch"]):
        p = rt(*cmd)
        assert p.returncode == 1, cmd
        assert p.err.startswith("ocirun: ") and "does not exist" in p.err, (cmd, p.err)
        assert "Traceback" not in p.err


def test_kill_signal_forms(rt, bundle):
    b = bundle(["sh", "-c", "trap 'echo got USR1 > /tmp/sig' USR1; while :; do sleep 0.05; done"], readonly=False)
    rt("create", "-b", b.path, b.id, check=True)
    rt("start", b.id, check=True)
    time.sleep(0.3)
    rt("kill", b.id, "USR1", check=True)
    deadline = time.monotonic() + 5
    while not os.path.exists(os.path.join(b.rootfs, "tmp/sig")) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(os.path.join(b.rootfs, "tmp/sig")) as f:
        assert f.read() == "got USR1\n"
    p = rt("kill", b.id, "NOSUCHSIG")
    assert p.returncode == 1 and "unknown signal" in p.err
    rt("kill", b.id, "9", check=True)
    wait_stopped(rt, b.id)
    rt("delete", b.id, check=True)


def test_delete_force_running(rt, bundle):
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    rt("delete", "--force", b.id, check=True)
    assert gone(pid)
    assert not os.path.exists(os.path.join(rt.root, b.id))


def test_delete_created_container(rt, bundle):
    """runc deletes a created (never started) container without --force; containerd relies on it."""
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    rt("delete", b.id, check=True)
    assert gone(pid)


def test_pid_file_and_list(rt, bundle, tmp_path):
    b = bundle(["sleep", "1000"])
    pidfile = tmp_path / "init.pid"
    rt("create", "-b", b.path, "--pid-file", str(pidfile), b.id, check=True)
    assert int(pidfile.read_text()) == rt.state(b.id)["pid"]
    import json

    rows = json.loads(rt("list", "--format", "json", check=True).out)
    assert [(r["id"], r["status"]) for r in rows] == [(b.id, "created")]
    table = rt("list", check=True).out.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"] and table[1].split()[0] == b.id
    assert rt("list", "-q", check=True).out == b.id + "\n"
    rt("delete", "-f", b.id, check=True)
    assert rt("list", "--format", "json", check=True).out.strip() == "null"


def test_pid_reuse_is_not_the_container(rt, bundle):
    """A stale state.json whose pid now belongs to another process reads as stopped."""
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    import json

    path = os.path.join(rt.root, b.id, "state.json")
    with open(path) as f:
        data = json.load(f)
    data["pid"] = os.getpid()  # a live process, but not the container's init
    with open(path, "w") as f:
        json.dump(data, f)
    assert rt.state(b.id)["status"] == "stopped"
    p = rt("kill", b.id, "KILL")
    assert p.returncode == 1  # never signals the impostor
    rt("delete", "-f", b.id)


def test_dry_run_prints_plan_and_changes_nothing(rt, bundle):
    b = bundle(["sh", "-c", "true"])
    p = rt("create", "--dry-run", "-b", b.path, b.id, check=True)
    lines = p.out.splitlines()
    assert lines[0].startswith("0. clone flags=") and "pid" in lines[0] and "mount" in lines[0]
    ops = [ln.split()[1] for ln in lines[1:]]
    for op in ("rootfs", "mount", "pivot", "caps_bounding", "setuid", "exec"):
        assert op in ops, op
    assert ops[-1] == "exec" and ops.index("pivot") < ops.index("exec")
    assert all(ln.split(".")[0] == str(i) for i, ln in enumerate(lines))
    assert not os.path.exists(os.path.join(rt.root, b.id))


def test_version_and_help():
    import subprocess

    from ocitest import ocirun_cmd

    p = subprocess.run([*ocirun_cmd(), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("ocirun version ") and "\nspec: 1." in p.stdout
    p = subprocess.run([*ocirun_cmd(), "nosuchcmd"], capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.startswith("ocirun: ")


def test_delete_force_missing_container(rt):
    """runc's contract: `delete --force` of a container that does not exist succeeds silently (podman cleanup)."""
    p = rt("delete", "--force", "nosuch")
    assert p.returncode == 0 and p.err == "", p.err


def test_run_forwards_signals(rt, bundle):
    """Foreground `run` passes signals on to the container and exits with its status."""
    import signal
    import subprocess

    from ocitest import ocirun_cmd

    b = bundle(["sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done"])
    p = subprocess.Popen([*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 7
    assert rt("state", b.id).returncode == 1  # deleted after


def test_created_reads_as_running_once_the_start_socket_is_gone(tmp_path):
    """start does not rewrite state.json: the init's notify.sock (removed by start) tells created from
    running, as runc's exec.fifo does; state files without the socket's path keep their stored status."""
    from ocirun import state

    sock = tmp_path / "notify.sock"
    sock.write_text("")
    me = {"id": "me", "pid": os.getpid(), "start_time": state.proc_stat(os.getpid())[1], "status": "created",
          "notify": str(sock)}

    def status(d: dict) -> str:
        return state.ContainerState.from_json(d, "state.json").current_status()

    assert status(me) == "created"
    sock.unlink()
    assert status(me) == "running"
    assert status({**me, "notify": None}) == "created"
    assert status({**me, "start_time": me["start_time"] + 1}) == "stopped"  # a reused pid
