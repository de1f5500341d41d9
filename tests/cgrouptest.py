"""Helpers shared by the cgroup v1 and v2 manager tests: real processes placed in a test cgroup."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator

from ocirun.cgroups.base import Manager
from ocirun.errors import OciError

BUSY = "read x; i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo done; exec sleep 1000"
KEYS = {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"}


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (a frozen process gains none)."""
    f = read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def spawn(m: Manager, *argv: str, **kw: object) -> subprocess.Popen:
    """Start a process the test's manager fixture kills and reaps afterwards (m.procs)."""
    p = subprocess.Popen(list(argv), **kw)  # type: ignore[call-overload]
    m.procs.append(p)  # type: ignore[attr-defined]
    return p


def sleeper(m: Manager) -> subprocess.Popen:
    p = spawn(m, "sleep", "1000")
    m.add_pid(p.pid)
    return p


@contextlib.contextmanager
def tracked(m: Manager) -> Iterator[Manager]:
    """Give the manager a list of the test's processes; afterwards reap them and empty the cgroup."""
    procs: list[subprocess.Popen] = []
    m.procs = procs  # type: ignore[attr-defined]
    try:
        yield m
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        try:
            m.thaw()
        except (OciError, OSError):
            pass
        m.kill_all(signal.SIGKILL)
