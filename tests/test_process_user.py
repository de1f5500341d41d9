"""The process as its user finds it: the cwd (created when missing, entered while still privileged), HOME from
the container's /etc/passwd, and a terminal it owns. Each scenario runs under ocirun and, when installed,
under runc with the same bundle, and must show the same thing.
"""

from __future__ import annotations

import os

import pytest

USER = {"uid": 1000, "gid": 1000}


def reachable_by_mapped_root(b, host: int = 100000) -> None:  # noqa: ANN001
    """A user namespace mapping root to `host`: the rootfs becomes its own, and pytest's 0700 dirs searchable."""
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host, "size": 65536}]
    os.chown(b.rootfs, host, host)
    d = b.path
    while d != "/":
        os.chmod(d, os.stat(d).st_mode | 0o055)
        d = os.path.dirname(d)


def run(runtime, b) -> str:  # noqa: ANN001
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    return p.out


def test_missing_cwd_is_created(runtime, bundle):
    """As runc: MkdirAll(cwd, 0755) by the container's root before the user switch (root.readonly too)."""
    b = bundle(["sh", "-c", "pwd; stat -c '%u %g %a' /work/dir /work"])
    b.spec["process"]["cwd"] = "/work/dir"
    b.spec["process"]["user"] = USER
    out = run(runtime, b).split("\n")
    assert out[:3] == ["/work/dir", "0 0 755", "0 0 755"], out
    st = os.stat(os.path.join(b.rootfs, "work", "dir"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755)


def test_cwd_the_user_cannot_search(runtime, bundle):
    """cwd /root (0700) for uid 1000: entered as root before the switch, as runc (it used to fail with
    "chdir to cwd /root: Permission denied")."""
    b = bundle(["sh", "-c", "pwd; ls . >/dev/null 2>&1 || echo cannot-list"])
    os.chmod(os.path.join(b.rootfs, "root"), 0o700)
    b.spec["process"]["cwd"] = "/root"
    b.spec["process"]["user"] = USER
    assert run(runtime, b).split("\n")[:2] == ["/root", "cannot-list"]


def test_cwd_only_the_user_can_enter(runtime, bundle):
    """A directory the user's group may enter but the container's root may not (its owner is unmapped, so
    root has no override there): the chdir fails as root and is retried as the user, as runc."""
    b = bundle(["sh", "-c", "pwd; id -u"])
    reachable_by_mapped_root(b)
    d = os.path.join(b.rootfs, "data")
    os.mkdir(d)
    os.chown(d, 5000, 101000)  # unmapped owner; group = the container's gid 1000
    os.chmod(d, 0o070)
    b.spec["process"]["cwd"] = "/data"
    b.spec["process"]["user"] = USER
    assert run(runtime, b).split("\n")[:2] == ["/data", "1000"]


def test_cwd_nobody_can_enter_fails_create(rt, bundle):
    """Neither root nor the user may enter: create fails with one line and leaves nothing behind."""
    b = bundle(["true"])
    reachable_by_mapped_root(b)
    d = os.path.join(b.rootfs, "data")
    os.mkdir(d)
    os.chown(d, 5000, 5000)
    os.chmod(d, 0o700)
    b.spec["process"]["cwd"] = "/data"
    b.spec["process"]["user"] = USER
    b.write()
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1 and "chdir to cwd /data: Permission denied" in p.err, p.err
    assert p.err.count("\n") == 1
    assert not [n for n in os.listdir(rt.root) if not n.startswith(".")]


@pytest.mark.parametrize("cwd", ["/bin/sh", "/etc/passwd/x"])
def test_cwd_that_is_not_a_directory(rt, bundle, cwd):
    b = bundle(["true"])
    b.spec["process"]["cwd"] = cwd
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 1 and "cwd" in p.err and "Not a directory" in p.err, p.err


PASSWD = "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:user:/home/u:/bin/sh\nnohome:x:1001:1001\n"


@pytest.mark.parametrize("uid, env, home", [
    (0, [], "/root"),
    (1000, [], "/home/u"),
    (1001, [], ""),  # an entry without a home field: empty, as runc
    (4242, [], "/"),  # no entry
    (1000, ["HOME="], "/home/u"),  # empty counts as unset
    (1000, ["HOME=/x", "HOME="], "/home/u"),  # the last one counts
    (1000, ["HOME=/custom"], "/custom"),
])
def test_home_from_the_containers_passwd(runtime, bundle, uid, env, home):
    b = bundle(["sh", "-c", 'echo "[$HOME]"; env | grep -c ^HOME='])
    with open(os.path.join(b.rootfs, "etc", "passwd"), "w") as f:
        f.write(PASSWD)
    b.spec["process"]["user"] = {"uid": uid, "gid": uid}
    b.spec["process"]["env"] = ["PATH=/bin", *env]
    assert run(runtime, b).split("\n")[:2] == [f"[{home}]", "1"]


def test_home_from_a_passwd_mounted_over_the_rootfs(runtime, bundle, tmp_path):
    """podman bind-mounts its own /etc/passwd: HOME comes from what the container sees, not the image."""
    pw = tmp_path / "passwd"
    pw.write_text("u:x:1000:1000::/from/the/mount:/bin/sh\n")
    b = bundle(["sh", "-c", 'echo "$HOME"'])
    b.spec["mounts"].append({"destination": "/etc/passwd", "type": "bind", "source": str(pw), "options": ["bind"]})
    b.spec["process"]["user"] = USER
    assert run(runtime, b).split("\n")[0] == "/from/the/mount"


def test_home_passwd_symlink_to_a_host_file_stays_inside(runtime, bundle, tmp_path):
    """/etc/passwd → an absolute host path: it is read inside the root, where that path does not exist."""
    pw = tmp_path / "hostpasswd"
    pw.write_text("u:x:1000:1000::/host/home:/bin/sh\n")
    b = bundle(["sh", "-c", 'echo "$HOME"'])
    os.unlink(os.path.join(b.rootfs, "etc", "passwd"))
    os.symlink(str(pw), os.path.join(b.rootfs, "etc", "passwd"))
    b.spec["process"]["user"] = USER
    assert run(runtime, b).split("\n")[0] == "/"


def test_home_passwd_fifo_does_not_block(rt, bundle):
    """A FIFO at /etc/passwd is not read (it would block the init): HOME is /. (runc would hang here.)"""
    b = bundle(["sh", "-c", 'echo "$HOME"'])
    os.unlink(os.path.join(b.rootfs, "etc", "passwd"))
    os.mkfifo(os.path.join(b.rootfs, "etc", "passwd"))
    b.spec["process"]["user"] = USER
    b.write()
    p = rt("run", "-b", b.path, b.id, timeout=20)
    assert p.returncode == 0 and p.out == "/\n", p.err


def test_home_long_lines_and_comments(rt, bundle):
    """Lines longer than the reader's buffer are skipped, the next one still counts; '#' lines are comments."""
    b = bundle(["sh", "-c", 'echo "$HOME"'])
    with open(os.path.join(b.rootfs, "etc", "passwd"), "w") as f:
        f.write("# 0:0:0:0:0:/comment\n" + "x" * 200000 + ":x:1000:1000::/too/long:/bin/sh\n"
                + "  u:x:1000:1000::/home/u:/bin/sh  \n")
    b.spec["process"]["user"] = USER
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.out == "/home/u\n", (p.out, p.err)
    b.spec["process"]["user"] = {"uid": 0, "gid": 0}
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.out == "/\n", (p.out, p.err)  # the comment is no uid-0 entry


def test_home_for_exec(runtime, bundle):
    b = bundle(["sleep", "1000"])
    with open(os.path.join(b.rootfs, "etc", "passwd"), "w") as f:
        f.write(PASSWD)
    b.spec["process"]["env"] = ["PATH=/bin"]
    b.write()
    p = runtime("run", "-d", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    p = runtime("exec", "--user", "1000:1000", b.id, "sh", "-c", 'echo "$HOME"')
    assert p.returncode == 0 and p.out == "/home/u\n", (p.out, p.err)
    p = runtime("exec", "--env", "HOME=/set", b.id, "sh", "-c", 'echo "$HOME"')
    assert p.returncode == 0 and p.out == "/set\n", (p.out, p.err)
    runtime("delete", "-f", b.id)


TTY_OWNER = 'stat -c "tty-owner:%u:%g:%a" "$(tty)"'


class ConsoleSocket:
    """A --console-socket listener: receives the pty master over SCM_RIGHTS, as containerd's shim does."""

    def __init__(self, path: str) -> None:
        import socket
        import threading

        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.fd = -1
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        import array
        import socket

        conn, _ = self.srv.accept()
        fds = array.array("i")
        _, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
        for _, _, data in anc:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        self.fd = fds[0]
        conn.close()

    def read_until(self, want: bytes, timeout: float = 10) -> bytes:
        import select
        import time

        self.thread.join(timeout)
        self.srv.close()
        assert self.fd >= 0, "no pty master arrived"
        out, end = b"", time.monotonic() + timeout
        while want not in out and time.monotonic() < end:
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        os.close(self.fd)
        return out


def tty_owner(out: bytes) -> str:
    line = next(ln for ln in out.decode(errors="replace").replace("\r", "").split("\n") if "tty-owner:" in ln)
    return line[line.index("tty-owner:") + 10:].strip()


def test_console_socket_pty_belongs_to_the_user(runtime, bundle, tmp_path):
    """create --console-socket, uid 1000: the pty is the user's (the tty gid devpts gives it stays), as runc."""
    b = bundle(["sh", "-c", TTY_OWNER + "; echo done-here"], terminal=True)
    b.spec["process"]["user"] = USER
    b.write()
    cs = ConsoleSocket(str(tmp_path / "console.sock"))
    p = runtime("create", "--console-socket", cs.path, "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert runtime("start", b.id).returncode == 0
    assert tty_owner(cs.read_until(b"done-here")) == "1000:5:620"
    runtime("delete", "-f", b.id)


def test_relayed_tty_belongs_to_the_user(runtime, bundle):
    """run with a terminal and no console socket (the runtime relays the pty), and exec -t in it."""
    from test_tty import pty_run

    b = bundle(["sh", "-c", TTY_OWNER], terminal=True)
    b.spec["process"]["user"] = USER
    b.write()
    out, status = pty_run([*runtime.argv, "run", "-b", b.path, b.id])
    assert status == 0, out
    assert tty_owner(out) == "1000:5:620", out


def test_exec_tty_belongs_to_the_user(runtime, bundle):
    from test_tty import pty_run

    b = bundle(["sleep", "1000"])
    b.write()
    p = runtime("run", "-d", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    out, status = pty_run([*runtime.argv, "exec", "-t", "--user", "1000:1000", b.id, "sh", "-c", TTY_OWNER])
    assert status == 0, out
    assert tty_owner(out) == "1000:5:620", out
    runtime("delete", "-f", b.id)


def test_stdio_pipes_belong_to_the_user(runtime, bundle):
    """Without a terminal stdio is the caller's pipes or files (0600): chowned so the user can reopen
    /dev/stdout (images link their logs there), as runc does."""
    b = bundle(["sh", "-c", "stat -L -c %u /proc/self/fd/1; echo via-reopen >> /dev/stdout"])
    b.spec["process"]["user"] = USER
    out = run(runtime, b)
    assert out.split("\n")[:2] == ["1000", "via-reopen"], out


def test_callers_terminal_is_not_handed_to_the_user(rt, bundle):
    """run without a terminal from the caller's own terminal: that tty is never chowned to the container's
    uid (runc would: the caller's terminal would then belong to uid 1000 on the host)."""
    from ocitest import ocirun_cmd
    from test_tty import pty_run

    b = bundle(["sh", "-c", "stat -L -c %u /proc/self/fd/1"])
    b.spec["process"]["user"] = USER
    b.write()
    out, status = pty_run([*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id])
    assert status == 0 and out.split()[-1] == b"0", out
