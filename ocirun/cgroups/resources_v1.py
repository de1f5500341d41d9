"""linux.resources -> cgroup v1 files (write order and quirks as runc's fs drivers).

Only keys present (and not null) are written, so `update` can pass a partial dict. Like runc, 0 means
"unset" for the limits where 0 is not a usable value (memory limits, shares, quota, period, weight).
"""

import errno
import posix

from ocirun.cgroups import devices as devmod
from ocirun.cgroups.fsutil import CgroupDir
from ocirun.cgroups.resources import (
    Dirs,
    R,
    dev_key,
    get_bool,
    get_int,
    get_list,
    get_section,
    hugetlb_entries,
    throttle_entry,
)
from ocirun.errors import OciError, key_path, must_be, out_of_range


def apply(paths: dict[str, str], resources: dict, device_allow: list | tuple = ()) -> None:
    """Write every resource of `resources` into the v1 hierarchies in `paths` (controller -> dir)."""
    if not isinstance(resources, dict):
        raise OciError(R, must_be("object", resources))
    if resources.get("unified"):
        raise OciError(f"{R}.unified", "unified (cgroup v2) resources need a cgroup v2 host (this is v1)")
    with Dirs(paths) as dirs:
        if (sec := get_section(resources, "memory")) is not None:
            _memory(dirs, sec)
        if (sec := get_section(resources, "cpu")) is not None:
            _cpu(dirs, sec)
        if (sec := get_section(resources, "pids")) is not None:
            _pids(dirs, sec)
        if (sec := get_section(resources, "blockIO")) is not None:
            _blkio(dirs, sec)
        if resources.get("hugepageLimits") is not None:
            _hugetlb(dirs, get_list(resources, "hugepageLimits", R) or [])
        if (sec := get_section(resources, "network")) is not None:
            _network(dirs, sec)
        if (sec := get_section(resources, "rdma")) is not None:
            _rdma(dirs, sec)
        if resources.get("devices") is not None or device_allow:
            rules = devmod.build_rules(resources.get("devices"), device_allow)
            d = dirs.get("devices", f"{R}.devices")
            for name, line in devmod.v1_writes(rules):
                d.write(f"{R}.devices", name, line)


# --- memory -----------------------------------------------------------------------------------

def _set_limit(d: CgroupDir, where: str, value: int) -> None:
    err = d.try_write("memory.limit_in_bytes", str(value))
    if err == 0:
        return
    why = f"writing memory.limit_in_bytes: {_strerror(err)}"
    if err == errno.EBUSY:  # below current usage and reclaim failed: say how much is in use
        usage = (d.read_opt("memory.usage_in_bytes") or "?").strip()
        peak = (d.read_opt("memory.max_usage_in_bytes") or "?").strip()
        why += f" (limit {value} is below current usage {usage}, peak {peak})"
    raise OciError(f"{where}.limit", why)


def _strerror(err: int) -> str:
    return posix.strerror(err)


def _memory(dirs: Dirs, m: dict) -> None:
    where = f"{R}.memory"
    limit = get_int(m, "limit", where, lo=-1)
    swap = get_int(m, "swap", where, lo=-1)
    reservation = get_int(m, "reservation", where, lo=-1)
    kernel = get_int(m, "kernel", where, lo=-1)
    kernel_tcp = get_int(m, "kernelTCP", where, lo=-1)
    swappiness = get_int(m, "swappiness", where, lo=-1)
    oom_off = get_bool(m, "disableOOMKiller", where)
    hierarchy = get_bool(m, "useHierarchy", where)
    check = get_bool(m, "checkBeforeUpdate", where)
    if swappiness is not None and swappiness > 100:
        raise OciError(f"{where}.swappiness", out_of_range(swappiness, 0, 100))
    limit = limit or None
    swap = swap or None
    if all(v is None for v in (limit, swap, reservation, kernel, kernel_tcp, swappiness, oom_off, hierarchy)):
        return
    d = dirs.get("memory", where)

    if limit == -1 and swap is None and d.exists("memory.memsw.limit_in_bytes"):
        swap = -1  # "unlimited memory" means unlimited memory+swap too (runc)
    if check and limit is not None and limit > 0:
        usage = int((d.read_opt("memory.usage_in_bytes") or "0").strip() or 0)
        if limit <= usage:
            raise OciError(f"{where}.limit", f"new limit {limit} is not above current usage {usage}"
                           " (checkBeforeUpdate)")
    if swap is not None and not d.exists("memory.memsw.limit_in_bytes"):
        if swap != -1:
            raise OciError(f"{where}.swap", "swap accounting is not enabled (no memory.memsw.limit_in_bytes)")
        swap = None
    # memsw must stay >= limit at every step: raise memsw first when growing, limit first when shrinking.
    swap_first = False
    if limit is not None and swap is not None:
        cur = int(d.read("memory.limit_in_bytes").strip())
        swap_first = swap == -1 or cur < swap
    if swap_first and swap is not None:
        d.write(f"{where}.swap", "memory.memsw.limit_in_bytes", str(swap))
    if limit is not None:
        _set_limit(d, where, limit)
    if swap is not None and not swap_first:
        d.write(f"{where}.swap", "memory.memsw.limit_in_bytes", str(swap))

    if reservation:
        d.write(f"{where}.reservation", "memory.soft_limit_in_bytes", str(reservation))
    if kernel:
        # Deprecated by the kernel (5.4) and gone in newer ones: runc ignores it; we write when offered.
        err = d.try_write("memory.kmem.limit_in_bytes", str(kernel))
        if err not in (0, errno.ENOENT, errno.EOPNOTSUPP):
            raise OciError(f"{where}.kernel", f"writing memory.kmem.limit_in_bytes: {_strerror(err)}")
    if kernel_tcp:
        d.write(f"{where}.kernelTCP", "memory.kmem.tcp.limit_in_bytes", str(kernel_tcp))
    if swappiness is not None and swappiness >= 0:
        d.write(f"{where}.swappiness", "memory.swappiness", str(swappiness))
    if oom_off is not None:
        d.write(f"{where}.disableOOMKiller", "memory.oom_control", "1" if oom_off else "0")
    if hierarchy is not None:
        d.write(f"{where}.useHierarchy", "memory.use_hierarchy", "1" if hierarchy else "0")


