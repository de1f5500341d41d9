"""NOTIFY_SOCKET (sd_notify) through the runtime, as runc's notify_socket.go: with NOTIFY_SOCKET in the
runtime's environment the container gets /run/notify/notify.sock, and `start`/`run` relay its READY= (with
MAINPID) to the host's socket, waiting for it. Each scenario runs under ocirun and (when installed) runc,
with a real datagram listener as the host's NOTIFY_SOCKET and a static sd_notify sender in the container."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time

import pytest
from sidebyside import SDNOTIFY_C, install, static_program


class Listener:
    """The host's NOTIFY_SOCKET: collects datagrams (closing the fds they carry: a barrier's acknowledgement)."""

    def __init__(self, abstract: bool = False) -> None:
        self.dir = tempfile.mkdtemp(prefix="ocirun-ntf-", dir="/tmp")  # short: sun_path has 108 bytes
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.name = "@" + os.path.basename(self.dir)
            self.sock.bind("\0" + self.name[1:])
        else:
            self.name = os.path.join(self.dir, "notify.sock")
            self.sock.bind(self.name)
        self.sock.settimeout(0.2)
        self.messages: list[bytes] = []
        self.fds = 0
        self._seq = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
            except TimeoutError:
                continue
            except OSError:
                return
            for _, _, data in anc:
                for i in range(0, len(data) - len(data) % 4, 4):
                    os.close(int.from_bytes(data[i:i + 4], "little"))
                    self.fds += 1
            self.messages.append(msg)

    def lines(self) -> list[str]:
        """Every line received so far, once the thread has taken in all that was sent before this call: a
        marker sent to ourselves comes out of the (FIFO) socket after them. No barrier in runc 1.1's relay
        means its last datagram may still be queued when `start` returns."""
        self._seq += 1
        marker = f"__listener_sync_{self._seq}".encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.sendto(marker, "\0" + self.name[1:] if self.name.startswith("@") else self.name)
        end = time.monotonic() + 20
        while marker not in self.messages:
            if time.monotonic() > end:
                raise AssertionError("the listener thread took no datagram for 20 s")
            time.sleep(0.005)
        return [ln for m in self.messages if not m.startswith(b"__listener_sync_")
                for ln in m.decode().split("\n") if ln]

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def notify_env(lst: Listener) -> dict[str, str]:
    return dict(os.environ, NOTIFY_SOCKET=lst.name)


def sd_bundle(bundle, script: str, **kw):  # noqa: ANN001, ANN201
    b = bundle(["sh", "-c", script], **kw)
    install(static_program("sdnotify", SDNOTIFY_C), b.rootfs)
    return b


def wait_until(cond, what: str, timeout: float = 20) -> None:  # noqa: ANN001
    """Poll for a condition; the timeout only bounds a hang."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def init_pid(runtime, cid: str) -> int:  # noqa: ANN001
    import json

    return json.loads(runtime("state", cid, check=True).out)["pid"]


@pytest.mark.parametrize("uid", [0, 1000])
def test_start_relays_ready_with_the_init_as_mainpid(runtime, bundle, listener, uid):
    """create + start with NOTIFY_SOCKET: the process has NOTIFY_SOCKET=/run/notify/notify.sock on a read-only
    bind mount; start relays READY=1 and MAINPID=<the init's host pid>. ocirun also passes on the state lines
    sent before READY and ends with sd_notify_barrier (BARRIER=1 with an fd the listener closes), as runc
    does since 1.2; runc 1.1 relays READY alone."""
    b = sd_bundle(bundle, "sdnotify STATUS=booting && sdnotify READY=1 && exec sleep 1000")
    b.spec["process"]["user"] = {"uid": uid, "gid": uid}
    b.write()
    env = notify_env(listener)
    runtime("create", "-b", b.path, b.id, env=env, check=True)
    pid = init_pid(runtime, b.id)
    runtime("start", b.id, env=env, check=True)
    lines = listener.lines()
    assert "READY=1" in lines and f"MAINPID={pid}" in lines, (runtime.name, lines)
    if runtime.name == "ocirun":
        assert lines == ["STATUS=booting", "READY=1", f"MAINPID={pid}", "BARRIER=1"] and listener.fds == 1
    with open(f"/proc/{pid}/environ", "rb") as f:
        assert b"NOTIFY_SOCKET=/run/notify/notify.sock" in f.read().split(b"\0")
    with open(f"/proc/{pid}/mountinfo") as f:
        opts = [ln.split()[5] for ln in f if ln.split()[4] == "/run/notify"]
    assert opts and "ro" in opts[0].split(","), opts
    runtime("delete", "--force", b.id, check=True)


