"""linux.seccomp on real containers: the actions behave inside, and the notify fd reaches the listener."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest


def profile(default: str = "SCMP_ACT_ALLOW", **kw: object) -> dict:
    p = {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}
    p.update(kw)
    return p


def test_errno_action(rt, bundle):
    b = bundle(["sh", "-c", "mkdir /tmp/d 2>&1; echo rc=$?"], readonly=False)
    b.spec["linux"]["seccomp"] = profile(syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}])
    b.write()
    out = rt("run", "-b", b.path, b.id).out
    assert "Permission denied" in out and "rc=1" in out
    assert not os.path.exists(os.path.join(b.rootfs, "tmp/d"))


def test_default_errno_denies_exec(rt, bundle):
    """Deny by default with an allow list that lacks execve: the filter is loaded just before execve (no new
    privileges), so `start` reports the denied execve with its errno text."""
    b = bundle(["sh", "-c", "echo ok"])
    allow = ["write", "exit_group", "exit", "close", "read", "rt_sigreturn"]
    b.spec["linux"]["seccomp"] = profile(default="SCMP_ACT_ERRNO", defaultErrnoRet=1, syscalls=[
        {"names": allow, "action": "SCMP_ACT_ALLOW"}])
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 1 and "ok" not in p.out
    assert 'exec: "sh"' in p.err and "operation not permitted" in p.err.lower(), p.err


def test_argument_filter(rt, bundle):
    """args: the rule applies only when the argument matches (here: kill(…, SIGUSR1) is refused)."""
    b = bundle(["sh", "-c", "kill -USR1 $$ 2>&1; echo rc=$?; trap 'echo got' USR2; kill -USR2 $$; echo rc=$?"])
    b.spec["linux"]["seccomp"] = profile(syscalls=[
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}])
    b.write()
    out = rt("run", "-b", b.path, b.id).out.split("\n")
    assert "rc=1" in out[1] and out[2:4] == ["got", "rc=0"], out


def test_kill_action(rt, bundle):
    b = bundle(["mkdir", "/tmp/d"], readonly=False)
    b.spec["linux"]["seccomp"] = profile(syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}])
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 128 + 31  # SIGSYS
    assert not os.path.exists(os.path.join(b.rootfs, "tmp/d"))


def test_filter_visible_in_status(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["seccomp"] = profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}])
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    with open(f"/proc/{rt.state(b.id)['pid']}/status") as f:
        st = dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)
    assert st["Seccomp"] == "2" and st["Seccomp_filters"] == "1"
    rt("delete", "-f", b.id, check=True)


def test_unknown_action_is_an_error(rt, bundle):
    b = bundle(["true"])
    b.spec["linux"]["seccomp"] = profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}])
    b.write()
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1 and "linux.seccomp.syscalls[0].action" in p.err and "SCMP_ACT_NOPE" in p.err


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_fd_reaches_the_listener(rt, bundle, tmp_path, nnp):
    """SCMP_ACT_NOTIFY: the runtime connects to listenerPath and sends the notify fd plus the container state
    (runc's protocol); the listener answers the intercepted syscall. Without noNewPrivileges the filter is
    loaded while the init still has CAP_SYS_ADMIN (after the drop the kernel refuses it: EACCES)."""
    sock_path = str(tmp_path / "listener.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    got: dict = {}

    srv.settimeout(30)  # a create that never connects fails the test instead of hanging it

    def serve() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        got["msg"] = json.loads(msg)
        fds = [int.from_bytes(data[i:i + 4], "little") for _, _, data in anc for i in range(0, len(data), 4)]
        got["fds"] = fds
        for fd in fds:
            os.close(fd)  # closing the listener makes the pending syscall fail with ENOSYS
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    b = bundle(["sh", "-c", "mkdir /tmp/d 2>&1; echo rc=$?"], readonly=False)
    b.spec["process"]["noNewPrivileges"] = nnp
    b.spec["linux"]["seccomp"] = profile(listenerPath=sock_path, listenerMetadata="meta1", syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}])
    b.write()
    try:
        p = rt("run", "-b", b.path, b.id, timeout=30)
    finally:
        t.join(10)
        srv.close()
    assert p.returncode == 0, p.err
    assert len(got.get("fds", ())) == 1
    m = got["msg"]
    assert m["fds"] == ["seccompFd"] and m["metadata"] == "meta1" and m["state"]["id"] == b.id and m["pid"] > 0
    assert "rc=1" in p.out


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_fd_of_an_exec_reaches_the_listener(rt, bundle, tmp_path, nnp):
    """exec into a container with a notify profile: the exec'd process's own listener fd goes to listenerPath
    too (status running), with or without noNewPrivileges."""
    sock_path = str(tmp_path / "listener.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(2)
    srv.settimeout(30)
    got: list = []

    def serve() -> None:
        while len(got) < 2:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
            for _, _, data in anc:
                for i in range(0, len(data), 4):
                    os.close(int.from_bytes(data[i:i + 4], "little"))
            got.append(json.loads(msg))
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    b = bundle(["sleep", "1000"], readonly=False)
    b.spec["process"]["noNewPrivileges"] = nnp
    b.spec["linux"]["seccomp"] = profile(listenerPath=sock_path, syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}])
    b.write()
    try:
        rt("run", "-d", "-b", b.path, b.id, check=True)
        p = rt("exec", b.id, "sh", "-c", "mkdir /tmp/e 2>&1; echo rc=$?")
        rt("delete", "-f", b.id, check=True)
    finally:
        t.join(10)
        srv.close()
    assert p.returncode == 0 and "rc=1" in p.out, p.err
    assert [m["state"]["status"] for m in got] == ["creating", "running"]
    assert not os.path.exists(os.path.join(b.rootfs, "tmp/e"))


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
def test_flags(rt, bundle, flag):
    b = bundle(["true"])
    b.spec["linux"]["seccomp"] = profile(flags=[flag], syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_LOG"}])
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err


def test_profile_without_getcwd_or_openat2(rt, bundle):
    """A filter loaded before the user switch (noNewPrivileges false) may forbid getcwd/openat2: the cwd is
    resolved before it and entered with fchdir (runtime-tools linux_seccomp; runc fails it)."""
    b = bundle(["sh", "-c", "cd .; echo started"])
    b.spec["process"]["noNewPrivileges"] = False
    b.spec["process"]["cwd"] = "/tmp"
    b.spec["linux"]["seccomp"] = profile(syscalls=[{"names": ["getcwd", "openat2"], "action": "SCMP_ACT_ERRNO"}])
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.out == "started\n", p.err


def test_trap_action_raises_sigsys(rt, bundle):
    b = bundle(["mkdir", "/tmp/d"], readonly=False)
    b.spec["linux"]["seccomp"] = profile(syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRAP"}])
    b.write()
    assert rt("run", "-b", b.path, b.id).returncode == 128 + 31


def test_log_action_allows_the_call(rt, bundle):
    b = bundle(["mkdir", "/tmp/d"], readonly=False)
    b.spec["linux"]["seccomp"] = profile(default="SCMP_ACT_ALLOW",
                                         syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}])
    b.write()
    assert rt("run", "-b", b.path, b.id).returncode == 0
    assert os.path.isdir(os.path.join(b.rootfs, "tmp/d"))


SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif): 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


def agent(fd: int, seen: list[int], refuse: dict[int, int]) -> None:
    """A seccomp agent: answer every notification on the listener fd, refusing the numbers in `refuse` with
    their errno and letting the rest continue, until the filtered processes are gone."""
    import fcntl
    import select
    import struct

    p = select.poll()
    p.register(fd, select.POLLIN)
    try:
        while True:
            events = p.poll(30000)
            if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
                return
            buf = bytearray(80)
            try:
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
            except OSError:
                continue  # the notifying thread died meanwhile
            nid, _pid, _flags, nr = struct.unpack_from("=QIIi", buf)
            seen.append(nr)
            if nr in refuse:
                resp = struct.pack("=QqiI", nid, 0, -refuse[nr], 0)
            else:
                resp = struct.pack("=QqiI", nid, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
            try:
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(resp))
            except OSError:
                pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_on_sendmsg_does_not_hang_the_init(rt, bundle, tmp_path, nnp):
    """A profile may notify sendmsg (runc >= 1.2 allows it): the init hands its listener fd over with write(2)
    and the runtime takes it with pidfd_getfd, so the init's own sendmsg calls after that reach the agent
    instead of waiting forever. The agent sees them, lets them continue, and refuses mkdir with EXDEV."""
    import errno

    import pyseccomp

    sock_path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    srv.settimeout(30)
    seen: list[int] = []
    names = {n: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, n) for n in ("sendmsg", "mkdir", "mkdirat")}

    def serve() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        _msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        conn.close()
        agent(fds[0], seen, {names["mkdir"]: errno.EXDEV, names["mkdirat"]: errno.EXDEV})

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    b = bundle(["sh", "-c", "mkdir /tmp/d 2>&1; echo rc=$?"], readonly=False)
    b.spec["process"]["noNewPrivileges"] = nnp
    b.spec["linux"]["seccomp"] = profile(listenerPath=sock_path, syscalls=[
        {"names": ["sendmsg", "mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}])
    b.write()
    try:
        p = rt("run", "-b", b.path, b.id, timeout=60)
    finally:
        t.join(30)
        srv.close()
    assert p.returncode == 0, p.err
    assert "Invalid cross-device link" in p.out and "rc=1" in p.out, p.out
    assert names["sendmsg"] in seen and {names["mkdir"], names["mkdirat"]} & set(seen), seen