# --- cpu / cpuset -----------------------------------------------------------------------------

def _cpu(dirs: Dirs, c: dict) -> None:
    where = f"{R}.cpu"
    shares = get_int(c, "shares", where, lo=0) or None
    quota = get_int(c, "quota", where, lo=-1) or None
    period = get_int(c, "period", where, lo=0) or None
    burst = get_int(c, "burst", where, lo=0)
    rt_runtime = get_int(c, "realtimeRuntime", where, lo=-1) or None
    rt_period = get_int(c, "realtimePeriod", where, lo=0) or None
    idle = get_int(c, "idle", where, lo=0, hi=1)
    cpus, mems = c.get("cpus"), c.get("mems")
    for key, val in (("cpus", cpus), ("mems", mems)):
        if val is not None and not isinstance(val, str):
            raise OciError(f"{where}.{key}", "must be a string such as \"0-3,5\"")

    if any(v is not None for v in (shares, quota, period, burst, rt_runtime, rt_period, idle)):
        d = dirs.get("cpu", where)
        if shares is not None:
            d.write(f"{where}.shares", "cpu.shares", str(shares))
            got = int(d.read("cpu.shares").strip())
            if got != shares:  # the kernel clamps silently: say so like runc
                bound = "maximum" if shares > got else "minimum"
                raise OciError(f"{where}.shares", f"the {bound} allowed cpu-shares is {got}")
        _cfs(d, where, quota, period, burst)
        if idle is not None:
            d.write(f"{where}.idle", "cpu.idle", str(idle))
        _rt(d, where, rt_runtime, rt_period)
    if cpus is not None or mems is not None:
        d = dirs.get("cpuset", where)
        if cpus is not None:
            d.write(f"{where}.cpus", "cpuset.cpus", cpus)
        if mems is not None:
            d.write(f"{where}.mems", "cpuset.mems", mems)


def _cfs(d: CgroupDir, where: str, quota: int | None, period: int | None, burst: int | None) -> None:
    """period, burst, quota; a period/burst refused (EINVAL) before the quota is retried after it."""
    retry: list[tuple[str, str, str]] = []
    if period is not None:
        err = d.try_write("cpu.cfs_period_us", str(period))
        if err == errno.EINVAL and quota is not None:
            retry.append((f"{where}.period", "cpu.cfs_period_us", str(period)))
        elif err:
            raise OciError(f"{where}.period", f"writing cpu.cfs_period_us: {_strerror(err)}")
    if burst is not None:
        err = d.try_write("cpu.cfs_burst_us", str(burst))
        if err == errno.EINVAL and quota is not None:
            retry.append((f"{where}.burst", "cpu.cfs_burst_us", str(burst)))
        elif err == errno.ENOENT:
            raise OciError(f"{where}.burst", "writing cpu.cfs_burst_us: not supported by this kernel")
        elif err:
            raise OciError(f"{where}.burst", f"writing cpu.cfs_burst_us: {_strerror(err)}")
    if quota is not None:
        d.write(f"{where}.quota", "cpu.cfs_quota_us", str(quota))
    for what, name, value in retry:
        d.write(what, name, value)


