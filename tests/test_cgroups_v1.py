"""cgroup v1 / hybrid manager against the real kernel: files written, limits enforced, errors, cleanup."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from cgrouptest import BUSY, KEYS, cpu_ticks, read, sleeper, spawn, tracked

from ocirun.cgroups import detect_mode, from_state, open_manager
from ocirun.cgroups.base import Manager
from ocirun.errors import OciError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup") or detect_mode() == "v2",
    reason="needs root on a cgroup v1 or hybrid host",
)


@pytest.fixture
def mgr() -> Iterator[Manager]:
    name = f"/ocirun-test-{uuid.uuid4().hex[:12]}"
    m = open_manager(name, "t")
    try:
        with tracked(m):
            yield m
    finally:
        m.destroy()
        assert not any(os.path.exists(p) for p in m.paths().values())




def test_create_makes_every_hierarchy_and_is_idempotent(mgr: Manager) -> None:
    paths = mgr.paths()
    assert paths  # (v1 or hybrid: at least one hierarchy)
    for ctrl in ("memory", "cpu", "pids", "freezer", "devices", "name=systemd"):
        if ctrl in paths:
            assert not os.path.exists(paths[ctrl])
    mgr.create()
    mgr.create()
    for ctrl, d in paths.items():
        assert os.path.isdir(d), ctrl
    if "cpuset" in paths:  # a new v1 cpuset must inherit cpus/mems or it refuses tasks
        assert read(paths["cpuset"] + "/cpuset.cpus") != ""
        assert read(paths["cpuset"] + "/cpuset.mems") != ""
    if detect_mode() == "hybrid":
        assert paths["unified"].startswith("/sys/fs/cgroup/unified/")


def test_add_pid_joins_every_hierarchy_and_pids_lists_it(mgr: Manager) -> None:
    mgr.create()
    p = sleeper(mgr)
    assert mgr.pids() == [p.pid]
    rel = mgr.to_state()["path"]
    with open(f"/proc/{p.pid}/cgroup") as f:
        lines = f.read().splitlines()
    joined = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in lines}
    for ctrl in ("memory", "pids", "freezer", "name=systemd"):
        assert joined.get(ctrl) == rel, ctrl


def test_pids_is_recursive_and_sorted(mgr: Manager) -> None:
    mgr.create()
    a = sleeper(mgr)
    child = mgr.paths()["pids"] + "/sub"
    os.mkdir(child)
    b = spawn(mgr, "sleep", "1000")
    with open(child + "/cgroup.procs", "w") as f:
        f.write(str(b.pid))
    assert mgr.pids() == sorted([a.pid, b.pid])


def test_memory_files_and_partial_update(mgr: Manager) -> None:
    mgr.create()
    mem = mgr.paths()["memory"]
    mgr.apply({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 10,
                          "kernelTCP": 16 << 20, "disableOOMKiller": False, "useHierarchy": True}})
    assert read(mem + "/memory.limit_in_bytes") == str(64 << 20)
    assert read(mem + "/memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(mem + "/memory.swappiness") == "10"
    assert read(mem + "/memory.kmem.tcp.limit_in_bytes") == str(16 << 20)
    if os.path.exists(mem + "/memory.memsw.limit_in_bytes"):
        mgr.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
        assert read(mem + "/memory.memsw.limit_in_bytes") == str(128 << 20)
        # shrinking both: limit must go first so memsw >= limit holds at every step
        mgr.apply({"memory": {"limit": 32 << 20, "swap": 48 << 20}})
        assert read(mem + "/memory.limit_in_bytes") == str(32 << 20)
        assert read(mem + "/memory.memsw.limit_in_bytes") == str(48 << 20)
    # partial update: only reservation changes, the limit stays
    before = read(mem + "/memory.limit_in_bytes")
    mgr.apply({"memory": {"reservation": 8 << 20}})
    assert read(mem + "/memory.soft_limit_in_bytes") == str(8 << 20)
    assert read(mem + "/memory.limit_in_bytes") == before
    assert read(mem + "/memory.swappiness") == "10"
    mgr.apply({"memory": {"limit": -1}})
    assert int(read(mem + "/memory.limit_in_bytes")) > 1 << 60


def test_cpu_cpuset_pids_blkio_files(mgr: Manager) -> None:
    mgr.create()
    paths = mgr.paths()
    mgr.apply({
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0,
                "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
    })
    assert read(paths["cpu"] + "/cpu.shares") == "512"
    assert read(paths["cpu"] + "/cpu.cfs_quota_us") == "50000"
    assert read(paths["cpu"] + "/cpu.cfs_period_us") == "100000"
    if os.path.exists(paths["cpu"] + "/cpu.cfs_burst_us"):
        assert read(paths["cpu"] + "/cpu.cfs_burst_us") == "1000"
    assert read(paths["cpuset"] + "/cpuset.cpus") == "0"
    assert read(paths["pids"] + "/pids.max") == "42"
    # smaller period than before together with a quota: runc's order makes both stick
    mgr.apply({"cpu": {"quota": 5000, "period": 10000}})
    assert read(paths["cpu"] + "/cpu.cfs_quota_us") == "5000"
    assert read(paths["cpu"] + "/cpu.cfs_period_us") == "10000"
    mgr.apply({"pids": {"limit": 0}})
    assert read(paths["pids"] + "/pids.max") == "max"
    # update naming only the period keeps shares
    mgr.apply({"cpu": {"period": 20000}})
    assert read(paths["cpu"] + "/cpu.shares") == "512"


def _root_block_device() -> tuple[int, int] | None:
    st = os.stat("/")
    for name in os.listdir("/sys/block"):
        try:
            maj, mnr = read(f"/sys/block/{name}/dev").split(":")
        except OSError:
            continue
        if int(maj) == os.major(st.st_dev):
            return int(maj), int(mnr)
    return None


def test_blkio_throttle(mgr: Manager) -> None:
    dev = _root_block_device()
    if dev is None or "blkio" not in mgr.paths():
        pytest.skip("no whole-disk block device for / or no blkio")
    mgr.create()
    maj, mnr = dev
    mgr.apply({"blockIO": {"throttleReadBpsDevice": [{"major": maj, "minor": mnr, "rate": 1048576}],
                           "throttleWriteIOPSDevice": [{"major": maj, "minor": mnr, "rate": 100}]}})
    b = mgr.paths()["blkio"]
    assert read(b + "/blkio.throttle.read_bps_device") == f"{maj}:{mnr} 1048576"
    assert read(b + "/blkio.throttle.write_iops_device") == f"{maj}:{mnr} 100"


def test_devices_v1_allow_list_is_enforced(mgr: Manager) -> None:
    mgr.create()
    mgr.apply({"devices": [{"allow": False, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]},
              device_allow=[{"type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    listing = read(mgr.paths()["devices"] + "/devices.list").splitlines()
    assert sorted(listing) == ["c 1:3 rwm", "c 1:5 r"]
    code = ("import os,sys\n"
            "for n,f in (('/dev/null',os.O_RDWR),('/dev/zero',os.O_RDONLY),('/dev/zero',os.O_WRONLY),"
            "('/dev/full',os.O_RDONLY)):\n"
            "  try: os.close(os.open(n,f)); print(n,'ok')\n"
            "  except OSError as e: print(n,e.errno)\n")
    p = spawn(mgr, "sh", "-c", f'read x; exec {sys.executable} -c "$0"', code,
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    mgr.add_pid(p.pid)
    out, _ = p.communicate("go\n")
    assert out.split("\n")[:4] == ["/dev/null ok", "/dev/zero ok", "/dev/zero 1", "/dev/full 1"]


def test_memory_limit_is_enforced_by_oom_kill(mgr: Manager) -> None:
    mgr.create()
    limit = 48 << 20
    mem = {"limit": limit}
    if os.path.exists(mgr.paths()["memory"] + "/memory.memsw.limit_in_bytes"):
        mem["swap"] = limit  # no swap either
    mgr.apply({"memory": mem})
    before = mgr.oom_kill_count()
    p = spawn(mgr, "sh", "-c", f'read x; exec {sys.executable} -c "b = b\'x\' * (256 << 20); print(len(b))"',
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    mgr.add_pid(p.pid)
    out, _ = p.communicate("go\n")
    assert p.returncode == -signal.SIGKILL
    assert out == ""
    assert mgr.oom_kill_count() >= before + 1
    peak = mgr.stats()["memory"]["usage"]["max"]
    assert 0 < peak <= limit


FORK_LOOP = """
import os, sys, time
n = 0
for _ in range(40):
    try:
        pid = os.fork()
    except OSError as e:
        print("refused", e.errno, flush=True)
        break
    if pid == 0:
        os.close(1)
        time.sleep(1000)
        os._exit(0)
    n += 1
