"""`ocirun update` on real containers, checked in the cgroup files themselves."""

from __future__ import annotations

import json
import os

import pytest
from ocitest import wait_stopped

from ocirun import cgroups
from ocirun.update import parse_size

pytestmark = pytest.mark.skipif(cgroups.detect_mode() == "v2", reason="checks cgroup v1 files")


@pytest.fixture
def ctr(rt, bundle):  # noqa: ANN001, ANN201
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    rt("start", b.id, check=True)
    yield b
    rt("delete", "-f", b.id)


def cg_read(rt, cid: str, ctrl: str, name: str) -> str:  # noqa: ANN001
    paths = cgroups.from_state(rt.internal(cid)["cgroup"]).paths()
    with open(os.path.join(paths[ctrl], name)) as f:
        return f.read().strip()


def test_flags(rt, ctr):
    rt("update", "--memory", "100m", "--memory-swap", "200m", "--memory-reservation", "50m",
       "--cpu-shares", "512", "--cpu-period", "100000", "--cpu-quota", "50000", "--pids-limit", "42",
       "--cpuset-cpus", "0", ctr.id, check=True)
    assert cg_read(rt, ctr.id, "memory", "memory.limit_in_bytes") == str(100 << 20)
    if os.path.exists(os.path.join(cgroups.from_state(rt.internal(ctr.id)["cgroup"]).paths()["memory"],
                                   "memory.memsw.limit_in_bytes")):
        assert cg_read(rt, ctr.id, "memory", "memory.memsw.limit_in_bytes") == str(200 << 20)
    assert cg_read(rt, ctr.id, "memory", "memory.soft_limit_in_bytes") == str(50 << 20)
    assert cg_read(rt, ctr.id, "cpu", "cpu.shares") == "512"
    assert cg_read(rt, ctr.id, "cpu", "cpu.cfs_period_us") == "100000"
    assert cg_read(rt, ctr.id, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cg_read(rt, ctr.id, "pids", "pids.max") == "42"
    assert cg_read(rt, ctr.id, "cpuset", "cpuset.cpus") == "0"
    # Only what is named changes.
    rt("update", "--pids-limit", "-1", ctr.id, check=True)
    assert cg_read(rt, ctr.id, "pids", "pids.max") == "max"
    assert cg_read(rt, ctr.id, "cpu", "cpu.shares") == "512"
    assert cg_read(rt, ctr.id, "memory", "memory.limit_in_bytes") == str(100 << 20)


def test_resources_from_stdin_and_file(rt, ctr, tmp_path):
    res = {"memory": {"limit": 64 << 20}, "cpu": {"shares": 256, "quota": 20000, "period": 100000},
           "pids": {"limit": 7}}
    rt("update", "-r", "-", ctr.id, input=json.dumps(res).encode(), check=True)
    assert cg_read(rt, ctr.id, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cg_read(rt, ctr.id, "cpu", "cpu.shares") == "256"
    assert cg_read(rt, ctr.id, "cpu", "cpu.cfs_quota_us") == "20000"
    assert cg_read(rt, ctr.id, "pids", "pids.max") == "7"
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"pids": {"limit": 9}}))
    rt("update", "--resources", str(f), "--cpu-shares", "300", ctr.id, check=True)  # flags on top of the file
    assert cg_read(rt, ctr.id, "pids", "pids.max") == "9"
    assert cg_read(rt, ctr.id, "cpu", "cpu.shares") == "300"


def test_the_limit_holds_inside(rt, ctr):
    rt("update", "--pids-limit", "3", ctr.id, check=True)
    # init + sh + 2 sleeps is more than 3: the fork must fail inside the container.
    p = rt("exec", ctr.id, "sh", "-c", "sleep 5 & sleep 5 & wait")
    assert p.returncode != 0 and "can't fork" in p.err, (p.returncode, p.err)
    rt("update", "--pids-limit", "-1", ctr.id, check=True)
    rt("exec", ctr.id, "sh", "-c", "sleep 0.1 & sleep 0.1 & wait", check=True)


@pytest.mark.parametrize(("args", "want"), [
    (["--memory", "lots"], "--memory: invalid size"),
    (["--memory-swap", "12x"], "--memory-swap: invalid size"),
    (["--cpu-shares", "-5"], "--cpu-shares"),
    (["--cpu-quota", "1.5"], "--cpu-quota: invalid number"),
    (["--pids-limit", "many"], "--pids-limit"),
    (["--blkio-weight", "5"], "--blkio-weight"),
    (["--cpu-idle", "2"], "--cpu-idle"),
    (["--cpuset-cpus", "0-"], "--cpuset-cpus"),
    (["--l3-cache-schema", "L3:0=f"], "not supported"),
    (["--mem-bw-schema", "MB:0=50"], "not supported"),
])
def test_invalid_values(rt, ctr, args, want):
    before = cg_read(rt, ctr.id, "pids", "pids.max")
    extra = [] if args[0] == "--pids-limit" else ["--pids-limit", "11"]  # a valid flag beside the bad one
    p = rt("update", *args, *extra, ctr.id)
    assert p.returncode == 1 and want in p.err, p.err
    assert cg_read(rt, ctr.id, "pids", "pids.max") == before  # nothing was applied


def test_invalid_json(rt, ctr):
    p = rt("update", "-r", "-", ctr.id, input=b"[1, 2]")
    assert p.returncode == 1 and p.err == "ocirun: --resources stdin: must be an object, got array [1, 2] " \
        "(linux.resources)\n"
    p = rt("update", "-r", "-", ctr.id, input=b'{"memory": {"limit": "x"}}')
    assert p.returncode == 1 and "linux.resources.memory.limit" in p.err
    p = rt("update", "-r", "-", ctr.id, input=b'{"memory": {"limit": 1,}}')
    assert p.returncode == 1 and p.err == "ocirun: --resources stdin: line 1 column 24: trailing comma before }\n"
    p = rt("update", "-r", "-", ctr.id, input=b'{"unified": {"memory.high": "1\\u0000"}}')
    assert p.returncode == 1 and p.err == 'ocirun: --resources stdin: unified["memory.high"]: string "1\\u0000" ' \
        "contains a NUL byte\n"


def test_stopped_container(rt, ctr):
    rt("kill", ctr.id, "KILL", check=True)
    wait_stopped(rt, ctr.id)
    p = rt("update", "--memory", "10m", ctr.id)
    assert p.returncode == 1 and "not running" in p.err


def test_parse_size():
    assert parse_size("100m", "memory") == 100 << 20
    assert parse_size("1g", "memory") == 1 << 30
    assert parse_size("1.5GiB", "memory") == 3 << 29
    assert parse_size("512KB", "memory") == 512 << 10
    assert parse_size("4096", "memory") == 4096
    assert parse_size("-1", "memory") == -1