def _rt(d: CgroupDir, where: str, runtime: int | None, period: int | None) -> None:
    """rt_period and rt_runtime depend on each other: a period refused first is retried after runtime."""
    pending = None
    if period is not None:
        err = d.try_write("cpu.rt_period_us", str(period))
        if err == errno.EINVAL and runtime is not None:
            pending = str(period)
        elif err:
            raise OciError(f"{where}.realtimePeriod", f"writing cpu.rt_period_us: {_strerror(err)}")
    if runtime is not None:
        d.write(f"{where}.realtimeRuntime", "cpu.rt_runtime_us", str(runtime))
    if pending is not None:
        d.write(f"{where}.realtimePeriod", "cpu.rt_period_us", pending)


# --- pids -------------------------------------------------------------------------------------

def _pids(dirs: Dirs, p: dict) -> None:
    where = f"{R}.pids"
    limit = get_int(p, "limit", where)
    if limit is None:
        return
    dirs.get("pids", where).write(f"{where}.limit", "pids.max", str(limit) if limit > 0 else "max")


# --- blkio ------------------------------------------------------------------------------------

_THROTTLE = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
)


def _blkio(dirs: Dirs, b: dict) -> None:
    where = f"{R}.blockIO"
    weight = get_int(b, "weight", where, lo=0, hi=1000) or None
    leaf = get_int(b, "leafWeight", where, lo=0, hi=1000) or None
    wdev = get_list(b, "weightDevice", where)
    throttles = [(k, f, get_list(b, k, where)) for k, f in _THROTTLE]
    if weight is None and leaf is None and not wdev and not any(t[2] for t in throttles):
        return
    d = dirs.get("blkio", where)
    # CFQ had blkio.weight; with BFQ only blkio.bfq.weight exists (runc picks whichever is there).
    bfq = not d.exists("blkio.weight") and d.exists("blkio.bfq.weight")
    wfile = "blkio.bfq.weight" if bfq else "blkio.weight"
    if weight is not None:
        d.write(f"{where}.weight", wfile, str(weight))
    if leaf is not None:
        d.write(f"{where}.leafWeight", "blkio.leaf_weight", str(leaf))
    for i, e in enumerate(wdev or []):
        w = f"{where}.weightDevice[{i}]"
        key = dev_key(e, w)
        if (wt := get_int(e, "weight", w, lo=0, hi=1000)) is not None:
            d.write(f"{w}.weight", wfile + "_device", f"{key} {wt}")
        if (lw := get_int(e, "leafWeight", w, lo=0, hi=1000)) is not None:
            d.write(f"{w}.leafWeight", "blkio.leaf_weight_device", f"{key} {lw}")
    for key_name, fname, entries in throttles:
        for i, e in enumerate(entries or []):
            w = f"{where}.{key_name}[{i}]"
            key, rate = throttle_entry(e, w)
            d.write(w, fname, f"{key} {rate}")


# --- hugetlb / network / rdma -----------------------------------------------------------------

def _hugetlb(dirs: Dirs, limits: list) -> None:
    for w, size, limit in hugetlb_entries(limits):
        d = dirs.get("hugetlb", w)
        if not d.exists(f"hugetlb.{size}.limit_in_bytes"):
            raise OciError(f"{w}.pageSize", f"page size {size} is not supported by this kernel")
        d.write(w, f"hugetlb.{size}.limit_in_bytes", str(limit))


def _network(dirs: Dirs, n: dict) -> None:
    where = f"{R}.network"
    class_id = get_int(n, "classID", where, lo=0, hi=2**32 - 1)
    prios = get_list(n, "priorities", where)
    if class_id is not None:
        dirs.get("net_cls", where).write(f"{where}.classID", "net_cls.classid", str(class_id))
    for i, p in enumerate(prios or []):
        w = f"{where}.priorities[{i}]"
        name = p.get("name") if isinstance(p, dict) else None
        if not isinstance(name, str) or not name or " " in name:
            raise OciError(f"{w}.name", "must be an interface name")
        prio = get_int(p, "priority", w, lo=0, hi=2**32 - 1)
        dirs.get("net_prio", where).write(w, "net_prio.ifpriomap", f"{name} {prio or 0}")


def rdma_lines(r: dict) -> list[tuple[str, str]]:
    """(where, "dev hca_handle=N hca_object=M") for rdma.max; shared with v2 (same format)."""
    out = []
    for dev, lim in r.items():
        w = key_path(f"{R}.rdma", dev)
        if not isinstance(lim, dict) or not dev or " " in dev:
            raise OciError(w, "must be an object keyed by an RDMA device name")
        parts = [dev]
        if (h := get_int(lim, "hcaHandles", w, lo=0, hi=2**32 - 1)) is not None:
            parts.append(f"hca_handle={h}")
        if (o := get_int(lim, "hcaObjects", w, lo=0, hi=2**32 - 1)) is not None:
            parts.append(f"hca_object={o}")
        if len(parts) > 1:
            out.append((w, " ".join(parts)))
    return out


def _rdma(dirs: Dirs, r: dict) -> None:
    lines = rdma_lines(r)
    for w, line in lines:
        dirs.get("rdma", w).write(w, "rdma.max", line)
