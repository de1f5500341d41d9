"""linux.resources -> cgroup v2 files, with runc/crun's v1 -> v2 conversions (see convert.py).

Only keys present are written (partial updates). Settings v2 has no file for are handled as runc does:
kernel/kernelTCP/swappiness/disableOOMKiller/useHierarchy/leafWeight are ignored (the kernel has no such
knob); realtime and network are refused because ignoring them would silently drop a requested limit.
"""

import errno
import posix

from ocirun.cgroups import convert
from ocirun.cgroups import devices as devmod
from ocirun.cgroups.fsutil import CgroupDir
from ocirun.cgroups.resources import (
    R,
    dev_key,
    get_bool,
    get_int,
    get_list,
    get_section,
    hugetlb_entries,
    throttle_entry,
)
from ocirun.errors import OciError, key_path, must_be


def apply(path: str, resources: dict, device_allow: list | tuple = ()) -> None:
    """Write `resources` into the v2 cgroup directory `path`."""
    if not isinstance(resources, dict):
        raise OciError(R, must_be("object", resources))
    with CgroupDir(path) as d:
        if (sec := get_section(resources, "memory")) is not None:
            _memory(d, sec)
        if (sec := get_section(resources, "cpu")) is not None:
            _cpu(d, sec)
        if (sec := get_section(resources, "pids")) is not None:
            limit = get_int(sec, "limit", f"{R}.pids")
            if limit is not None:
                _write(d, f"{R}.pids.limit", "pids.max", str(limit) if limit > 0 else "max")
        if (sec := get_section(resources, "blockIO")) is not None:
            _io(d, sec)
        if resources.get("hugepageLimits") is not None:
            _hugetlb(d, get_list(resources, "hugepageLimits", R) or [])
        if (sec := get_section(resources, "network")) is not None and (
            sec.get("classID") is not None or sec.get("priorities")
        ):
            raise OciError(f"{R}.network", "net_cls/net_prio do not exist on cgroup v2 (use BPF or tc)")
        if (sec := get_section(resources, "rdma")) is not None:
            from ocirun.cgroups.resources_v1 import rdma_lines

            for w, line in rdma_lines(sec):
                _write(d, w, "rdma.max", line)
        if (sec := get_section(resources, "unified")) is not None:
            _unified(d, sec)
        if resources.get("devices") is not None or device_allow:
            rules = devmod.build_rules(resources.get("devices"), device_allow)
            devmod.apply_bpf(d.fd, rules, path)


def _write(d: CgroupDir, what: str, name: str, value: str) -> None:
    """Write, explaining ENOENT as "controller not enabled" (the usual v2 cause)."""
    err = d.try_write(name, value)
    if err == 0:
        return
    why = f"writing {name}: {posix.strerror(err)}"
    if err == errno.ENOENT:
        why += f" (is the {name.split('.', 1)[0]} controller enabled for this cgroup?)"
    raise OciError(what, why)


def _memory(d: CgroupDir, m: dict) -> None:
    where = f"{R}.memory"
    limit = get_int(m, "limit", where, lo=-1) or None
    swap = get_int(m, "swap", where, lo=-1)
    reservation = get_int(m, "reservation", where, lo=-1) or None
    check = get_bool(m, "checkBeforeUpdate", where)
    for key in ("kernel", "kernelTCP", "swappiness"):
        get_int(m, key, where, lo=-1)  # validated, not applicable on v2
    for key in ("disableOOMKiller", "useHierarchy"):
        get_bool(m, key, where)
    if check and limit is not None and limit > 0:
        usage = int((d.read_opt("memory.current") or "0").strip() or 0)
        if limit <= usage:
            raise OciError(f"{where}.limit", f"new limit {limit} is not above current usage {usage}"
                           " (checkBeforeUpdate)")
    sw = convert.swap_to_v2(swap, limit, f"{where}.swap")
    if sw is not None:
        err = d.try_write("memory.swap.max", convert.max_str(sw))
        # no swap accounting: "max" and 0 are what the kernel does anyway (runc ignores those)
        if err and not (err == errno.ENOENT and sw in (-1, 0)):
            raise OciError(f"{where}.swap", f"writing memory.swap.max: {posix.strerror(err)}")
    if limit is not None:
        err = d.try_write("memory.max", convert.max_str(limit))
        if err:
            why = f"writing memory.max: {posix.strerror(err)}"
            if err == errno.EBUSY:
                why += f" (current usage {(d.read_opt('memory.current') or '?').strip()})"
            raise OciError(f"{where}.limit", why)
    if reservation is not None:
        _write(d, f"{where}.reservation", "memory.low", convert.max_str(reservation))


