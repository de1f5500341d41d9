"""Each config.json feature checked on a real container, from inside (its output) and outside (/proc)."""

from __future__ import annotations

import os
import time

import pytest
from ocitest import ns_inode, proc_status

from ocirun.capabilities import caps_to_mask


def run_out(rt, b) -> str:  # noqa: ANN001
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    return p.out


def test_capabilities_exact(rt, bundle):
    b = bundle(["sleep", "1000"])
    caps = {"bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_SETUID"], "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]}
    b.spec["process"]["capabilities"] = caps
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    st = proc_status(rt.state(b.id)["pid"])
    assert int(st["CapBnd"], 16) == caps_to_mask(caps["bounding"], "")
    assert int(st["CapEff"], 16) == caps_to_mask(caps["effective"], "") | caps_to_mask(caps["ambient"], "")
    assert int(st["CapPrm"], 16) == caps_to_mask(caps["permitted"], "")
    assert int(st["CapInh"], 16) == caps_to_mask(caps["inheritable"], "")
    assert int(st["CapAmb"], 16) == caps_to_mask(caps["ambient"], "")
    assert st["NoNewPrivs"] == "1"
    rt("delete", "-f", b.id, check=True)


def test_user_groups_umask(rt, bundle):
    b = bundle(["sh", "-c", "id -u; id -g; id -G; umask"])
    b.spec["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 0o027}
    out = run_out(rt, b).split("\n")
    assert out[0] == "1000" and out[1] == "1001"
    assert sorted(out[2].split()) == ["1001", "5", "7"]
    assert out[3] == "0027"


def test_hostname_domainname_sysctl_rlimits_oom(rt, bundle):
    b = bundle(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; cat /proc/sys/net/ipv4/ip_forward; "
                "ulimit -n; cat /proc/self/oom_score_adj"])
    b.spec["hostname"] = "box1"
    b.spec["domainname"] = "example.org"
    b.spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    b.spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 333, "hard": 444}]
    b.spec["process"]["oomScoreAdj"] = 123
    assert run_out(rt, b).split() == ["box1", "example.org", "1", "333", "123"]


def test_env_and_cwd_and_no_host_leak(rt, bundle):
    b = bundle(["sh", "-c", "pwd; env | sort; echo $(ls /proc/self/fd)"])
    b.spec["process"]["env"] = ["PATH=/bin", "FOO=bar"]
    b.spec["process"]["cwd"] = "/tmp"
    os.environ["OCIRUN_TEST_LEAK"] = "secret"
    try:
        out = run_out(rt, b).split("\n")
    finally:
        del os.environ["OCIRUN_TEST_LEAK"]
    assert out[0] == "/tmp"
    env = [ln for ln in out[1:] if "=" in ln]
    assert "FOO=bar" in env and "PATH=/bin" in env
    assert not any("OCIRUN_TEST_LEAK" in e for e in env)
    fds = out[-2].split()
    assert fds == ["0", "1", "2", "3"], fds  # 3 is ls's own directory fd


def test_masked_and_readonly_paths(rt, bundle):
    b = bundle(["sh", "-c", "cat /proc/kcore | wc -c; ls /proc/acpi | wc -l; echo 1 > /proc/sys/kernel/ns_last_pid"
                " 2>&1 || echo ro-ok"])
    out = run_out(rt, b).split("\n")
    assert out[0].strip() == "0"  # /dev/null bound over it
    assert out[1].strip() == "0"  # an empty read-only tmpfs
    assert "ro-ok" in out[2] or "Read-only" in out[2]