def test_start_waits_for_ready(runtime, bundle, listener):
    """start returns only once the container says READY (here: after the test lets it)."""
    b = sd_bundle(bundle, "while [ ! -e /tmp/go ]; do sleep 0.05; done; sdnotify READY=1; exec sleep 1000",
                  readonly=False)
    env = notify_env(listener)
    runtime("create", "-b", b.path, b.id, env=env, check=True)
    p = runtime.popen("start", b.id, env=env)
    try:
        wait_until(lambda: runtime("state", b.id).out.count('"running"') == 1, "the process to run")
        time.sleep(0.5)  # not a timing assertion: start must still be waiting however long this takes
        assert p.poll() is None and not listener.lines()
        open(os.path.join(b.rootfs, "tmp/go"), "w").close()
        p.communicate(timeout=20)
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "READY=1" in listener.lines()
    runtime("delete", "--force", b.id, check=True)


def test_start_returns_when_the_container_exits_without_ready(runtime, bundle, listener):
    b = sd_bundle(bundle, "exit 0")
    env = notify_env(listener)
    runtime("create", "-b", b.path, b.id, env=env, check=True)
    runtime("start", b.id, env=env, check=True, timeout=20)
    assert not listener.lines()
    runtime("delete", "--force", b.id, check=True)


@pytest.mark.parametrize("detach", [True, False])
def test_run_relays_ready(runtime, bundle, listener, detach):
    """`run -d`: MAINPID is the container's init; `run` in the foreground: the runtime itself, which stays to
    the end (runc)."""
    if detach:
        b = sd_bundle(bundle, "sdnotify READY=1 && exec sleep 1000")
        runtime("run", "-d", "-b", b.path, b.id, env=notify_env(listener), check=True)
        want = init_pid(runtime, b.id)
        runtime("delete", "--force", b.id, check=True)
    else:
        b = sd_bundle(bundle, "sdnotify READY=1 && while [ ! -e /tmp/stop ]; do sleep 0.05; done", readonly=False)
        p = runtime.popen("run", "-b", b.path, b.id, env=notify_env(listener))
        try:
            wait_until(lambda: "READY=1" in listener.lines(), "READY")
            want = p.pid
            open(os.path.join(b.rootfs, "tmp/stop"), "w").close()
            p.communicate(timeout=20)
            assert p.returncode == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    wait_until(lambda: any(ln.startswith("MAINPID=") for ln in listener.lines()), "MAINPID")
    assert f"MAINPID={want}" in listener.lines(), listener.lines()


def test_without_notify_socket_nothing_is_added(runtime, bundle):
    b = bundle(["sh", "-c", 'echo "[$NOTIFY_SOCKET]"; grep -c " /run/notify " /proc/self/mountinfo'])
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    p = runtime("run", "-b", b.path, b.id, env=env)
    assert p.out.split() == ["[]", "0"], (runtime.name, p.out, p.err)


def test_notify_socket_replaces_the_configs_own(runtime, bundle, listener):
    b = sd_bundle(bundle, 'echo "$NOTIFY_SOCKET"; sdnotify READY=1')
    b.spec["process"]["env"].append("NOTIFY_SOCKET=/somewhere/else")
    b.write()
    p = runtime("run", "-b", b.path, b.id, env=notify_env(listener), check=True)
    assert p.out == "/run/notify/notify.sock\n"
    wait_until(lambda: "READY=1" in listener.lines(), "READY")


