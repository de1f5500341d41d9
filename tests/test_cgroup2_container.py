"""Containers on a pure cgroup v2 host (run in the qemu guest by `make test-cgroup2`; skipped elsewhere)."""

from __future__ import annotations

import os
import time

import pytest
from ocitest import ns_inode

V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
pytestmark = [pytest.mark.cgroup2, pytest.mark.skipif(not V2, reason="needs a pure cgroup v2 host")]


def with_cgroupns(b) -> None:  # noqa: ANN001
    """The default spec on a v2 host already has the cgroup namespace and mount (as runc's)."""
    if not any(n["type"] == "cgroup" for n in b.spec["linux"]["namespaces"]):
        b.spec["linux"]["namespaces"].append({"type": "cgroup"})
    if not any(m["destination"] == "/sys/fs/cgroup" for m in b.spec["mounts"]):
        b.spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"})


def cg(b, name: str) -> str:  # noqa: ANN001
    with open(f"/sys/fs/cgroup{b.cgroup}/{name}") as f:
        return f.read().strip()


def test_limits_in_v2_files(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["resources"].update({
        "memory": {"limit": 64 << 20, "swap": 96 << 20}, "pids": {"limit": 40},
        "cpu": {"quota": 50000, "period": 100000, "shares": 1024}})
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        assert f.read().strip() == f"0::{b.cgroup}"
    assert cg(b, "memory.max") == str(64 << 20)
    assert cg(b, "memory.swap.max") == str(32 << 20)
    assert cg(b, "pids.max") == "40"
    assert cg(b, "cpu.max") == "50000 100000"
    rt("delete", "-f", b.id, check=True)
    assert not os.path.exists(f"/sys/fs/cgroup{b.cgroup}")


def test_pids_limit_enforced(rt, bundle):
    # The forking shell dies when fork fails; its parent reads pids.current with builtins (no fork left).
    b = bundle(["sh", "-c", "sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done' 2>/dev/null; "
                "read n < /sys/fs/cgroup/pids.current; echo $n"])
    b.spec["linux"]["resources"]["pids"] = {"limit": 5}
    with_cgroupns(b)
    b.write()
    p = rt("run", "-b", b.path, b.id, timeout=60)
    assert p.out.split() and int(p.out.split()[-1]) <= 5, (p.out, p.err)


def test_device_bpf_program(rt, bundle):
    b = bundle(["sh", "-c", "head -c1 /dev/zero >/dev/null && echo zero-ok; mknod /tmp/m c 1 1 && "
                "(head -c1 /tmp/m >/dev/null 2>&1 && echo mem-open || echo mem-denied)"], readonly=False)
    for k in ("bounding", "effective", "permitted"):
        b.spec["process"]["capabilities"][k].append("CAP_MKNOD")
    b.write()
    assert rt("run", "-b", b.path, b.id).out.split() == ["zero-ok", "mem-denied"]


def test_pause_resume_freezes(rt, bundle):
    b = bundle(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; done"], readonly=False)
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    time.sleep(0.5)
    rt("pause", b.id, check=True)
    assert rt.state(b.id)["status"] == "paused" and cg(b, "cgroup.freeze") == "1"
    n1 = open(os.path.join(b.rootfs, "tmp/n")).read()  # noqa: SIM115
    time.sleep(0.5)
    assert open(os.path.join(b.rootfs, "tmp/n")).read() == n1  # noqa: SIM115
    rt("resume", b.id, check=True)
    assert rt.state(b.id)["status"] == "running"
    rt("delete", "-f", b.id, check=True)


def test_cgroup_namespace_root(rt, bundle):
    b = bundle(["sh", "-c", "cat /proc/self/cgroup"])
    with_cgroupns(b)
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.out.strip() == "0::/", p.err


def test_cgroup_ns_differs(rt, bundle):
    b = bundle(["sleep", "1000"])
    with_cgroupns(b)
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    assert ns_inode(rt.state(b.id)["pid"], "cgroup") != ns_inode("self", "cgroup")
    rt("delete", "-f", b.id, check=True)