def test_root_readonly_and_mounts(rt, bundle):
    b = bundle(["sh", "-c", "touch /x 2>/dev/null || echo rootro; touch /data/y && echo tmpfs-rw; "
                "grep ' /data ' /proc/self/mountinfo"])
    b.spec["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "size=1m", "mode=700"]})
    out = run_out(rt, b).split("\n")
    assert out[0] == "rootro" and out[1] == "tmpfs-rw"
    fields = out[2].split()
    assert "nosuid" in fields[5] and "nodev" in fields[5] and "size=1024k" in out[2]


def test_bind_mount_readonly(rt, bundle, tmp_path):
    src = tmp_path / "share"
    src.mkdir()
    (src / "hello").write_text("hi\n")
    b = bundle(["sh", "-c", "cat /mnt/share/hello; touch /mnt/share/x 2>/dev/null || echo ro"])
    b.spec["mounts"].append({"destination": "/mnt/share", "type": "bind", "source": str(src),
                             "options": ["rbind", "ro"]})
    assert run_out(rt, b).split() == ["hi", "ro"]
    assert not (src / "x").exists()


def test_devices(rt, bundle):
    b = bundle(["sh", "-c", "stat -c '%F %t:%T %a %u:%g' /dev/fuse /dev/null; ls -l /dev/ptmx /dev/fd"])
    b.spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                   "fileMode": 0o640, "uid": 7, "gid": 8}]
    out = run_out(rt, b).split("\n")
    assert out[0] == "character special file a:e5 640 7:8"
    assert out[1] == "character special file 1:3 666 0:0"
    assert "/dev/fd -> /proc/self/fd" in out[2] and "/dev/ptmx -> pts/ptmx" in out[3]


def test_device_modes_do_not_depend_on_the_callers_umask(rt, bundle):
    """fileMode exactly under a umask of 077 too: the init makes the node with umask 0 and never chmods it by
    name (a chmod following a symlink swapped in meanwhile could reach a host file)."""
    b = bundle(["sh", "-c", "stat -c '%a %u:%g' /dev/fuse /dev/null /dev/tty"])
    b.spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                   "fileMode": 0o646, "uid": 7, "gid": 8}]
    b.write()
    p = rt("run", "-b", b.path, b.id, preexec_fn=lambda: os.umask(0o077))
    assert p.returncode == 0, p.err
    assert p.out.split("\n")[:3] == ["646 7:8", "666 0:0", "666 0:0"]


