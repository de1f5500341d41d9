"""cgroup v2 manager against the real kernel. On a v2 host it runs at /sys/fs/cgroup through open_manager();
on a hybrid host the core v2 features (freeze, kill, BPF devices, procs, hugetlb if delegated) are exercised
on the /sys/fs/cgroup/unified mount. Tests needing a controller skip when it is not available."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from cgrouptest import BUSY, KEYS, cpu_ticks, read, sleeper, spawn, tracked

from ocirun.cgroups import detect_mode, fsutil, open_manager
from ocirun.cgroups.v2 import V2Manager
from ocirun.errors import OciError


def _v2_root() -> str | None:
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            if fsutil.fs_magic(root) == fsutil.CGROUP2_SUPER_MAGIC:
                return root
        except OSError:
            continue
    return None


ROOT = _v2_root()
pytestmark = [
    pytest.mark.cgroup2,
    pytest.mark.skipif(os.geteuid() != 0 or ROOT is None, reason="needs root and a cgroup2 mount"),
]


def _available(ctrl: str) -> bool:
    return ROOT is not None and ctrl in read(ROOT + "/cgroup.controllers").split()


def need(ctrl: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not _available(ctrl), reason=f"no {ctrl} controller on the cgroup2 mount")


@pytest.fixture
def mgr() -> Iterator[V2Manager]:
    assert ROOT is not None
    name = f"/ocirun-test-{uuid.uuid4().hex[:12]}"
    on_v2_host = detect_mode() == "v2"
    m = open_manager(name, "t") if on_v2_host else V2Manager(ROOT + name, root=ROOT)
    assert isinstance(m, V2Manager)
    saved = read(ROOT + "/cgroup.subtree_control").split()
    try:
        with tracked(m):
            yield m
    finally:
        for _ in range(200):
            if not m.pids():
                break
            time.sleep(0.01)
        m.destroy()
        assert not os.path.exists(m.dir)
        if not on_v2_host:  # leave the host's hybrid mount as we found it
            _restore_subtree_control(saved)


def _restore_subtree_control(saved: list[str]) -> None:
    """Disable what create() enabled at the mount root; a just-removed child may hold it briefly (EBUSY)."""
    assert ROOT is not None
    for _ in range(100):
        extra = set(read(ROOT + "/cgroup.subtree_control").split()) - set(saved)
        if not extra:
            return
        try:
            with open(ROOT + "/cgroup.subtree_control", "w") as f:
                f.write(" ".join("-" + c for c in extra))
        except OSError:
            time.sleep(0.02)




def test_create_destroy_and_clone_into_fd(mgr: V2Manager) -> None:
    mgr.create()
    mgr.create()
    assert os.path.isdir(mgr.dir)
    assert mgr.paths()["unified"] == mgr.dir
    fd = mgr.clone_into_fd()
    try:
        st = os.fstat(fd)
        assert stat.S_ISDIR(st.st_mode) and st.st_ino == os.stat(mgr.dir).st_ino
    finally:
        os.close(fd)
    assert mgr.to_state() == {"mode": "v2", "path": mgr.dir, "root": mgr.root}


def test_add_pid_and_recursive_pids(mgr: V2Manager) -> None:
    mgr.create()
    a = sleeper(mgr)
    assert read(f"/proc/{a.pid}/cgroup").splitlines()[-1].endswith(mgr.dir[len(mgr.root):])
    os.mkdir(mgr.dir + "/sub")
    b = spawn(mgr, "sleep", "1000")
    with open(mgr.dir + "/sub/cgroup.procs", "w") as f:
        f.write(str(b.pid))
    assert mgr.pids() == sorted([a.pid, b.pid])


def test_freeze_thaw(mgr: V2Manager) -> None:
    mgr.create()
    p = spawn(mgr, "sh", "-c", "while :; do :; done")
    mgr.add_pid(p.pid)
    mgr.freeze()
    assert mgr.is_frozen()
    assert "frozen 1" in read(mgr.dir + "/cgroup.events").splitlines()
    assert read(f"/proc/{p.pid}/stat").rsplit(")", 1)[1].split()[0] in ("S", "D")
    ticks = cpu_ticks(p.pid)
    time.sleep(0.3)
    assert cpu_ticks(p.pid) == ticks
    mgr.thaw()
    assert not mgr.is_frozen()
    assert read(mgr.dir + "/cgroup.freeze") == "0"


def test_kill_all(mgr: V2Manager) -> None:
    mgr.create()
    a, b = sleeper(mgr), sleeper(mgr)
    mgr.kill_all(signal.SIGTERM)
    assert (a.wait(), b.wait()) == (-signal.SIGTERM, -signal.SIGTERM)
    c = sleeper(mgr)
    mgr.freeze()
    mgr.kill_all(signal.SIGKILL)  # cgroup.kill reaches frozen tasks too
    assert c.wait() == -signal.SIGKILL


OPEN_PROBE = (
    "import os\n"
    "for n,f in (('/dev/null',os.O_RDWR),('/dev/zero',os.O_RDONLY),('/dev/zero',os.O_WRONLY),\n"
    "            ('/dev/full',os.O_RDONLY)):\n"
    "  try: os.close(os.open(n,f)); print('ok')\n"
    "  except OSError as e: print(e.errno)\n"
)


def _probe(mgr: V2Manager) -> list[str]:
    p = spawn(mgr, "sh", "-c", f'read x; exec {sys.executable} -c "$0"', OPEN_PROBE,
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    mgr.add_pid(p.pid)
    out, _ = p.communicate("go\n")
    return out.split()


def _attached(mgr: V2Manager) -> int:
    from ocirun import _native

    ids = _native.ffi.new("uint32_t[]", 64)
    fd = fsutil.open_dir(mgr.dir)
    try:
        n = _native.lib.ocirun_devcg_query(fd, ids, 64)
    finally:
        os.close(fd)
    assert n >= 0
    return n


def test_bpf_device_filter_is_enforced_and_replaced_on_update(mgr: V2Manager) -> None:
    mgr.create()
    eperm = str(errno.EPERM)
    mgr.apply({"devices": [{"allow": False, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]},
              device_allow=[{"type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    assert _attached(mgr) == 1
    assert _probe(mgr) == ["ok", "ok", eperm, eperm]
    # update: a new program replaces the old one (still exactly one attached)
    mgr.apply({"devices": [{"allow": False, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 1, "access": "rw"},
                           {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]})
    assert _attached(mgr) == 1
    assert _probe(mgr) == [eperm, "ok", "ok", "ok"]


def test_bpf_allow_all(mgr: V2Manager) -> None:
    mgr.create()
    mgr.apply({"devices": [{"allow": True, "access": "rwm"}]})
    assert _probe(mgr) == ["ok", "ok", "ok", "ok"]


def test_stats_shape(mgr: V2Manager) -> None:
    mgr.create()
    p = spawn(mgr, "sh", "-c", BUSY,
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    mgr.add_pid(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline() == "done\n"
    s = mgr.stats()
    assert set(s) == KEYS
    assert s["cpu"]["usage"]["total"] > 0 and {"kernel", "user"} <= set(s["cpu"]["usage"])
    if _available("memory"):
        assert {"limit", "failcnt"} <= set(s["memory"]["usage"])
    if _available("pids"):
        assert s["pids"]["current"] == 1
    assert mgr.oom_kill_count() == 0


def test_unified_writes_and_errors(mgr: V2Manager) -> None:
    mgr.create()
    mgr.apply({"unified": {"cgroup.max.descendants": "5"}})
    assert read(mgr.dir + "/cgroup.max.descendants") == "5"
    for key in ("../x.y", "cgroup.procs"):
        what = f'linux.resources.unified["{key}"]'  # (keys that are not plain names are quoted in paths)
        with pytest.raises(OciError) as e:
            mgr.apply({"unified": {key: "1"}})
        assert e.value.what == what
    if not _available("memory"):
        with pytest.raises(OciError, match="the memory controller is not available"):
            mgr.apply({"unified": {"memory.high": "10000000"}})
    with pytest.raises(OciError) as e:
        mgr.apply({"unified": {"cgroup.max.depth": "lots"}})
    assert e.value.why == "writing cgroup.max.depth: Invalid argument"


def test_v1_only_settings_are_refused(mgr: V2Manager) -> None:
    mgr.create()
    with pytest.raises(OciError) as e:
        mgr.apply({"cpu": {"realtimeRuntime": 1000}})
    assert e.value.what == "linux.resources.cpu.realtimeRuntime"
    with pytest.raises(OciError) as e:
        mgr.apply({"network": {"classID": 1}})
    assert e.value.what == "linux.resources.network"


@need("hugetlb")
def test_hugetlb(mgr: V2Manager) -> None:
    mgr.create()
    mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert read(mgr.dir + "/hugetlb.2MB.max") == str(4 << 20)
    assert "2MB" in mgr.stats()["hugetlb"]
    with pytest.raises(OciError) as e:
        mgr.apply({"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]})
    assert e.value.what == "linux.resources.hugepageLimits[0]"
    assert e.value.why.startswith("writing hugetlb.3MB.max: No such file or directory")


@need("memory")
def test_memory_conversions_and_partial_update(mgr: V2Manager) -> None:
    mgr.create()
    mgr.apply({"memory": {"limit": 64 << 20, "reservation": 16 << 20, "swappiness": 10, "kernel": 1 << 20}})
    assert read(mgr.dir + "/memory.max") == str(64 << 20)
    assert read(mgr.dir + "/memory.low") == str(16 << 20)
    if os.path.exists(mgr.dir + "/memory.swap.max"):
        mgr.apply({"memory": {"limit": 64 << 20, "swap": 96 << 20}})
        assert read(mgr.dir + "/memory.swap.max") == str(32 << 20)
    mgr.apply({"memory": {"reservation": 8 << 20}})
    assert read(mgr.dir + "/memory.max") == str(64 << 20)
    mgr.apply({"memory": {"limit": -1}})
    assert read(mgr.dir + "/memory.max") == "max"


@need("memory")
def test_memory_oom_and_check_before_update(mgr: V2Manager) -> None:
    mgr.create()
    mgr.apply({"memory": {"limit": 48 << 20, "swap": 48 << 20}})
    p = spawn(mgr, "sh", "-c", f'read x; exec {sys.executable} -c "b = b\'x\' * (256 << 20)"',
               stdin=subprocess.PIPE)
    mgr.add_pid(p.pid)
    p.communicate(b"go\n")
    assert p.returncode == -signal.SIGKILL
    assert mgr.oom_kill_count() >= 1
    q = sleeper(mgr)
    assert q.poll() is None
    with pytest.raises(OciError, match="checkBeforeUpdate"):
        mgr.apply({"memory": {"limit": 4096, "checkBeforeUpdate": True}})


@need("pids")
def test_pids_limit(mgr: V2Manager) -> None:
    mgr.create()
    mgr.apply({"pids": {"limit": 3}})
    assert read(mgr.dir + "/pids.max") == "3"
    p = spawn(mgr, "sh", "-c", "read x; sleep 1000 & sleep 1000 & sleep 1000 & echo $?; exec sleep 1000",
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    mgr.add_pid(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    time.sleep(0.2)
    assert len(mgr.pids()) <= 3
    assert int(read(mgr.dir + "/pids.events").split()[1]) > 0


@need("cpu")
def test_cpu_conversions(mgr: V2Manager) -> None:
    mgr.create()
    mgr.apply({"cpu": {"shares": 1024, "quota": 50000, "period": 100000}})
    assert read(mgr.dir + "/cpu.weight") == "39"
    assert read(mgr.dir + "/cpu.max") == "50000 100000"
    mgr.apply({"cpu": {"period": 200000}})  # partial: the quota stays
    assert read(mgr.dir + "/cpu.max") == "50000 200000"
    mgr.apply({"cpu": {"quota": -1}})
    assert read(mgr.dir + "/cpu.max") == "max 200000"


@need("io")
def test_io_weight(mgr: V2Manager) -> None:
    mgr.create()
    try:
        mgr.apply({"blockIO": {"weight": 500}})
    except OciError as e:  # io.weight needs a scheduler that supports it
        pytest.skip(str(e))
    if os.path.exists(mgr.dir + "/io.bfq.weight"):
        assert read(mgr.dir + "/io.bfq.weight").split()[-1] == "500"
    else:
        assert read(mgr.dir + "/io.weight") == "default 4950"
