"""Stats in the shape of runc's types/events.go (`runc events --stats` "data"), shared by v1 and v2.

runc marshals with omitempty/omitzero; the helpers below drop the same zero fields so the JSON matches.
"""

from collections.abc import Callable


def parse_kv(text: str | None) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat, ...) to a dict; unparsable lines are skipped."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            continue
    return out


def to_int(text: str | None) -> int:
    """A single-number file; "max" and missing files read as 0 (runc's stats report 0 for "no limit")."""
    if text is None:
        return 0
    t = text.strip()
    if t in ("", "max"):
        return 0
    try:
        return int(t)
    except ValueError:
        return 0


def parse_list(text: str | None) -> list[int]:
    """cpuset list syntax "0-3,7" -> [0, 1, 2, 3, 7]."""
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out


def memory_entry(limit: int, usage: int, max_usage: int, failcnt: int) -> dict:
    """types.MemoryEntry: limit and failcnt always, usage/max omitempty."""
    e: dict = {"limit": limit}
    if usage:
        e["usage"] = usage
    if max_usage:
        e["max"] = max_usage
    e["failcnt"] = failcnt
    return e


def blkio_entry(major: int, minor: int, op: str, value: int) -> dict:
    """types.BlkioEntry: every field omitempty."""
    e: dict = {}
    if major:
        e["major"] = major
    if minor:
        e["minor"] = minor
    if op:
        e["op"] = op
    if value:
        e["value"] = value
    return e


def assemble(
    *,
    cpu_usage: dict,
    throttling: dict,
    cpuset: dict,
    memory: dict,
    pids: tuple[int, int],
    blkio: dict[str, list[dict]],
    hugetlb: dict[str, dict],
    psi: dict | None = None,
) -> dict:
    """Build types.Stats from the collected parts, applying runc's omitempty/omitzero rules."""
    usage = {k: v for k, v in cpu_usage.items() if k in ("kernel", "user") or v}
    cpu: dict = {}
    if any(v for v in usage.values()):
        cpu["usage"] = usage
    thr = {k: v for k, v in throttling.items() if v}
    if thr:
        cpu["throttling"] = thr
    if psi and psi.get("cpu"):
        cpu["psi"] = psi["cpu"]
    mem: dict = {}
    if memory.get("cache"):
        mem["cache"] = memory["cache"]
    for key in ("usage", "swap", "kernel", "kernelTCP"):
        e = memory.get(key)
        if e and any(e.values()):
            mem[key] = e
    if memory.get("raw"):
        mem["raw"] = memory["raw"]
    if psi and psi.get("memory"):
        mem["psi"] = psi["memory"]
    pid_stats: dict = {}
    if pids[0]:
        pid_stats["current"] = pids[0]
    if pids[1]:
        pid_stats["limit"] = pids[1]
    blk = {k: v for k, v in blkio.items() if v}
    if psi and psi.get("io"):
        blk["psi"] = psi["io"]
    return {
        "cpu": cpu,
        "cpuset": cpuset,
        "memory": mem,
        "pids": pid_stats,
        "blkio": blk,
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": None,
    }


def cpuset_stats(read: Callable[[str], str | None]) -> dict:
    """types.CPUSet from cpuset.* files (v1 names; v2 offers only cpus/mems effective values)."""
    def num(name: str) -> int:
        return to_int(read(name))

    out: dict = {}
    cpus = parse_list(read("cpuset.cpus") or read("cpuset.cpus.effective"))
    if cpus:
        out["cpus"] = cpus
    out["cpu_exclusive"] = num("cpuset.cpu_exclusive")
    mems = parse_list(read("cpuset.mems") or read("cpuset.mems.effective"))
    if mems:
        out["mems"] = mems
    for key in ("mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance"):
        out[key] = num(f"cpuset.{key}")
    raw = (read("cpuset.sched_relax_domain_level") or "0").strip()
    out["sched_relax_domain_level"] = int(raw) if raw.lstrip("-").isdigit() else 0
    return out
