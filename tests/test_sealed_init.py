"""The sealed init (issue 11, CVE-2019-5736 class): every process the runtime starts runs ocirun-init out of a
sealed memfd, so /proc/<pid>/exe is never a host file the container can write, even with CAP_SYS_PTRACE, and
a waiting init holds a few pages of its own instead of a copy of the runtime's Python heap.

The attacks run under runc too, side by side, where it is installed: the outcome must be the same."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from ocitest import ROOT, ocirun_cmd, proc_status

RUNC = shutil.which("runc")
F_GET_SEALS = 1034
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_EXEC = 1, 2, 4, 8, 0x20
CONTENT_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
INIT = os.path.join(ROOT, "ocirun", "ocirun-init")
ALL_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


class Runc:
    """runc with a private --root, called like the `rt` fixture (same result attributes)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
            p = subprocess.run([RUNC, "--root", self.root, *args], stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                               timeout=timeout)
            fo.seek(0)
            fe.seek(0)
            p.out, p.err = fo.read().decode(errors="replace"), fe.read().decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"runc {' '.join(args)} failed ({p.returncode}): {p.err}")
        return p

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).out)


@pytest.fixture(params=["ocirun"] + (["runc"] if RUNC else []))
def runtime(request, rt, tmp_path):  # noqa: ANN001, ANN201
    """(name, runtime callable, host files a successful attack would change)."""
    if request.param == "runc":
        return "runc", Runc(str(tmp_path / "runc-root")), [RUNC]
    native = glob.glob(os.path.join(ROOT, "ocirun", "_native*.so"))
    hosts = [ocirun_cmd()[0], INIT, *native, *(p for p in ("/usr/bin/python3.11", sys.executable) if os.path.isfile(p))]
    return "ocirun", rt, hosts


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ptrace_capable(b) -> None:  # noqa: ANN001
    """CAP_SYS_PTRACE (with the default caps) in every set: the container may open /proc/1/exe."""
    caps = ["CAP_SYS_PTRACE", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_AUDIT_WRITE"]
    b.spec["process"]["capabilities"] = {k: list(caps) for k in ALL_SETS}
    b.write()


def wait_file(path: str, timeout: float = 20) -> str:
    """Poll for a file the container writes (the timeout only bounds a hang)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith("\n"):
                return text
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


ATTACK = (
    "cat /proc/1/exe > /dev/null && echo read-ok || echo read-refused; "
    "(echo attack >> /proc/1/exe) 2>/dev/null && echo append-ok || echo append-refused; "
    "(exec 3< /proc/1/exe; echo attack >> /proc/self/fd/3) 2>/dev/null && echo reopen-ok || echo reopen-refused; "
    "echo attack >> /dev/shm/probe && echo control-ok"
)


def test_ptrace_capable_exec_cannot_write_the_waiting_init(runtime, bundle):
    """The issue's attack: a process exec'd into a created container with CAP_SYS_PTRACE reads the init's
    exe (so it did reach the file) but can neither append to it nor reopen it for writing; every host binary
    of the runtime is unchanged."""
    name, run, hosts = runtime
    b = bundle(["sleep", "1000"])
    ptrace_capable(b)
    before = {h: digest(h) for h in hosts}
    run("create", "-b", b.path, b.id, check=True)
    try:
        p = run("exec", b.id, "sh", "-c", ATTACK)
        assert p.out.split() == ["read-ok", "append-refused", "reopen-refused", "control-ok"], (name, p.out, p.err)
    finally:
        run("delete", "-f", b.id)
    assert {h: digest(h) for h in hosts} == before


def test_fd_held_across_start_cannot_write_the_init(runtime, bundle):
    """CVE-2019-5736 as published: open /proc/1/exe while the init is still the runtime's program, let `start`
    replace it (so no running process holds it busy), then write through the kept fd. A host binary would take
    the write; the sealed memfd refuses it."""
    name, run, hosts = runtime
    b = bundle(["sleep", "1000"])
    ptrace_capable(b)
    before = {h: digest(h) for h in hosts}
    run("create", "-b", b.path, b.id, check=True)
    try:
        init = run.state(b.id)["pid"]
        shm = f"/proc/{init}/root/dev/shm"
        script = ("exec 3< /proc/1/exe; echo > /dev/shm/opened; while [ ! -e /dev/shm/go ]; do sleep 0.05; done; "
                  "(echo attack >> /proc/self/fd/3) 2>/dev/shm/err && echo written > /dev/shm/result "
                  "|| echo refused > /dev/shm/result")
        run("exec", "-d", b.id, "sh", "-c", script, check=True)
        wait_file(f"{shm}/opened")
        run("start", b.id, check=True)
        end = time.monotonic() + 20  # runc's start returns before its init's execve
        while not os.readlink(f"/proc/{init}/exe").endswith("busybox") and time.monotonic() < end:
            time.sleep(0.02)
        assert os.readlink(f"/proc/{init}/exe").endswith("busybox")  # the init is the user's program now
        with open(f"{shm}/go", "w"):
            pass
        result = wait_file(f"{shm}/result")
        with open(f"{shm}/err") as f:
            err = f.read()
        assert result == "refused\n", (name, err)
        # ocirun: EPERM from the seal (not ETXTBSY: nothing runs it now); runc 1.1: a read-only bind mount
        assert ("not permitted" if name == "ocirun" else "") in err, err
    finally:
        run("delete", "-f", b.id)
    assert {h: digest(h) for h in hosts} == before


def seals_of(exe: str) -> int:
    fd = os.open(exe, os.O_RDONLY)
    try:
        return fcntl.fcntl(fd, F_GET_SEALS)
    finally:
        os.close(fd)


def exec_seal_supported() -> bool:
    """F_SEAL_EXEC exists since Linux 6.3."""
    fd = os.memfd_create("probe", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        fcntl.fcntl(fd, 1033, F_SEAL_EXEC)  # F_ADD_SEALS
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def assert_sealed_init(pid: int) -> None:
    exe = f"/proc/{pid}/exe"
    assert os.readlink(exe).startswith("/memfd:ocirun-init"), os.readlink(exe)
    seals = seals_of(exe)
    want = CONTENT_SEALS | (F_SEAL_EXEC if exec_seal_supported() else 0)
    assert seals & want == want, hex(seals)
    assert digest(exe) == digest(INIT)  # the very program built from csrc/, nothing else
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    assert "python" not in maps and ".so" not in maps, maps  # no copy of the runtime's interpreter


def test_created_init_runs_from_a_sealed_memfd(rt, bundle):
    """Seen from the host: the waiting init's exe is the sealed memfd with ocirun-init's bytes, it maps nothing
    of the runtime, its environment is empty and it holds only the fds its plan needs."""
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    try:
        pid = rt.state(b.id)["pid"]
        assert_sealed_init(pid)
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert f.read() == b""
        with open(f"/proc/{pid}/comm") as f:
            assert f.read().strip() == "ocirun-init"
        st = proc_status(pid)
        assert st["State"].startswith("S")
        # stdio, the rootfs (O_PATH, for the cwd) and the start socket: nothing else crossed the execve
        targets = sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
        assert not any("memfd" in t for t in targets), targets
        assert len(targets) == 5 and sum(t.startswith("socket:") for t in targets) == 1, targets
    finally:
        rt("delete", "-f", b.id, check=True)


def private_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        vals = {ln.split()[0].rstrip(":"): int(ln.split()[1]) for ln in f if ln.split()[-1:] == ["kB"]}
    vals["Private"] = vals["Private_Clean"] + vals["Private_Dirty"]
    return vals


def test_waiting_init_memory_is_small(rt, bundle):
    """A created-not-started init held 3.4-3.6 MiB private (a clone of the Python runtime); ocirun-init holds
    ~130 KiB. A generous bound: this checks the mechanism, `make bench` measures it."""
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    try:
        mem = private_kib(rt.state(b.id)["pid"])
        assert mem["Private"] < 1024 and mem["Rss"] < 1024, mem
    finally:
        rt("delete", "-f", b.id, check=True)


def children(pid: int) -> list[int]:
    out = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(task) as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def test_exec_child_runs_from_the_sealed_memfd_before_its_execve(rt, bundle):
    """An `exec` child is caught mid-setup: the container is frozen, so the child stops once the runtime puts
    it in the container's cgroup (its first sync point). Its exe, too, is the sealed memfd; it is in the
    container's mount namespace but not yet in its pid namespace (it forks into that one next); after resume
    it execs the command and exec succeeds."""
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    try:
        init = rt.state(b.id)["pid"]
        rt("pause", b.id, check=True)
        env = dict(os.environ, PYTHONPATH=ROOT)
        with tempfile.TemporaryFile() as out:
            p = subprocess.Popen([*ocirun_cmd(), "--root", rt.root, "exec", "--ignore-paused", b.id, "echo",
                                  "exec-done"], stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                child = find_init(p.pid)
                assert_sealed_init(child)
                # Placed in every hierarchy (the freezer's too): it waits for the runtime's go, then frozen.
                # The deadlines only bound a hang; a loaded machine may take long to get there.
                end = time.monotonic() + 60
                while cgroup_lines(child) != cgroup_lines(init) and time.monotonic() < end:
                    time.sleep(0.02)
                assert cgroup_lines(child) == cgroup_lines(init)
                assert os.readlink(f"/proc/{child}/ns/mnt") == os.readlink(f"/proc/{init}/ns/mnt")
                assert os.readlink(f"/proc/{child}/ns/pid") == os.readlink("/proc/self/ns/pid")
                assert os.readlink(f"/proc/{child}/ns/pid_for_children") == os.readlink(f"/proc/{init}/ns/pid")
            finally:
                rt("resume", b.id, check=True)
                assert p.wait(timeout=120) == 0
            out.seek(0)
            assert out.read() == b"exec-done\n"
    finally:
        rt("delete", "-f", b.id, check=True)


def cgroup_lines(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return sorted(f.read().splitlines())


def userns_bundle(bundle, caps: list[str] | None):  # noqa: ANN001, ANN201
    """A bundle with a new user namespace (root mapped to 100000) and these capabilities in every set (None:
    no process.capabilities at all)."""
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    if caps is None:
        del b.spec["process"]["capabilities"]
    else:
        b.spec["process"]["capabilities"] = {k: list(caps) for k in ALL_SETS}
    b.write()
    os.chown(b.rootfs, 100000, 100000)
    d = b.path
    while d != "/":  # pytest's tmp dirs are 0700: the mapped root must be able to reach the rootfs
        os.chmod(d, os.stat(d).st_mode | 0o055)
        d = os.path.dirname(d)
    return b


def find_init(runtime_pid: int, timeout: float = 60) -> int:
    """The runtime's child once it runs ocirun-init."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for c in children(runtime_pid):
            try:
                if os.readlink(f"/proc/{c}/exe").startswith("/memfd:ocirun-init"):
                    return c
            except FileNotFoundError:
                pass
        time.sleep(0.02)
    raise AssertionError("no child running ocirun-init")


def gone(pid: int) -> bool:
    try:
        return proc_status(pid)["State"].startswith("Z")
    except FileNotFoundError:
        return True


def test_init_dies_with_the_runtime(rt, bundle):
    """The parent-death signal holds across the execve of ocirun-init: a runtime killed while its init waits
    for a createContainer hook takes the init (and so its pid namespace, hook included) with it."""
    b = bundle(["sleep", "1000"])
    b.spec["hooks"] = {"createContainer": [{"path": "/bin/sleep", "args": ["sleep", "60"]}]}
    b.write()
    p = subprocess.Popen([*ocirun_cmd(), "--root", rt.root, "create", "-b", b.path, b.id], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=ROOT))
    hook = None
    try:
        init = find_init(p.pid)
        end = time.monotonic() + 20
        while not (hook := next(iter(children(init)), None)) and time.monotonic() < end:
            time.sleep(0.02)
        assert hook, "the hook never ran"
        p.kill()
        p.wait()
        end = time.monotonic() + 20
        while not gone(init) and time.monotonic() < end:
            time.sleep(0.02)
        assert gone(init) and gone(hook)
    finally:
        p.kill()
        p.wait()
        if hook and not gone(hook):
            os.kill(hook, 9)
        # What a killed create leaves: its state directory and cgroups (no process is left in them).
        shutil.rmtree(os.path.join(rt.root, b.id), ignore_errors=True)
        dirs = [f"/sys/fs/cgroup/{c}{b.cgroup}" for c in os.listdir("/sys/fs/cgroup")] + [f"/sys/fs/cgroup{b.cgroup}"]
        for d in dirs:
            if os.path.isdir(d):
                for _ in range(100):
                    try:
                        os.rmdir(d)
                        break
                    except OSError:
                        time.sleep(0.05)


