"""Clients with the systemd cgroup manager driving the runtime, under ocirun and runc: podman
`--cgroup-manager systemd` (root, and rootless with a systemd user session), and containerd's shim with
SystemdCgroup (ctr run --runc-systemd-cgroup, the same runc option the CRI's `SystemdCgroup = true` sets).
Needs systemd as PID 1: `make test-systemd` runs these in the systemd guest (tests/vm, --systemd).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from .clientlib import IMAGE, Ctr, Podman, run_cmd, runtime_list, wait_for


def systemd_is_pid1() -> bool:
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip() == "systemd" and os.path.isdir("/run/systemd/system")
    except OSError:
        return False


pytestmark = [
    pytest.mark.clients,
    pytest.mark.systemd,
    pytest.mark.skipif(not systemd_is_pid1() or os.geteuid() != 0,
                       reason="needs root and systemd as PID 1 (make test-systemd)"),
]


def show(unit: str, *props: str, user: str | None = None) -> dict[str, str]:
    argv = ["systemctl", *(["--user", "-M", f"{user}@"] if user else []), "show", unit,
            *(f"--property={p}" for p in props)]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    raise AssertionError(f"no cgroup2 entry for {pid}")


def unit_gone(unit: str, user: str | None = None) -> bool:
    st = show(unit, "ActiveState", "LoadState", user=user)
    return st.get("LoadState") != "loaded" or st.get("ActiveState") in ("inactive", "failed")


# ------------------------------------------------------------------------------------------------ podman


@pytest.fixture
def podman_sd(podman: Podman) -> Iterator[Podman]:
    """podman --cgroup-manager systemd with the runtime under test; its containers removed afterwards."""
    podman.cgroup_manager = "systemd"
    try:
        yield podman
    finally:
        ids = podman("ps", "--all", "--quiet", "--no-trunc").out.split()
        if ids:
            podman("rm", "--force", "--time", "0", *ids, timeout=120)
        podman.cgroup_manager = "cgroupfs"


def test_podman_systemd_scope_and_limits(podman_sd: Podman) -> None:
    """The container's scope is libpod-<id>.scope in machine.slice with the limits as unit properties and
    cgroup files; pause, stats, stop and rm go through the same manager; the unit goes with the container."""
    name = podman_sd.name()
    podman_sd("run", "-d", "--name", name, "--memory", "64m", "--pids-limit", "50", IMAGE, "sleep", "1000",
              check=True)
    info = json.loads(podman_sd("inspect", name, check=True).out)[0]
    cid, pid = info["Id"], info["State"]["Pid"]
    unit = f"libpod-{cid}.scope"
    assert cgroup_of(pid) == f"/machine.slice/{unit}"
    p = show(unit, "Delegate", "MemoryMax", "TasksMax", "Slice")
    assert p == {"Delegate": "yes", "MemoryMax": str(64 << 20), "TasksMax": "50", "Slice": "machine.slice"}, p
    r = podman_sd("exec", name, "sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
    assert r.returncode == 0 and r.out.split() == [str(64 << 20), "50"], r
    podman_sd("pause", name, check=True)
    assert podman_sd("inspect", "--format", "{{.State.Status}}", name, check=True).out.strip() == "paused"
    podman_sd("unpause", name, check=True)
    stats = json.loads(podman_sd("stats", "--no-stream", "--format", "json", name, check=True).out)
    assert stats and stats[0]["pids"] == "1", stats
    podman_sd("stop", "--time", "1", name, check=True)
    podman_sd("rm", name, check=True)
    wait_for(lambda: unit_gone(unit), what=f"{unit} to go")
    assert not os.path.exists(f"/sys/fs/cgroup/machine.slice/{unit}")


def test_podman_systemd_run_rm(podman_sd: Podman) -> None:
    r = podman_sd("run", "--rm", IMAGE, "sh", "-c", "echo hello; exit 3")
    assert r.returncode == 3 and r.out == "hello\n", r


# ------------------------------------------------------------------------------------------------ containerd


def test_containerd_systemd_cgroup(ctr: Ctr) -> None:
    """The shim with SystemdCgroup: the runtime gets --systemd-cgroup and "system.slice:ctr:<id>"."""
    cid = ctr.name()
    unit = f"ctr-{cid}.scope"
    ctr.run("--detach", "--runc-systemd-cgroup", "--cgroup", f"system.slice:ctr:{cid}", "--memory-limit",
            str(32 << 20), IMAGE, cid, "sleep", "1000", check=True)
    pid = ctr.tasks()[cid][0]
    assert cgroup_of(pid) == f"/system.slice/{unit}"
    p = show(unit, "Delegate", "MemoryMax")
    assert p == {"Delegate": "yes", "MemoryMax": str(32 << 20)}, p
    with open(f"/sys/fs/cgroup/system.slice/{unit}/memory.max") as f:
        assert f.read().strip() == str(32 << 20)
    r = ctr.exec("--exec-id", "e1", cid, "sh", "-c", "echo in")  # exec joins the scope
    assert r.returncode == 0 and r.out == "in\n", r
    rows = dict(ln.split(None, 1) for ln in ctr("task", "metrics", cid, check=True).out.splitlines()
                if len(ln.split()) >= 2)
    assert rows.get("pids.current", "").strip() == "1", rows
    ctr("task", "pause", cid, check=True)
    assert ctr.tasks()[cid][1] == "PAUSED"
    ctr("task", "resume", cid, check=True)
    ctr("task", "kill", "--signal", "SIGKILL", cid, check=True)
    wait_for(lambda: ctr.tasks()[cid][1] == "STOPPED", what=f"{cid} to stop")
    ctr("task", "delete", cid, check=True)
    ctr("containers", "delete", cid, check=True)
    wait_for(lambda: unit_gone(unit), what=f"{unit} to go")
    assert cid not in runtime_list(ctr.runtime, ctr.runtime_root)


# ------------------------------------------------------------------------------------------------ rootless podman

USER = "ocitest"


@pytest.fixture(scope="module")
def session_user() -> Iterator[pwd.struct_passwd]:
    """A user with subordinate ids and a lingering systemd user manager (user@UID.service, its D-Bus
    session bus at /run/user/UID/bus): what a logged-in user has. Made in the guest only."""
    if not os.environ.get("OCIRUN_VM"):
        pytest.skip("creates a user: only in the test VM (OCIRUN_VM=1)")
    for tool in ("useradd", "loginctl", "runuser", "newuidmap"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
        pw = pwd.getpwnam(USER)
    for f in ("/etc/subuid", "/etc/subgid"):  # useradd may have given it a range already
        with open(f, "a+") as fh:
            fh.seek(0)
            if not any(line.startswith(f"{USER}:") for line in fh):
                fh.write(f"{USER}:200000:65536\n")
    subprocess.run(["loginctl", "enable-linger", USER], check=True)
    bus = f"/run/user/{pw.pw_uid}/bus"
    wait_for(lambda: os.path.exists(bus), timeout=60, what=f"{USER}'s session bus")
    yield pw
    subprocess.run(["loginctl", "disable-linger", USER], capture_output=True)


class UserPodman:
    """podman as the session user (runuser, with the session's XDG_RUNTIME_DIR and bus), on its own storage."""

    def __init__(self, pw: pwd.struct_passwd, base: str) -> None:
        self.pw = pw
        self.base = base
        rt = f"/run/user/{pw.pw_uid}"
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": pw.pw_dir, "XDG_RUNTIME_DIR": rt,
                    "DBUS_SESSION_BUS_ADDRESS": f"unix:path={rt}/bus", "USER": pw.pw_name}
        self.runtime = ""

    def __call__(self, *args: str, timeout: float = 120, check: bool = False) -> object:
        argv = ["runuser", "-u", self.pw.pw_name, "--", "env", *(f"{k}={v}" for k, v in self.env.items()),
                "podman", "--root", f"{self.base}/storage", "--runroot", f"{self.base}/run",
                "--storage-driver", "vfs", "--cgroup-manager", "systemd", "--events-backend", "file"]
        if self.runtime:  # the state root in the session's runtime dir (a user cannot write /run/<runtime>)
            root = f"{self.env['XDG_RUNTIME_DIR']}/{os.path.basename(self.runtime)}"
            argv += ["--runtime", self.runtime, "--runtime-flag", f"root={root}"]
        return run_cmd([*argv, *args], dict(os.environ), timeout=timeout, check=check)


