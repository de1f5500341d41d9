"""Hostile bundles and containers: nothing may escape the rootfs or reach the host (one test per attack)."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from ocitest import wait_stopped


@pytest.fixture
def host_dir(tmp_path):  # noqa: ANN001, ANN201
    """A host directory a hostile rootfs points its symlinks at: it must stay untouched."""
    d = tmp_path / "host-target"
    d.mkdir()
    (d / "marker").write_text("host\n")
    return d


def untouched(d) -> bool:  # noqa: ANN001
    return sorted(os.listdir(d)) == ["marker"] and (d / "marker").read_text() == "host\n"


def test_proc_symlinked_to_root_is_refused(rt, bundle):
    """A rootfs whose /proc is a symlink to / must not get procfs mounted over its root (CVE-2019-16884 class)."""
    b = bundle(["true"])
    shutil.rmtree(os.path.join(b.rootfs, "proc"))
    os.symlink("/", os.path.join(b.rootfs, "proc"))
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 1
    assert "mounts[0]" in p.err and "/proc" in p.err and "symbolic links" in p.err.lower()


def test_dev_symlinked_to_host_path_stays_inside(rt, bundle, host_dir):
    """/dev → an absolute host path: the tmpfs, the device nodes and the links land inside the rootfs."""
    b = bundle(["sh", "-c", "ls /dev/null /dev/zero"])
    shutil.rmtree(os.path.join(b.rootfs, "dev"))
    os.symlink(str(host_dir), os.path.join(b.rootfs, "dev"))
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert untouched(host_dir)
    assert os.path.isdir(os.path.join(b.rootfs, str(host_dir).lstrip("/")))


def test_mount_destination_through_symlink_stays_inside(rt, bundle, host_dir):
    b = bundle(["true"])
    os.symlink(str(host_dir), os.path.join(b.rootfs, "evil"))
    os.symlink("../../../../../../../.." + str(host_dir), os.path.join(b.rootfs, "evil2"))
    b.spec["mounts"] += [
        {"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/evil2/sub2", "type": "tmpfs", "source": "tmpfs"},
    ]
    b.spec["linux"]["maskedPaths"] = ["/evil/marker"]
    b.spec["linux"]["readonlyPaths"] = ["/evil2"]
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert untouched(host_dir)
    inside = os.path.join(b.rootfs, str(host_dir).lstrip("/"))
    assert os.path.isdir(os.path.join(inside, "sub")) and os.path.isdir(os.path.join(inside, "sub2"))


def test_device_path_through_symlink_stays_inside(rt, bundle, host_dir):
    b = bundle(["true"])
    os.symlink(str(host_dir), os.path.join(b.rootfs, "devlink"))
    b.spec["linux"]["devices"] = [{"path": "/dev/evil", "type": "c", "major": 1, "minor": 3}]
    b.spec["mounts"] = [m for m in b.spec["mounts"] if m["destination"] != "/dev" and
                        not m["destination"].startswith("/dev/")]
    shutil.rmtree(os.path.join(b.rootfs, "dev"))
    os.symlink("/devlink", os.path.join(b.rootfs, "dev"))
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert untouched(host_dir)


@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7, 8])
def test_cwd_through_leaked_fd_cannot_escape(rt, bundle, fd):
    """process.cwd = /proc/self/fd/N must never give the process a host directory (CVE-2024-21626 class)."""
    b = bundle(["sleep", "1000"])
    b.spec["process"]["cwd"] = f"/proc/self/fd/{fd}"
    b.write()
    p = rt("run", "-d", "-b", b.path, b.id)
    if p.returncode == 0:
        pid = rt.state(b.id)["pid"]
        # The cwd, as the process names it, must be that very directory under its own root.
        cwd = os.readlink(f"/proc/{pid}/cwd")
        same = os.stat(f"/proc/{pid}/cwd") == os.stat(f"/proc/{pid}/root{cwd}")
        rt("delete", "-f", b.id)
        assert cwd.startswith("/") and same, cwd
    else:
        assert "Traceback" not in p.err and p.err.startswith("ocirun: ")


def test_init_is_not_dumpable_before_exec(rt, bundle):
    """While the runtime's code runs in the container, the container can't open its /proc/PID/exe
    (CVE-2019-5736 class): the created init is still the runtime."""
    b = bundle(["sleep", "1000"])
    b.spec["process"]["capabilities"] = {k: ["CAP_KILL", "CAP_DAC_OVERRIDE"] for k in
                                         ("bounding", "effective", "permitted")}
    b.write()
    rt("create", "-b", b.path, b.id, check=True)
    p = rt("exec", b.id, "sh", "-c", "cat /proc/1/exe > /dev/null && echo opened || echo refused")
    assert p.out.strip() == "refused", (p.out, p.err)
    rt("delete", "-f", b.id, check=True)


def test_devices_denied_unless_listed(rt, bundle):
    b = bundle(["sh", "-c", "mknod /tmp/mem c 1 1 && (head -c1 /tmp/mem >/dev/null 2>&1 && echo opened || "
                "echo denied); head -c1 /dev/zero >/dev/null && echo zero-ok"], readonly=False)
    for k in ("bounding", "effective", "permitted"):
        b.spec["process"]["capabilities"][k].append("CAP_MKNOD")
    b.write()
    assert rt("run", "-b", b.path, b.id).out.split() == ["denied", "zero-ok"]


def test_no_host_fds_reach_the_container(rt, bundle, tmp_path):
    """A host fd open in the caller without O_CLOEXEC still must not appear in the container."""
    b = bundle(["sh", "-c", "echo $(ls /proc/self/fd)"])
    leak = os.open(str(tmp_path), os.O_RDONLY)
    os.set_inheritable(leak, True)
    try:
        import subprocess

        from ocitest import ocirun_cmd

        p = subprocess.run([*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id], capture_output=True,
                           text=True, pass_fds=(leak,))
    finally:
        os.close(leak)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "1", "2", "3"]  # 3: ls's own directory


def test_preserve_fds_passes_exactly_n(rt, bundle, tmp_path):
    b = bundle(["sh", "-c", "echo $(ls /proc/self/fd); cat <&3"])
    (tmp_path / "data").write_text("via-fd-3\n")
    fd3 = os.open(str(tmp_path / "data"), os.O_RDONLY)
    extra = os.open(str(tmp_path), os.O_RDONLY)
    try:
        import subprocess

        from ocitest import ocirun_cmd

        def child_setup() -> None:
            os.dup2(fd3, 3)
            os.dup2(extra, 4)

        p = subprocess.run([*ocirun_cmd(), "--root", rt.root, "run", "--preserve-fds", "1", "-b", b.path, b.id],
                           capture_output=True, text=True, preexec_fn=child_setup, close_fds=False)
    finally:
        os.close(fd3)
        os.close(extra)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["0", "1", "2", "3", "4"]  # 4: ls's own directory; the extra fd 4 is gone
    assert lines[1] == "via-fd-3"


def test_privileges_dropped_before_exec(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    time.sleep(0.1)
    with open(f"/proc/{pid}/status") as f:
        st = dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)
    assert st["Uid"].split() == ["1000"] * 4 and st["Gid"].split() == ["1000"] * 4
    assert st["Groups"].strip() == ""
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0 and st["NoNewPrivs"] == "1"
    rt("kill", b.id, "KILL", check=True)
    wait_stopped(rt, b.id)
    rt("delete", b.id, check=True)


def test_socket_activation_fds_pass_through(rt, bundle, tmp_path):
    """LISTEN_FDS/LISTEN_PID for the runtime: the fds reach the container and LISTEN_FDS is set (runc)."""
    import shlex
    import subprocess

    from ocitest import ocirun_cmd

    (tmp_path / "sock").write_text("activated\n")
    b = bundle(["sh", "-c", "echo $LISTEN_FDS; cat <&3"])
    cmd = " ".join(shlex.quote(c) for c in [*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id])
    p = subprocess.run(["sh", "-c", f"export LISTEN_PID=$$ LISTEN_FDS=1; exec {cmd} 3<{tmp_path}/sock"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "activated"]


@pytest.mark.parametrize("nnp", [True, False])
def test_setuid_binary_gains_nothing_with_no_new_privileges(rt, bundle, tmp_path, nnp):
    """A setuid-root program run by uid 1000: root with noNewPrivileges false, still 1000 with it true."""
    import subprocess

    src = tmp_path / "euid.c"
    src.write_text('#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("%d\\n", geteuid());return 0;}\n')
    b = bundle(["/bin/euid"])
    exe = os.path.join(b.rootfs, "bin/euid")
    r = subprocess.run(["gcc", "-static", "-O1", "-o", exe, str(src)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no static C toolchain: {r.stderr.strip()[:200]}")
    os.chown(exe, 0, 0)
    os.chmod(exe, 0o4755)
    b.spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.spec["process"]["noNewPrivileges"] = nnp
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert p.out.strip() == ("1000" if nnp else "0")