def _cpu(d: CgroupDir, c: dict) -> None:
    where = f"{R}.cpu"
    shares = get_int(c, "shares", where, lo=0) or None
    quota = get_int(c, "quota", where, lo=-1) or None
    period = get_int(c, "period", where, lo=0) or None
    burst = get_int(c, "burst", where, lo=0)
    idle = get_int(c, "idle", where, lo=0, hi=1)
    for key in ("realtimeRuntime", "realtimePeriod"):
        if get_int(c, key, where, lo=-1):
            raise OciError(f"{where}.{key}", "realtime CPU bandwidth is not supported by cgroup v2")
    for key in ("cpus", "mems"):
        v = c.get(key)
        if v is not None:
            if not isinstance(v, str):
                raise OciError(f"{where}.{key}", "must be a string such as \"0-3,5\"")
            _write(d, f"{where}.{key}", f"cpuset.{key}", v)
    if idle is not None:
        _write(d, f"{where}.idle", "cpu.idle", str(idle))
    if shares is not None:
        _write(d, f"{where}.shares", "cpu.weight", str(convert.shares_to_weight(shares)))
    retry_burst = None
    if burst is not None:
        err = d.try_write("cpu.max.burst", str(burst))
        if err == errno.EINVAL and (quota is not None or period is not None):
            retry_burst = str(burst)  # may only fit once the new quota is in
        elif err:
            raise OciError(f"{where}.burst", f"writing cpu.max.burst: {posix.strerror(err)}")
    if quota is not None or period is not None:
        # an update naming only one of the two keeps the other's current value
        cur = (d.read_opt("cpu.max") or "max 100000").split()
        q = quota if quota is not None else (-1 if cur[0] == "max" else int(cur[0]))
        p = period if period is not None else int(cur[1]) if len(cur) > 1 else None
        what = f"{where}.quota" if quota is not None else f"{where}.period"
        _write(d, what, "cpu.max", convert.cpu_max(q, p))
    if retry_burst is not None:
        _write(d, f"{where}.burst", "cpu.max.burst", retry_burst)


def _io(d: CgroupDir, b: dict) -> None:
    where = f"{R}.blockIO"
    weight = get_int(b, "weight", where, lo=0, hi=1000) or None
    get_int(b, "leafWeight", where, lo=0, hi=1000)  # no v2 equivalent
    bfq = d.exists("io.bfq.weight")
    if weight is not None:
        # io.bfq.weight takes the v1 scale [1, 1000]; io.weight needs the conversion
        if bfq:
            _write(d, f"{where}.weight", "io.bfq.weight", str(weight))
        else:
            _write(d, f"{where}.weight", "io.weight", f"default {convert.blkio_weight_to_io_weight(weight)}")
    for i, e in enumerate(get_list(b, "weightDevice", where) or []):
        w = f"{where}.weightDevice[{i}]"
        key = dev_key(e, w)
        wt = get_int(e, "weight", w, lo=0, hi=1000)
        if wt is None:
            continue
        if bfq:
            _write(d, f"{w}.weight", "io.bfq.weight", f"{key} {wt}")
        else:
            _write(d, f"{w}.weight", "io.weight", f"{key} {convert.blkio_weight_to_io_weight(wt)}")
    for key_name, knob in (
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ):
        for i, e in enumerate(get_list(b, key_name, where) or []):
            w = f"{where}.{key_name}[{i}]"
            key, rate = throttle_entry(e, w)
            _write(d, w, "io.max", f"{key} {knob}={rate if rate > 0 else 'max'}")


def _hugetlb(d: CgroupDir, limits: list) -> None:
    for w, size, limit in hugetlb_entries(limits):
        _write(d, w, f"hugetlb.{size}.max", str(limit))


_RUNTIME_OWNED = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill", "cgroup.freeze")


def _unified(d: CgroupDir, u: dict) -> None:
    """Raw v2 files: the key must be a plain file name of an enabled controller (or a cgroup.* file)."""
    for key, value in u.items():
        w = key_path(f"{R}.unified", key)
        if not isinstance(key, str) or "/" in key or key in ("", ".", "..") or "." not in key:
            raise OciError(w, "must name a cgroup v2 interface file such as \"memory.high\"")
        if not isinstance(value, str):
            raise OciError(w, must_be("string", value))
        if key in _RUNTIME_OWNED:
            raise OciError(w, "this file is managed by the runtime and cannot be set through unified")
        err = d.try_write(key, value)
        if err == 0:
            continue
        why = f"writing {key}: {posix.strerror(err)}"
        if err == errno.ENOENT:
            ctrl = key.split(".", 1)[0]
            enabled = (d.read_opt("cgroup.controllers") or "").split()
            if ctrl != "cgroup" and ctrl not in enabled:
                why = f"writing {key}: the {ctrl} controller is not available for this cgroup"
        raise OciError(w, why)