@pytest.fixture(scope="module")
def user_podman(session_user: pwd.struct_passwd, rootfs_tar: str) -> Iterator[UserPodman]:
    base = tempfile.mkdtemp(prefix="ocirun-upm-", dir="/tmp")
    os.chmod(base, 0o755)
    tar = f"{base}/rootfs.tar"
    shutil.copy(rootfs_tar, tar)
    os.chmod(tar, 0o644)
    os.chown(base, session_user.pw_uid, session_user.pw_gid)
    pm = UserPodman(session_user, base)
    r = pm("import", "--change", "CMD=/bin/sh", "--change", "ENV=PATH=/bin", tar, IMAGE)
    if r.returncode != 0:  # type: ignore[attr-defined]
        pytest.fail(f"rootless podman import failed: {r!r}")
    yield pm
    pm("rm", "--all", "--force", "--time", "0")
    pm("system", "reset", "--force")
    subprocess.run(["rm", "-rf", base], capture_output=True)


def test_rootless_podman_systemd(user_podman: UserPodman, runtime: str) -> None:
    """Rootless podman with a user session: the runtime runs in podman's user namespace and asks the user's
    systemd for the scope (delegated to the user), below user@UID.service."""
    from .conftest import runtime_path

    path = runtime_path(runtime)
    d = os.path.dirname(path)
    if runtime == "ocirun":
        os.chmod(d, 0o755)  # the test launcher's private directory: the user must reach the runtime
    user_podman.runtime = path
    # --network none: slirp4netns would need /dev/net/tun (and the guest has no network anyway)
    r = user_podman("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo hello; cat /proc/self/uid_map")
    if runtime == "ocirun" and r.returncode != 0 and "mknod /dev/" in r.err and "not permitted" in r.err:  # type: ignore[attr-defined]
        # Past the cgroup part (the user's systemd made the scope), the init cannot mknod in a user
        # namespace: rootless device setup is issue 13 part 1. Any other failure still fails here.
        pytest.xfail("rootless device nodes (bind mounts in a user namespace) are not in this ocirun yet")
    assert r.returncode == 0 and r.out.startswith("hello\n"), r.err  # type: ignore[attr-defined]
    name = f"u{int(time.time() * 1000) % 10**9}"
    user_podman("run", "-d", "--name", name, "--network", "none", "--memory", "48m", IMAGE, "sleep", "1000",
                check=True)
    try:
        info = json.loads(user_podman("inspect", name, check=True).out)[0]  # type: ignore[attr-defined]
        uid = user_podman.pw.pw_uid
        cg = cgroup_of(info["State"]["Pid"])
        unit = f"libpod-{info['Id']}.scope"
        assert cg == f"/user.slice/user-{uid}.slice/user@{uid}.service/user.slice/{unit}", cg
        p = show(unit, "Delegate", "MemoryMax", user=USER)
        assert p == {"Delegate": "yes", "MemoryMax": str(48 << 20)}, p
    finally:
        user_podman("rm", "--force", "--time", "0", name)
