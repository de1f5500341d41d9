"""`update`: the command line's resource changes as a partial runtime-spec `linux.resources` dict.

Only the keys given appear, so the cgroup manager's apply() writes nothing else. Unlike runc (which silently
ignores every flag once --resources is given), flags given together with --resources override its values.
Sizes accept runc's (docker/go-units RAMInBytes) forms: 100m, 1g, 512k, 1.5GiB, -1 for unlimited.
"""

import sys

from ocirun.errors import OciError, must_be, out_of_range, show

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

# flag attribute -> (flag name, section, key, parser)
_SIZES = (
    ("memory", "memory", "memory", "limit"),
    ("memory_swap", "memory-swap", "memory", "swap"),
    ("memory_reservation", "memory-reservation", "memory", "reservation"),
    ("kernel_memory", "kernel-memory", "memory", "kernel"),
    ("kernel_memory_tcp", "kernel-memory-tcp", "memory", "kernelTCP"),
)
_UINTS = (
    ("cpu_period", "cpu-period", "cpu", "period"),
    ("cpu_shares", "cpu-shares", "cpu", "shares"),
    ("cpu_rt_period", "cpu-rt-period", "cpu", "realtimePeriod"),
    ("cpu_burst", "cpu-burst", "cpu", "burst"),
)
_INTS = (
    ("cpu_quota", "cpu-quota", "cpu", "quota"),
    ("cpu_rt_runtime", "cpu-rt-runtime", "cpu", "realtimeRuntime"),
    ("pids_limit", "pids-limit", "pids", "limit"),
)


def parse_size(v: str, flag: str) -> int:
    """A byte count like runc's units.RAMInBytes (binary multiples, optional i/b suffix), or -1."""
    s = v.strip()
    if s == "-1":
        return -1
    low = s.lower()
    for suffix in ("ib", "b", "i"):
        if low.endswith(suffix) and len(low) > len(suffix):
            low = low[: -len(suffix)]
            break
    unit = low[-1:] if low[-1:] in _UNITS and low[-1:] else ""
    num = low[: len(low) - len(unit)].rstrip(" ")
    try:
        if not num or not num.replace(".", "", 1).isdigit():
            raise ValueError
        n = int(float(num) * _UNITS[unit]) if "." in num else int(num) * _UNITS[unit]
    except ValueError:
        raise OciError(f"--{flag}", f"invalid size {show(v)} (use bytes or a size such as 100m, 1g; -1: unlimited)") \
            from None
    if n > INT64_MAX:
        raise OciError(f"--{flag}", f"size {show(v)} is too large")
    return n


def parse_int(v: str, flag: str, lo: int, hi: int) -> int:
    try:
        n = int(v.strip(), 10)
    except ValueError:
        raise OciError(f"--{flag}", f"invalid number {show(v)}") from None
    if not lo <= n <= hi:
        raise OciError(f"--{flag}", out_of_range(n, lo, hi))
    return n


def _cpuset(v: str, flag: str) -> str:
    """"0-3,5" style lists; the kernel has the last word, this only catches typos early."""
    s = v.strip()
    for part in s.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()) or (dash and int(hi) < int(lo)):
            raise OciError(f"--{flag}", f'invalid list {show(v)} (use e.g. "0-3,5")')
    return s


def read_resources(path: str) -> dict:
    """--resources FILE, or - for stdin: a linux.resources JSON object."""
    from ocirun import jsonio

    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise OciError(f"--resources {path}", (e.strerror or str(e)).lower()) from None
    what = "stdin" if path == "-" else path
    obj = jsonio.load_input(data, f"--resources {what}")
    if not isinstance(obj, dict):
        raise OciError(f"--resources {what}", must_be("object", obj) + " (linux.resources)")
    return obj


class UpdateOpts:
    """`update`'s flags, as given (None when absent); the slots are the flag names of the CLI's table."""

    __slots__ = ("resources", "memory", "memory_swap", "memory_reservation", "kernel_memory", "kernel_memory_tcp",
                 "cpu_quota", "cpu_period", "cpu_shares", "cpu_rt_period", "cpu_rt_runtime", "cpuset_cpus",
                 "cpuset_mems", "pids_limit", "blkio_weight", "l3_cache_schema", "mem_bw_schema", "cpu_idle",
                 "cpu_burst")

    def __init__(self, **flags: str | None) -> None:
        for name in self.__slots__:
            setattr(self, name, flags.pop(name, None))
        if flags:
            raise TypeError(f"unknown update options: {sorted(flags)}")


def resources_from_opts(a: UpdateOpts) -> dict:
    """The linux.resources dict `update` applies: --resources, then the flags on top (only keys given)."""
    for attr, flag in (("l3_cache_schema", "l3-cache-schema"), ("mem_bw_schema", "mem-bw-schema")):
        if getattr(a, attr):
            raise OciError(f"--{flag}", "not supported: this runtime has no Intel RDT support")
    res = read_resources(a.resources) if a.resources else {}
    given: list[tuple[str, str, int | str]] = []
    for attr, flag, sec, key in _SIZES:
        if (v := getattr(a, attr)) is not None:
            given.append((sec, key, parse_size(v, flag)))
    for attr, flag, sec, key in _UINTS:
        if (v := getattr(a, attr)) is not None:
            given.append((sec, key, parse_int(v, flag, 0, UINT64_MAX)))
    for attr, flag, sec, key in _INTS:
        if (v := getattr(a, attr)) is not None:
            n = parse_int(v, flag, -1, INT64_MAX)
            if n or key != "limit":  # --pids-limit 0 leaves the limit alone, as runc
                given.append((sec, key, n))
    if a.cpu_idle is not None:
        given.append(("cpu", "idle", parse_int(a.cpu_idle, "cpu-idle", 0, 1)))
    if a.cpuset_cpus is not None:
        given.append(("cpu", "cpus", _cpuset(a.cpuset_cpus, "cpuset-cpus")))
    if a.cpuset_mems is not None:
        given.append(("cpu", "mems", _cpuset(a.cpuset_mems, "cpuset-mems")))
    if a.blkio_weight is not None:
        w = parse_int(a.blkio_weight, "blkio-weight", 0, UINT64_MAX)
        if w and not 10 <= w <= 1000:
            raise OciError("--blkio-weight", out_of_range(w, 10, 1000))
        if w:  # 0 leaves the weight alone, as runc
            given.append(("blockIO", "weight", w))
    for sec, key, val in given:
        section = res.get(sec)
        if section is None:
            section = res[sec] = {}
        elif not isinstance(section, dict):
            raise OciError(f"linux.resources.{sec}", must_be("object", section))
        section[key] = val
    mem = res.get("memory")
    if isinstance(mem, dict) and mem.get("limit") == -1 and mem.get("swap") is None:
        mem["swap"] = -1  # "unlimited memory" means memory and swap (runc)
    return res