def test_user_namespace_init_carries_no_capabilities_into_the_process(rt, bundle):
    """A child born in a new user namespace execs ocirun-init before its root is mapped, so its capabilities
    cross that execve in the ambient set; they must not reach the container's process: with no
    process.capabilities it has what clone(CLONE_NEWUSER) gives (full permitted, empty inheritable and
    ambient), and with them exactly those."""
    b = userns_bundle(bundle, None)
    rt("create", "-b", b.path, b.id, check=True)
    try:
        pid = rt.state(b.id)["pid"]
        st = proc_status(pid)
        assert int(st["CapAmb"], 16) == 0 and int(st["CapInh"], 16) == 0, st
        rt("start", b.id, check=True)
        end = time.monotonic() + 10
        while not os.readlink(f"/proc/{pid}/exe").endswith("busybox") and time.monotonic() < end:
            time.sleep(0.02)
        st = proc_status(pid)
        assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")
        assert int(st["CapAmb"], 16) == 0 and int(st["CapInh"], 16) == 0, st
        assert int(st["CapPrm"], 16) == int(st["CapBnd"], 16) != 0, st
    finally:
        rt("delete", "-f", b.id, check=True)
    b = userns_bundle(bundle, ["CAP_KILL", "CAP_CHOWN"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    try:
        st = proc_status(rt.state(b.id)["pid"])
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[k], 16) == (1 << 5) | (1 << 0), (k, st)
    finally:
        rt("delete", "-f", b.id, check=True)


def test_init_joining_another_pid_namespace_runs(rt, bundle):
    """linux.namespaces pid with a path: the child is cloned into that namespace (the runtime's pid is then not
    its parent as it sees it: the parent check must not kill it) and execs the sealed init there."""
    a = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", a.path, a.id, check=True)
    b = bundle(["sleep", "1000"])
    try:
        first = rt.state(a.id)["pid"]
        for n in b.spec["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = f"/proc/{first}/ns/pid"
        b.write()
        rt("create", "-b", b.path, b.id, check=True)
        pid = rt.state(b.id)["pid"]
        assert_sealed_init(pid)
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{first}/ns/pid")
        rt("start", b.id, check=True)
        assert rt.state(b.id)["status"] == "running"
    finally:
        rt("delete", "-f", b.id)
        rt("delete", "-f", a.id, check=True)


# Run inside `unshare -p -f --mount-proc` (vm.memfd_noexec is per pid namespace and only goes up: the host
# keeps its value): forbid executable memfds, check that they are forbidden, then run the scenario given as
# argv[1] with ocirun's command line in argv[2] (JSON) and print what it saw as JSON.
NOEXEC_HELPER = r"""
import json, os, subprocess, sys, time
with open("/proc/sys/vm/memfd_noexec", "w") as f:
    f.write("2")
try:
    os.close(os.memfd_create("probe", 0x10))  # MFD_EXEC
    sys.exit("memfd_noexec=2 did not take")
except PermissionError:
    pass
scenario, ocirun, cid, bundle = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
if scenario == "no-fallback":  # fsopen (the new mount API) as on a kernel without it
    import pyseccomp
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    flt.add_rule(pyseccomp.ERRNO(38), "fsopen")
    flt.load()
    os.execv(ocirun[0], [*ocirun, "run", "-b", bundle, cid])
def rt(*args, check=True):  # files, not pipes: a created init keeps its stdio
    import tempfile
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        p = subprocess.run([*ocirun, *args], stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, timeout=60)
        fo.seek(0)
        fe.seek(0)
        p.stdout, p.stderr = fo.read(), fe.read()
    if check and p.returncode:
        sys.exit(f"{args}: {p.stderr}")
    return p
out = {}
rt("create", "-b", bundle, cid)
try:
    pid = json.loads(rt("state", cid).stdout)["pid"]
    exe = f"/proc/{pid}/exe"
    out["exe"] = os.readlink(exe)
    with open(exe, "rb") as f:
        out["exe_bytes"] = f.read().hex()
    out["exe_readonly"] = bool(os.statvfs(exe).f_flag & os.ST_RDONLY)
    try:
        os.close(os.open(exe, os.O_WRONLY))
        out["open_for_writing"] = "ok"
    except OSError as e:
        out["open_for_writing"] = e.strerror
    with open(f"/proc/{pid}/maps") as f:
        out["maps_runtime"] = any("python" in ln or ".so" in ln for ln in f)
    out["attack"] = rt("exec", cid, "sh", "-c", sys.argv[5]).stdout.split()
    shm = f"/proc/{pid}/root/dev/shm"
    rt("exec", "-d", cid, "sh", "-c", "exec 3< /proc/1/exe; echo > /dev/shm/opened; "
       "while [ ! -e /dev/shm/go ]; do sleep 0.05; done; (echo attack >> /proc/self/fd/3) 2>/dev/shm/err "
       "&& echo written > /dev/shm/result || echo refused > /dev/shm/result")
    while not os.path.exists(f"{shm}/opened"):
        time.sleep(0.05)
    rt("start", cid)
    while not os.readlink(exe).endswith("busybox"):
        time.sleep(0.02)
    open(f"{shm}/go", "w").close()
    while not os.path.exists(f"{shm}/result") or not open(f"{shm}/result").read():
        time.sleep(0.05)
    out["held_fd"] = open(f"{shm}/result").read().strip() + ": " + open(f"{shm}/err").read().strip()
finally:
    rt("delete", "-f", cid, check=False)
print(json.dumps(out))
"""


def memfd_noexec_or_skip() -> str:
    """The host's vm.memfd_noexec; skips where there is none or no unshare(1) to raise it in a pid namespace."""
    if not os.path.exists("/proc/sys/vm/memfd_noexec"):
        pytest.skip("kernel without vm.memfd_noexec (before 6.3)")
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1)")
    with open("/proc/sys/vm/memfd_noexec") as f:
        return f.read()


def under_memfd_noexec(rt, b, scenario: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    """NOEXEC_HELPER's scenario in a new pid namespace with vm.memfd_noexec=2."""
    memfd_noexec_or_skip()
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", NOEXEC_HELPER,
                           scenario, json.dumps([*ocirun_cmd(), "--root", rt.root]), b.id, b.path, ATTACK],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))


