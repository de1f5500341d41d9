"""cgroup v1 stats readers (runc fs/*.go GetStats), assembled into runc's events "data" object."""

import posix

from ocirun.cgroups.fsutil import CgroupDir
from ocirun.cgroups.stats_common import (
    assemble,
    blkio_entry,
    cpuset_stats,
    memory_entry,
    parse_kv,
    to_int,
)

_BLKIO_KEYS = (
    ("ioServiceBytesRecursive", "io_service_bytes_recursive"),
    ("ioServicedRecursive", "io_serviced_recursive"),
    ("ioQueueRecursive", "io_queued_recursive"),
    ("ioServiceTimeRecursive", "io_service_time_recursive"),
    ("ioWaitTimeRecursive", "io_wait_time_recursive"),
    ("ioMergedRecursive", "io_merged_recursive"),
    ("ioTimeRecursive", "time_recursive"),
    ("sectorsRecursive", "sectors_recursive"),
)


class _Reader:
    """Reads files of one controller dir; a missing controller or file reads as None."""

    def __init__(self, path: str | None) -> None:
        self.dir: CgroupDir | None = None
        if path is not None:
            try:
                self.dir = CgroupDir(path)
            except OSError:
                self.dir = None

    def __call__(self, name: str) -> str | None:
        return self.dir.read_opt(name) if self.dir is not None else None

    def close(self) -> None:
        if self.dir is not None:
            self.dir.close()


def collect(dirs: dict[str, str]) -> dict:
    names = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "hugetlb")
    readers = {c: _Reader(dirs.get(c)) for c in names}
    try:
        return assemble(
            cpu_usage=_cpu_usage(readers["cpuacct"]),
            throttling=_throttling(readers["cpu"]),
            cpuset=cpuset_stats(readers["cpuset"]) if readers["cpuset"].dir else {},
            memory=_memory(readers["memory"]),
            pids=(to_int(readers["pids"]("pids.current")), to_int(readers["pids"]("pids.max"))),
            blkio=_blkio(readers["blkio"]),
            hugetlb=_hugetlb(readers["hugetlb"]),
        )
    finally:
        for r in readers.values():
            r.close()


def _cpu_usage(read: _Reader) -> dict:
    ticks = posix.sysconf("SC_CLK_TCK") or 100
    st = parse_kv(read("cpuacct.stat"))
    usage: dict = {
        "total": to_int(read("cpuacct.usage")),
        "percpu": [int(x) for x in (read("cpuacct.usage_percpu") or "").split()],
        "percpu_kernel": [],
        "percpu_user": [],
        "kernel": st.get("system", 0) * 1_000_000_000 // ticks,
        "user": st.get("user", 0) * 1_000_000_000 // ticks,
    }
    # usage_all: "cpu user system" header, then one line per cpu (nanoseconds)
    lines = (read("cpuacct.usage_all") or "").splitlines()[1:]
    for line in lines:
        f = line.split()
        if len(f) == 3:
            usage["percpu_user"].append(int(f[1]))
            usage["percpu_kernel"].append(int(f[2]))
    return usage


def _throttling(read: _Reader) -> dict:
    st = parse_kv(read("cpu.stat"))
    return {
        "periods": st.get("nr_periods", 0),
        "throttledPeriods": st.get("nr_throttled", 0),
        "throttledTime": st.get("throttled_time", 0),
    }


def _mem_entry(read: _Reader, prefix: str) -> dict:
    def f(name: str) -> int:
        return to_int(read(f"{prefix}.{name}"))

    return memory_entry(f("limit_in_bytes"), f("usage_in_bytes"), f("max_usage_in_bytes"), f("failcnt"))


def _memory(read: _Reader) -> dict:
    if read.dir is None:
        return {}
    raw = parse_kv(read("memory.stat"))
    return {
        "cache": raw.get("cache", 0),
        "usage": _mem_entry(read, "memory"),
        "swap": _mem_entry(read, "memory.memsw"),
        "kernel": _mem_entry(read, "memory.kmem"),
        "kernelTCP": _mem_entry(read, "memory.kmem.tcp"),
        "raw": raw,
    }


def _blkio_file(text: str | None) -> list[dict]:
    """"MAJ:MIN Op value" lines (a trailing "Total N" line is skipped)."""
    out = []
    for line in (text or "").splitlines():
        f = line.split()
        if len(f) < 2 or ":" not in f[0]:
            continue
        maj, _, mnr = f[0].partition(":")
        op, val = (f[1], f[2]) if len(f) == 3 else ("", f[1])
        out.append(blkio_entry(int(maj), int(mnr), op, int(val)))
    return out


def _blkio(read: _Reader) -> dict[str, list[dict]]:
    """CFQ stats when they have data, else BFQ, else the throttle counters (runc's order)."""
    if read.dir is None:
        return {}
    out = {key: _blkio_file(read(f"blkio.{name}")) for key, name in _BLKIO_KEYS}
    if any(out.values()):
        return out
    for prefix in ("blkio.bfq.", "blkio.throttle."):
        alt = {
            "ioServiceBytesRecursive": _blkio_file(read(prefix + "io_service_bytes_recursive")),
            "ioServicedRecursive": _blkio_file(read(prefix + "io_serviced_recursive")),
        }
        if any(alt.values()):
            return alt
    return {}


def _hugetlb(read: _Reader) -> dict[str, dict]:
    if read.dir is None:
        return {}
    out: dict[str, dict] = {}
    for name in sorted(posix.listdir(read.dir.fd)):
        if name.startswith("hugetlb.") and name.endswith(".limit_in_bytes") and ".rsvd." not in name:
            size = name[len("hugetlb."):-len(".limit_in_bytes")]
            e: dict = {}
            if (u := to_int(read(f"hugetlb.{size}.usage_in_bytes"))):
                e["usage"] = u
            if (m := to_int(read(f"hugetlb.{size}.max_usage_in_bytes"))):
                e["max"] = m
            e["failcnt"] = to_int(read(f"hugetlb.{size}.failcnt"))
            out[size] = e
    return out