def test_no_pivot(rt, bundle):
    b = bundle(["sh", "-c", "cat /proc/self/mountinfo | wc -l; ls /"])
    b.write()
    p = rt("run", "--no-pivot", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert "bin" in p.out.split()


def test_user_namespace_mappings(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    os.chown(b.rootfs, 100000, 100000)
    d = b.path
    while d != "/":  # pytest's tmp dirs are 0700: the mapped root must be able to reach the rootfs
        os.chmod(d, os.stat(d).st_mode | 0o055)
        d = os.path.dirname(d)
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    assert ns_inode(pid, "user") != ns_inode("self", "user")
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", "100000", "65536"]
    st = proc_status(pid)
    assert st["Uid"].split()[0] == "100000"
    rt("delete", "-f", b.id, check=True)


def test_join_existing_namespace_by_path(rt, bundle):
    a = bundle(["sleep", "1000"])
    a.write()
    rt("run", "-d", "-b", a.path, a.id, check=True)
    apid = rt.state(a.id)["pid"]
    b = bundle(["sleep", "1000"])
    for ns in b.spec["linux"]["namespaces"]:
        if ns["type"] in ("network", "ipc"):
            ns["path"] = f"/proc/{apid}/ns/{'net' if ns['type'] == 'network' else 'ipc'}"
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    bpid = rt.state(b.id)["pid"]
    assert ns_inode(bpid, "net") == ns_inode(apid, "net")
    assert ns_inode(bpid, "ipc") == ns_inode(apid, "ipc")
    assert ns_inode(bpid, "uts") != ns_inode(apid, "uts")
    rt("delete", "-f", b.id, check=True)
    rt("delete", "-f", a.id, check=True)


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/memory"), reason="needs cgroup v1 hierarchies")
def test_in_cgroup_v1(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["resources"]["memory"] = {"limit": 64 << 20}
    b.spec["linux"]["resources"]["pids"] = {"limit": 50}
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    mem = next(ln for ln in lines if ":memory:" in ln)
    assert mem.endswith(b.cgroup)
    with open(f"/sys/fs/cgroup/memory{b.cgroup}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 64 << 20
    with open(f"/sys/fs/cgroup/pids{b.cgroup}/pids.max") as f:
        assert f.read().strip() == "50"
    rt("delete", "-f", b.id, check=True)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer", "startContainer", "poststart", "poststop"])
def test_hooks_get_state_on_stdin(rt, bundle, tmp_path, kind):
    out = tmp_path / "hook.out"
    b = bundle(["true"])
    script = f"cat > {out}.json; echo $1 >> {out}"
    b.spec["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", script, "sh", kind]}]}
    if kind in ("createContainer", "startContainer"):
        # These run inside the container: give it a place to write that the test can read.
        b.spec["mounts"].append({"destination": str(tmp_path), "type": "bind", "source": str(tmp_path),
                                 "options": ["rbind"]})
    b.write()
    rt("run", "-b", b.path, b.id, check=True)
    assert out.read_text() == kind + "\n"
    import json

    with open(f"{out}.json") as f:
        st = json.load(f)
    assert st["id"] == b.id and st["bundle"] == b.path and st["ociVersion"]
    assert st["pid"] > 0 or kind == "poststop"


def test_hook_order(rt, bundle, tmp_path):
    log = tmp_path / "order"
    b = bundle(["sh", "-c", f"echo process >> {log}"], readonly=False)
    b.spec["mounts"].append({"destination": str(tmp_path), "type": "bind", "source": str(tmp_path),
                             "options": ["rbind"]})
    b.spec["hooks"] = {k: [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {k} >> {log}"]}]
                       for k in ("prestart", "createRuntime", "createContainer", "startContainer", "poststop")}
    b.write()
    rt("run", "-b", b.path, b.id, check=True)
    assert log.read_text().split() == ["prestart", "createRuntime", "createContainer", "startContainer",
                                       "process", "poststop"]


def test_without_namespaces_inherits_the_hosts(rt, bundle):
    """No namespace listed: each one is the runtime's own (runtime-tools linux_ns_itype), the root a chroot."""
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["namespaces"] = []
    del b.spec["hostname"]
    b.write()
    p = rt("run", "-d", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert "mounts are not applied" in p.err
    pid = rt.state(b.id)["pid"]
    for ns in ("pid", "mnt", "net", "ipc", "uts", "cgroup", "user"):
        assert ns_inode(pid, ns) == ns_inode("self", ns), ns
    assert os.readlink(f"/proc/{pid}/root") == b.rootfs
    rt("delete", "-f", b.id, check=True)


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/devices/devices.list"),
                    reason="reads v1's devices.list (v2's filter: test_cgroup2_container.py::test_device_bpf_program)")
def test_device_cgroup_rules_in_config_order(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["devices"] = [{"path": "/dev/fifo0", "type": "p"}]
    b.spec["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "r"}]
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    with open(f"/sys/fs/cgroup/devices{b.cgroup}/devices.list") as f:
        rules = f.read().split("\n")
    assert "c 10:229 r" in rules and "c 1:3 rwm" in rules
    rt("delete", "-f", b.id, check=True)


def test_no_ignored_or_blocked_signals_leak(rt, bundle):
    """The runtime (Python) ignores SIGPIPE/SIGXFSZ; ignored dispositions survive execve unless reset."""
    import ctypes
    import subprocess

    from ocitest import ocirun_cmd

    b = bundle(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])  # not via sh: ash ignores SIGQUIT

    def ignore_more() -> None:
        """Also ignore glibc's internal signals 32/33 (sigaction() can't reset those) and block one."""
        ksa = (ctypes.c_ulong * 4)(1, 0, 0, 0)  # SIG_IGN
        libc = ctypes.CDLL(None)
        for sig in (32, 33):
            libc.syscall(13, sig, ksa, None, 8)  # rt_sigaction
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})

    import signal

    p = subprocess.run([*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id], capture_output=True, text=True,
                       preexec_fn=ignore_more)
    assert p.stdout.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"], p.stderr


def test_term_kills_a_created_container(rt, bundle):
    """pid 1 of a namespace ignores unhandled signals; a created container must still die on TERM (as runc's)."""
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    rt("kill", b.id, "TERM", check=True)
    from ocitest import wait_stopped

    wait_stopped(rt, b.id)
    rt("delete", b.id, check=True)


def test_cgroup_mount_shows_the_containers_own_cgroups(rt, bundle):
    v1 = os.path.exists("/sys/fs/cgroup/pids/cgroup.procs")  # (v2: the container's cgroup is the mount's root)
    b = bundle(["sh", "-c", f"ls /sys/fs/cgroup; cat /sys/fs/cgroup/{'pids/' if v1 else ''}pids.max"])
    b.spec["linux"]["resources"]["pids"] = {"limit": 77}
    if not any(m["type"] == "cgroup" for m in b.spec["mounts"]):
        b.spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    out = run_out(rt, b).split()
    if v1:  # one directory per hierarchy
        assert {"cpu", "memory", "pids", "devices", "freezer"} <= set(out)
    else:
        assert {"cgroup.procs", "pids.max"} <= set(out)
    assert out[-1] == "77"


def test_pause_resume_v1_freezer(rt, bundle):
    b = bundle(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; done"], readonly=False)
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    time.sleep(0.3)
    rt("pause", b.id, check=True)
    assert rt.state(b.id)["status"] == "paused"
    p = rt("pause", b.id)
    assert p.returncode == 1 and "not running: paused" in p.err
    with open(os.path.join(b.rootfs, "tmp/n")) as f:
        n1 = f.read()
    time.sleep(0.4)
    with open(os.path.join(b.rootfs, "tmp/n")) as f:
        assert f.read() == n1  # frozen: no progress
    rt("resume", b.id, check=True)
    assert rt.state(b.id)["status"] == "running"
    p = rt("resume", b.id)
    assert p.returncode == 1 and "not paused: running" in p.err
    rt("delete", "-f", b.id, check=True)


def test_time_namespace_offsets(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["namespaces"].append({"type": "time"})
    b.spec["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0}, "boottime": {"secs": 3600}}
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    assert ns_inode(pid, "time") != ns_inode("self", "time")
    with open(f"/proc/{pid}/timens_offsets") as f:
        offsets = {ln.split()[0]: ln.split()[1:] for ln in f}
    assert offsets["monotonic"] == ["86400", "0"] and offsets["boottime"] == ["3600", "0"]
    rt("delete", "-f", b.id, check=True)


def test_personality_linux32(rt, bundle):
    b = bundle(["uname", "-m"])
    b.spec["linux"]["personality"] = {"domain": "LINUX32"}
    out = run_out(rt, b).strip()
    assert out in ("i686", "i386", "armv7l", "armv8l"), out


def test_io_priority_scheduler_affinity(rt, bundle):
    b = bundle(["sh", "-c", "cat /proc/self/status | grep Cpus_allowed_list; cat /proc/self/stat"])
    b.spec["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    b.spec["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    b.spec["process"]["execCPUAffinity"] = {"final": "0"}
    out = run_out(rt, b).split("\n")
    assert out[0].split() == ["Cpus_allowed_list:", "0"]
    fields = out[1].rsplit(")", 1)[1].split()
    assert fields[16] == "7" and fields[38] == "3"  # nice, policy SCHED_BATCH
    # ioprio is not in /proc: check it through the container's init with ionice from outside
    b2 = bundle(["sleep", "1000"])
    b2.spec["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    b2.write()
    rt("run", "-d", "-b", b2.path, b2.id, check=True)
    import subprocess

    r = subprocess.run(["ionice", "-p", str(rt.state(b2.id)["pid"])], capture_output=True, text=True)
    rt("delete", "-f", b2.id, check=True)
    assert r.stdout.strip() == "idle", r