def test_memfd_noexec_falls_back_to_a_read_only_private_copy(rt, bundle):
    """vm.memfd_noexec=2 (per pid namespace, Linux 6.3+) forbids executable memfds: the init then runs from
    a copy of ocirun-init in a tmpfs of the runtime's own, mounted nowhere and read-only (superblock and
    mount). The issue's attacks from a CAP_SYS_PTRACE container fail as with the memfd (EROFS where the
    seal gives EPERM), no host file changes, and the host's vm.memfd_noexec is untouched."""
    b = bundle(["sleep", "1000"])
    ptrace_capable(b)
    native = glob.glob(os.path.join(ROOT, "ocirun", "_native*.so"))
    hosts = [ocirun_cmd()[0], INIT, *native]
    before = {h: digest(h) for h in hosts}
    host_value = memfd_noexec_or_skip()
    p = under_memfd_noexec(rt, b, "fallback")
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout)
    assert seen["exe"] == "/ocirun-init", seen["exe"]  # a file in a detached mount, not a memfd
    with open(INIT, "rb") as f:
        assert bytes.fromhex(seen["exe_bytes"]) == f.read()
    assert seen["exe_readonly"] and seen["open_for_writing"] == "Read-only file system", seen
    assert not seen["maps_runtime"]
    assert seen["attack"] == ["read-ok", "append-refused", "reopen-refused", "control-ok"], seen
    assert seen["held_fd"].startswith("refused: ") and "Read-only file system" in seen["held_fd"], seen
    assert {h: digest(h) for h in hosts} == before
    with open("/proc/sys/vm/memfd_noexec") as f:
        assert f.read() == host_value