def test_abstract_host_socket(runtime, bundle):
    """NOTIFY_SOCKET=@name (systemd may hand out an abstract socket)."""
    lst = Listener(abstract=True)
    try:
        b = sd_bundle(bundle, "sdnotify READY=1 && exec sleep 1000")
        runtime("run", "-d", "-b", b.path, b.id, env=notify_env(lst), check=True)
        wait_until(lambda: "READY=1" in lst.lines(), "READY")
        runtime("delete", "--force", b.id, check=True)
    finally:
        lst.close()


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
def test_unreachable_notify_socket_fails_start_before_the_process_runs(runtime, bundle, listener):
    """The host socket is connected before the process starts: a bad NOTIFY_SOCKET is one clear error and the
    container stays created (runc starts the process, then fails)."""
    b = sd_bundle(bundle, "touch /tmp/ran; sdnotify READY=1", readonly=False)
    runtime("create", "-b", b.path, b.id, env=notify_env(listener), check=True)
    p = runtime("start", b.id, env=dict(os.environ, NOTIFY_SOCKET="/nonexistent/notify.sock"))
    assert p.returncode == 1
    assert p.err == "ocirun: NOTIFY_SOCKET /nonexistent/notify.sock: no such file or directory\n", p.err
    assert '"created"' in runtime("state", b.id).out and not os.path.exists(os.path.join(b.rootfs, "tmp/ran"))
    runtime("start", b.id, env=notify_env(listener), check=True)  # and it can still be started
    assert "READY=1" in listener.lines()
    runtime("delete", "--force", b.id, check=True)


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
def test_long_root_path(runtime, bundle, listener, tmp_path):
    """The container's socket is bound through its directory's fd: a --root deeper than sun_path's 108 bytes
    still works (runc fails to bind there)."""
    runtime.root = str(tmp_path / ("r" * 60) / ("o" * 60))
    b = sd_bundle(bundle, "sdnotify READY=1")
    runtime("run", "-b", b.path, b.id, env=notify_env(listener), check=True)
    assert "READY=1" in listener.lines()


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
def test_failed_create_with_notify_socket_leaves_nothing(runtime, bundle, listener):
    b = bundle(["no-such-program"])
    p = runtime("create", "-b", b.path, b.id, env=notify_env(listener))
    assert p.returncode != 0 and "no-such-program" in p.err
    assert runtime.containers() == []


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
def test_start_without_notify_socket_does_not_relay(runtime, bundle, listener):
    """Created with NOTIFY_SOCKET, started without: nothing listens on /run/notify/notify.sock (as runc)."""
    b = sd_bundle(bundle, "sdnotify READY=1; echo rc=$?; exec sleep 1000")
    runtime("create", "-b", b.path, b.id, env=notify_env(listener), check=True)
    runtime("start", b.id, env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}, check=True)
    runtime("delete", "--force", b.id, check=True)
    assert not listener.lines()


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
def test_run_with_a_terminal_relays_both(runtime, bundle, listener, monkeypatch):
    """`run` relaying a terminal waits for READY beside the pty relay: output flows before and after READY."""
    from test_tty import pty_run

    b = sd_bundle(bundle, "echo before; sdnotify READY=1; echo after; exit 3", terminal=True)
    monkeypatch.setenv("NOTIFY_SOCKET", listener.name)
    out, status = pty_run([*runtime.argv, "run", "-b", b.path, b.id])
    assert status == 3 and out.replace(b"\r\n", b"\n") == b"before\nafter\n", out
    wait_until(lambda: "BARRIER=1" in listener.lines(), "the relay")
    assert listener.lines()[0] == "READY=1" and listener.lines()[1].startswith("MAINPID=")


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
@pytest.mark.parametrize("detach", [True, False])
def test_run_with_unreachable_notify_socket_fails_cleanly(runtime, bundle, detach):
    """`run` fails before the process starts, and nothing is left (state, cgroup, mounts: the fixtures check)."""
    b = sd_bundle(bundle, "touch /tmp/ran", readonly=False)
    p = runtime("run", *(["-d"] if detach else []), "-b", b.path, b.id,
                env=dict(os.environ, NOTIFY_SOCKET="/nonexistent/notify.sock"), timeout=20)
    assert p.returncode == 1 and "NOTIFY_SOCKET /nonexistent/notify.sock: no such file or directory" in p.err
    assert not os.path.exists(os.path.join(b.rootfs, "tmp/ran")) and runtime.containers() == []


def test_exec_does_not_get_the_notify_socket(runtime, bundle, listener):
    """Only the container's process has NOTIFY_SOCKET: an exec'd one starts from config.json's env (runc reads
    the bundle's), and nobody listens once the container is ready."""
    b = sd_bundle(bundle, "sdnotify READY=1 && exec sleep 1000")
    runtime("run", "-d", "-b", b.path, b.id, env=notify_env(listener), check=True)
    p = runtime("exec", b.id, "sh", "-c", 'echo "$NOTIFY_SOCKET"')
    runtime("delete", "--force", b.id, check=True)
    assert p.out == "\n", (runtime.name, p.out, p.err)
