"""cgroup v2 stats (runc fs2/*.go), in the v1-compatible shape runc reports them.

As runc: cpu times from usec to nsec, memory.swap = memory + swap (v1's memsw), cache = memory.stat
"file", io.stat rbytes/wbytes/rios/wios mapped to Read/Write entries, pids.max "max" -> 0.
"""

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

_U64_MAX = 2**64 - 1


def _limit(text: str | None) -> int:
    """memory.max style: "max" is reported as the largest u64, as runc does."""
    if text is None:
        return 0
    t = text.strip()
    return _U64_MAX if t == "max" else to_int(t)


def collect(path: str) -> dict:
    with CgroupDir(path) as d:
        read = d.read_opt
        cpu = parse_kv(read("cpu.stat"))
        usage = {
            "total": cpu.get("usage_usec", 0) * 1000,
            "percpu": [],
            "percpu_kernel": [],
            "percpu_user": [],
            "kernel": cpu.get("system_usec", 0) * 1000,
            "user": cpu.get("user_usec", 0) * 1000,
        }
        throttling = {
            "periods": cpu.get("nr_periods", 0),
            "throttledPeriods": cpu.get("nr_throttled", 0),
            "throttledTime": cpu.get("throttled_usec", 0) * 1000,
        }
        return assemble(
            cpu_usage=usage,
            throttling=throttling,
            cpuset=cpuset_stats(read) if d.exists("cpuset.cpus") else {},
            memory=_memory(d),
            pids=(to_int(read("pids.current")), to_int(read("pids.max"))),
            blkio=_io(read("io.stat")),
            hugetlb=_hugetlb(d),
            psi=_psi(d),
        )


def _memory(d: CgroupDir) -> dict:
    if not d.exists("memory.current"):
        return {}
    raw = parse_kv(d.read_opt("memory.stat"))
    events = parse_kv(d.read_opt("memory.events"))
    usage = memory_entry(
        _limit(d.read_opt("memory.max")), to_int(d.read_opt("memory.current")),
        to_int(d.read_opt("memory.peak")), events.get("max", 0),
    )
    swap_limit = _limit(d.read_opt("memory.swap.max"))
    swap_cur = to_int(d.read_opt("memory.swap.current"))
    swap_events = parse_kv(d.read_opt("memory.swap.events"))
    combined_limit = swap_limit if swap_limit == _U64_MAX or usage["limit"] == _U64_MAX \
        else swap_limit + usage["limit"]
    swap = memory_entry(combined_limit, swap_cur + usage.get("usage", 0), 0, swap_events.get("max", 0))
    return {"cache": raw.get("file", 0), "usage": usage, "swap": swap, "raw": raw}


def _io(text: str | None) -> dict[str, list[dict]]:
    """io.stat "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.." -> v1-style Read/Write entries."""
    sbytes: list[dict] = []
    sios: list[dict] = []
    for line in (text or "").splitlines():
        f = line.split()
        if not f or ":" not in f[0]:
            continue
        maj, _, mnr = f[0].partition(":")
        kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
        for key, op, out in (("rbytes", "Read", sbytes), ("wbytes", "Write", sbytes),
                             ("rios", "Read", sios), ("wios", "Write", sios)):
            if key in kv:
                out.append(blkio_entry(int(maj), int(mnr), op, int(kv[key])))
    return {"ioServiceBytesRecursive": sbytes, "ioServicedRecursive": sios}


def _hugetlb(d: CgroupDir) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in sorted(posix.listdir(d.fd)):
        if name.startswith("hugetlb.") and name.endswith(".max") and ".rsvd." not in name:
            size = name[len("hugetlb."):-len(".max")]
            e: dict = {}
            if (u := to_int(d.read_opt(f"hugetlb.{size}.current"))):
                e["usage"] = u
            e["failcnt"] = parse_kv(d.read_opt(f"hugetlb.{size}.events")).get("max", 0)
            out[size] = e
    return out


def _psi(d: CgroupDir) -> dict:
    """cpu/memory/io.pressure -> {"some": {"avg10",..,"total"}, "full": {...}} (runc's PSIStats)."""
    out: dict = {}
    for res in ("cpu", "memory", "io"):
        text = d.read_opt(f"{res}.pressure")
        if not text:
            continue
        stats: dict = {}
        for line in text.splitlines():
            f = line.split()
            if not f or f[0] not in ("some", "full"):
                continue
            kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
            stats[f[0]] = {
                "avg10": float(kv.get("avg10", 0)), "avg60": float(kv.get("avg60", 0)),
                "avg300": float(kv.get("avg300", 0)), "total": int(kv.get("total", 0)),
            }
        if stats:
            out[res] = stats
    return out