print("forked", n, flush=True)
time.sleep(1000)
"""


def test_pids_limit_stops_a_fork_loop(mgr: Manager) -> None:
    mgr.create()
    mgr.apply({"pids": {"limit": 8}})
    p = spawn(mgr, "sh", "-c", f'read x; exec {sys.executable} -c "$0"', FORK_LOOP,
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    mgr.add_pid(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline() == f"refused {errno.EAGAIN}\n"
    assert p.stdout.readline() == "forked 7\n"  # 8 tasks: the loop itself and 7 children
    pids_dir = mgr.paths()["pids"]
    assert int(read(pids_dir + "/pids.current")) == 8
    assert len(mgr.pids()) == 8
    assert int(read(pids_dir + "/pids.events").split()[1]) > 0  # "max N": forks refused
    assert mgr.stats()["pids"] == {"current": 8, "limit": 8}


def test_freeze_thaw_stops_a_busy_process(mgr: Manager) -> None:
    mgr.create()
    p = spawn(mgr, "sh", "-c", "while :; do :; done")
    mgr.add_pid(p.pid)
    assert not mgr.is_frozen()
    mgr.freeze()
    assert mgr.is_frozen()
    assert read(mgr.paths()["freezer"] + "/freezer.state") == "FROZEN"
    state = read(f"/proc/{p.pid}/stat").rsplit(")", 1)[1].split()[0]
    assert state in ("D", "S")  # a busy loop that is not runnable
    ticks = cpu_ticks(p.pid)
    time.sleep(0.3)
    assert cpu_ticks(p.pid) == ticks  # no progress while frozen
    mgr.thaw()
    assert not mgr.is_frozen()
    assert read(mgr.paths()["freezer"] + "/freezer.state") == "THAWED"


def test_kill_all_signals_every_process(mgr: Manager) -> None:
    mgr.create()
    a, b = sleeper(mgr), sleeper(mgr)
    mgr.kill_all(signal.SIGTERM)
    assert a.wait() == -signal.SIGTERM and b.wait() == -signal.SIGTERM
    c = sleeper(mgr)
    mgr.freeze()  # a paused container must still die on SIGKILL
    mgr.kill_all(signal.SIGKILL)
    assert c.wait() == -signal.SIGKILL
    assert not mgr.is_frozen()


def test_stats_shape_matches_runc_events(mgr: Manager) -> None:
    mgr.create()
    mgr.apply({"memory": {"limit": 256 << 20}, "pids": {"limit": 100}})
    p = spawn(mgr, "sh", "-c", BUSY,
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    mgr.add_pid(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline() == "done\n"
    s = mgr.stats()
    assert set(s) == KEYS
    assert s["cpu"]["usage"]["total"] > 0
    assert set(s["cpu"]["usage"]) >= {"total", "kernel", "user"}
    assert s["memory"]["usage"]["limit"] == 256 << 20
    assert {"limit", "failcnt"} <= set(s["memory"]["usage"])
    assert isinstance(s["memory"]["raw"], dict) and "total_rss" in s["memory"]["raw"]
    assert s["pids"] == {"current": 1, "limit": 100}
    assert isinstance(s["hugetlb"], dict)
    if "cpuset" in mgr.paths():
        assert s["cpuset"]["cpus"] and "sched_load_balance" in s["cpuset"]


def test_state_round_trip_controls_the_same_cgroup(mgr: Manager) -> None:
    mgr.create()
    p = sleeper(mgr)
    again = from_state(mgr.to_state())
    assert again.pids() == [p.pid]
    assert again.clone_into_fd() is None
    again.kill_all(signal.SIGKILL)
    p.wait()


# --- errors -------------------------------------------------------------------------------------

def test_limit_below_usage_names_resource_and_file(mgr: Manager) -> None:
    mgr.create()
    mgr.apply({"memory": {"limit": 256 << 20}})
    hog = "b = b'x' * (40 << 20); print(1, flush=True); import time; time.sleep(1000)"
    p = spawn(mgr, "sh", "-c", f'read x; exec {sys.executable} -c "$0"', hog,
               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    mgr.add_pid(p.pid)
    mem = {"limit": 4 << 20}
    if os.path.exists(mgr.paths()["memory"] + "/memory.oom_control"):
        mgr.apply({"memory": {"disableOOMKiller": True}})
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline() == "1\n"
    with pytest.raises(OciError) as e:
        mgr.apply({"memory": mem})
    assert e.value.what == "linux.resources.memory.limit"
    assert e.value.why.startswith("writing memory.limit_in_bytes: Device or resource busy")


def test_kernel_refusal_is_reported_with_resource_and_file(mgr: Manager) -> None:
    mgr.create()
    with pytest.raises(OciError) as e:
        mgr.apply({"cpu": {"cpus": "4096-4100"}})
    assert e.value.what == "linux.resources.cpu.cpus"
    assert e.value.why.startswith("writing cpuset.cpus: ")
    if os.path.exists(mgr.paths()["cpu"] + "/cpu.rt_runtime_us"):
        with pytest.raises(OciError) as e:  # runtime above the period (and the root's budget)
            mgr.apply({"cpu": {"realtimeRuntime": 1000001, "realtimePeriod": 1000000}})
        assert e.value.what == "linux.resources.cpu.realtimeRuntime"
        assert e.value.why == "writing cpu.rt_runtime_us: Invalid argument"
        mgr.apply({"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 1000000}})
        assert read(mgr.paths()["cpu"] + "/cpu.rt_runtime_us") == "1000"


def test_use_hierarchy_refused_by_modern_kernels(mgr: Manager) -> None:
    """A kernel that refuses the knob (5.x+: always hierarchical) gives one clear error; one that still has it
    takes the value (this test used to pass without checking anything there)."""
    mgr.create()
    try:
        mgr.apply({"memory": {"useHierarchy": False}})
    except OciError as e:
        assert e.what == "linux.resources.memory.useHierarchy"
        assert e.why == "writing memory.use_hierarchy: Invalid argument"
        return
    assert read(mgr.paths()["memory"] + "/memory.use_hierarchy") == "0"


def test_unified_is_refused_on_v1(mgr: Manager) -> None:
    mgr.create()
    with pytest.raises(OciError) as e:
        mgr.apply({"unified": {"memory.high": "1000000"}})
    assert e.value.what == "linux.resources.unified"
    assert "cgroup v2" in e.value.why


def test_unmounted_controller_is_an_error(mgr: Manager) -> None:
    mgr.create()
    if "net_cls" not in mgr.paths():
        with pytest.raises(OciError, match="net_cls cgroup controller is not available"):
            mgr.apply({"network": {"classID": 0x100001}})
    if "hugetlb" not in mgr.paths():
        with pytest.raises(OciError, match="hugetlb cgroup controller is not available"):
            mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})


def test_invalid_values_name_the_json_path(mgr: Manager) -> None:
    mgr.create()
    for res, what in (
        ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
        ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit"),
        ({"cpu": {"cpus": 3}}, "linux.resources.cpu.cpus"),
        ({"pids": {"limit": True}}, "linux.resources.pids.limit"),
        ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ):
        with pytest.raises(OciError) as e:
            mgr.apply(res)
        assert e.value.what == what


def test_destroy_with_exiting_tasks_and_missing_dirs(mgr: Manager) -> None:
    mgr.create()
    p = sleeper(mgr)
    os.mkdir(mgr.paths()["memory"] + "/nested")
    mgr.kill_all(signal.SIGKILL)
    p.wait()
    mgr.destroy()
    mgr.destroy()  # idempotent
    assert not any(os.path.exists(d) for d in mgr.paths().values())


def test_destroy_refuses_while_tasks_live(mgr: Manager) -> None:
    mgr.create()
    sleeper(mgr)
    with pytest.raises(OciError, match="removing cgroup: Device or resource busy"):
        from ocirun.cgroups import fsutil

        fsutil.rmdir_tree(mgr.paths()["memory"], retries=2, delay=0)
