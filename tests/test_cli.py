"""The command line itself: flag forms, spec/features/validate, console-socket rules."""

from __future__ import annotations

import json
import os
import subprocess

from ocitest import ocirun_cmd


def ocirun(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ocirun_cmd(), *args], capture_output=True, text=True, cwd=cwd)


def test_spec_writes_a_valid_config_once(tmp_path):
    p = ocirun("spec", "--bundle", str(tmp_path))
    assert p.returncode == 0, p.stderr
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    p = ocirun("spec", "-b", str(tmp_path))
    assert p.returncode == 1 and "file exists" in p.stderr
    (tmp_path / "rootfs").mkdir()
    p = ocirun("validate", "--bundle", str(tmp_path))
    assert p.returncode == 0 and "valid" in p.stdout


def test_validate_reports_problems(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"ociVersion": "1.2.0", "root": {"path": "nope"},
                                                      "linux": {"namespaces": [{"type": "bogus"}]}}))
    p = ocirun("validate", "-b", str(tmp_path))
    assert p.returncode == 1 and "linux.namespaces[0].type" in p.stdout and "root.path" in p.stdout


def test_features_document():
    p = ocirun("features")
    f = json.loads(p.stdout)
    assert f["ociVersionMin"] == "1.0.0" and "rro" in f["mountOptions"] and "createRuntime" in f["hooks"]
    assert "SCMP_ACT_NOTIFY" in f["linux"]["seccomp"]["actions"]


def test_flag_forms(rt, bundle):
    """--flag value, --flag=value and Go's single-dash -flag are all accepted (runc/urfave-cli)."""
    b = bundle(["true"])
    for args in (["--bundle", b.path], [f"--bundle={b.path}"], ["-bundle", b.path], ["-b", b.path]):
        p = rt("run", *args, b.id)
        assert p.returncode == 0, (args, p.err)
    p = subprocess.run([*ocirun_cmd(), "--root=" + rt.root, "--log-format=json", "--cgroup-manager", "cgroupfs",
                        "--rootless=false", "list", "-q"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_terminal_needs_console_socket(rt, bundle):
    b = bundle(["true"], terminal=True)
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1 and "console-socket" in p.err
    assert not os.path.exists(os.path.join(rt.root, b.id))


def test_console_socket_needs_terminal(rt, bundle, tmp_path):
    b = bundle(["true"])
    p = rt("create", "--console-socket", str(tmp_path / "s"), "-b", b.path, b.id)
    assert p.returncode == 1 and "process.terminal is false" in p.err


def test_console_socket_unreachable(rt, bundle, tmp_path):
    b = bundle(["true"], terminal=True)
    p = rt("create", "--console-socket", str(tmp_path / "nosock"), "-b", b.path, b.id)
    assert p.returncode == 1 and "console socket" in p.err and "no such file" in p.err
    assert not os.path.exists(os.path.join(rt.root, b.id))


def test_console_socket_gets_the_pty(rt, bundle, tmp_path):
    """create with --console-socket: the pty master arrives over SCM_RIGHTS and the process writes to it."""
    import array
    import socket
    import threading

    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got: dict = {}

    def accept() -> None:
        conn, _ = srv.accept()
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
        for _, _, data in anc:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        got["name"] = msg.decode()
        got["fd"] = fds[0]
        conn.close()

    t = threading.Thread(target=accept)
    t.start()
    b = bundle(["sh", "-c", "tty; echo on-the-pty"], terminal=True)
    rt("create", "--console-socket", path, "-b", b.path, b.id, check=True)
    t.join(10)
    srv.close()
    rt("start", b.id, check=True)
    out = b""
    try:
        while b"on-the-pty" not in out:
            chunk = os.read(got["fd"], 1024)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    os.close(got["fd"])
    assert got["name"].startswith("/dev/pts/")
    assert b"/dev/console" in out or b"/dev/pts/" in out
    assert b"on-the-pty" in out
    rt("delete", "-f", b.id, check=True)