def test_memfd_noexec_without_the_fallback_is_one_clear_error(rt, bundle):
    """Where executable memfds are refused and the private tmpfs cannot be made either (no fsopen, as on a
    kernel before 5.2, or a seccomp filter forbidding it), create fails with one line saying both, and
    leaves no state, cgroup or process behind (the fixtures check)."""
    b = bundle(["true"])
    p = under_memfd_noexec(rt, b, "no-fallback")
    assert p.returncode == 1, p
    assert p.stderr == ("ocirun: container init: the kernel refuses an executable memfd (vm.memfd_noexec=2) and a "
                        "read-only copy in a private tmpfs failed: function not implemented\n"), p.stderr
    assert not os.path.exists(os.path.join(rt.root, b.id))


def test_missing_init_program_is_one_clear_error(rt, bundle, tmp_path):
    """A package without ocirun-init (not built) fails create with one line naming the file and the fix."""
    pkg = tmp_path / "pkg"
    shutil.copytree(os.path.join(ROOT, "ocirun"), pkg / "ocirun",
                    ignore=shutil.ignore_patterns("__pycache__", "ocirun-init"))
    b = bundle(["true"])
    p = subprocess.run([sys.executable, "-c", "from ocirun.cli import main; main()", "--root", rt.root, "run",
                        "-b", b.path, b.id], capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                       env=dict(os.environ, PYTHONPATH=str(pkg)))
    missing = pkg / "ocirun" / "ocirun-init"
    assert p.returncode == 1, p
    assert p.stderr == (f"ocirun: container init: {missing}: no such file or directory "
                        "(build it: python3 -m ocirun._build_c)\n"), p.stderr
    assert not os.path.exists(os.path.join(rt.root, b.id))
