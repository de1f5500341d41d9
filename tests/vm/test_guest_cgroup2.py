"""Checks that the cgroup2 test VM (tests/vm/run-cgroup2.sh) is what the cgroup v2 tests expect:
a pure cgroup v2 host with every controller delegated from the root, where limits take effect.
Skipped anywhere else (a v1 or hybrid host)."""

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

CG = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270
CONTROLLERS = {"cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"}


def fs_magic(path: str) -> int:
    # os.statvfs has no f_type; struct statfs starts with it (a long) on Linux.
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    buf = ctypes.create_string_buffer(256)
    if libc.statfs(path.encode(), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def fs_types() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split(" - ", 1)[1].split()[0] for line in f]


def is_pure_v2() -> bool:
    try:
        return fs_magic(CG) == CGROUP2_SUPER_MAGIC and "cgroup" not in fs_types()
    except OSError:
        return False


pytestmark = [
    pytest.mark.cgroup2,
    pytest.mark.skipif(not is_pure_v2(), reason="needs a pure cgroup v2 host (make test-cgroup2)"),
]


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@pytest.fixture
def child_cgroup():
    path = os.path.join(CG, f"ocirun-smoke-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    yield path
    # Kill whatever is left, then remove it (rmdir fails while it has members).
    if os.path.exists(os.path.join(path, "cgroup.kill")):
        write(os.path.join(path, "cgroup.kill"), "1")
    for _ in range(100):
        try:
            os.rmdir(path)
            break
        except OSError:
            time.sleep(0.05)


def start_in(cgroup: str, code: str) -> subprocess.Popen:
    """Start python running `code` in `cgroup`, moved there before it runs the code."""
    r, w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.read({r}, 1)\n{code}"],
        pass_fds=(r,),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    os.close(r)
    write(os.path.join(cgroup, "cgroup.procs"), str(proc.pid))
    os.write(w, b"x")
    os.close(w)
    return proc


def test_pure_v2():
    assert fs_magic(CG) == CGROUP2_SUPER_MAGIC
    assert "cgroup" not in fs_types(), "a cgroup v1 hierarchy is mounted"
    assert read("/proc/self/cgroup").startswith("0::/"), "the process is in a v1 hierarchy"


def test_root_controllers():
    available = set(read(os.path.join(CG, "cgroup.controllers")).split())
    enabled = set(read(os.path.join(CG, "cgroup.subtree_control")).split())
    assert available >= CONTROLLERS
    assert enabled >= CONTROLLERS


def test_child_limits(child_cgroup):
    assert set(read(os.path.join(child_cgroup, "cgroup.controllers")).split()) >= CONTROLLERS
    write(os.path.join(child_cgroup, "memory.max"), str(64 << 20))
    write(os.path.join(child_cgroup, "memory.swap.max"), "0")
    write(os.path.join(child_cgroup, "pids.max"), "8")
    write(os.path.join(child_cgroup, "cpu.max"), "50000 100000")
    write(os.path.join(child_cgroup, "cpu.weight"), "50")
    write(os.path.join(child_cgroup, "cpuset.cpus"), "0")
    assert read(os.path.join(child_cgroup, "memory.max")) == str(64 << 20)
    assert read(os.path.join(child_cgroup, "pids.max")) == "8"
    assert read(os.path.join(child_cgroup, "cpu.max")) == "50000 100000"
    assert read(os.path.join(child_cgroup, "cpuset.cpus.effective")) == "0"

    proc = start_in(child_cgroup, "print(open('/proc/self/cgroup').read().strip())")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert out.strip() == "0::/" + os.path.basename(child_cgroup)


def test_pids_limit_enforced(child_cgroup):
    write(os.path.join(child_cgroup, "pids.max"), "2")
    # The python process is one; it may create one more, the next fork must fail.
    code = (
        "import os, time\n"
        "kids = []\n"
        "for _ in range(3):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        print('EAGAIN', len(kids)); break\n"
        "    if pid == 0:\n"
        "        time.sleep(30); os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.kill(pid, 9); os.waitpid(pid, 0)\n"
    )
    proc = start_in(child_cgroup, code)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert out.strip() == "EAGAIN 1"
    assert "max 1" in read(os.path.join(child_cgroup, "pids.events"))


def test_memory_limit_enforced(child_cgroup):
    write(os.path.join(child_cgroup, "memory.max"), str(32 << 20))
    write(os.path.join(child_cgroup, "memory.swap.max"), "0")
    proc = start_in(child_cgroup, "b = b'x' * (256 << 20)\nprint('not killed')")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, out
    events = dict(line.split() for line in read(os.path.join(child_cgroup, "memory.events")).splitlines())
    assert int(events["oom_kill"]) >= 1
