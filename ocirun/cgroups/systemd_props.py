"""linux.resources -> systemd unit properties (runc's opencontainers/cgroups/systemd rules). Pure functions.

A property is (name, (D-Bus signature, value)). systemd writes these into the scope's cgroup whenever it
realizes the unit (start, SetUnitProperties, daemon-reload), so they must say what the cgroupfs writes
say; the driver writes every resource to cgroupfs afterwards as well (what systemd has no property for
is only there). Values in the v1 shape of the spec, converted as the cgroupfs writers convert them.
"""

from ocirun.cgroups import convert
from ocirun.cgroups import devices as devmod
from ocirun.cgroups.resources import R, dev_key, get_int, get_list, get_section, throttle_entry
from ocirun.errors import OciError

UINT64_MAX = (1 << 64) - 1
DEFAULT_PERIOD = 100000


def prop(name: str, sig: str, value: object) -> tuple[str, tuple[str, object]]:
    return (name, (sig, value))


def unit_properties(description: str, slice_: str, pid: int, *, v2: bool) -> list:
    """The scope's own properties (runc's Apply): delegation, the first pid, accounting, no default
    dependencies (a container's scope must not be ordered against shutdown.target and the like), and
    CollectMode=inactive-or-failed so a scope that ended badly is collected, not left to block the
    next container of that name (runc#3780)."""
    return [
        prop("Description", "s", description),
        prop("Slice", "s", slice_),
        prop("Delegate", "b", True),
        prop("PIDs", "au", [pid]),
        prop("MemoryAccounting", "b", True),
        prop("CPUAccounting", "b", True),
        prop("IOAccounting" if v2 else "BlockIOAccounting", "b", True),
        prop("TasksAccounting", "b", True),
        prop("DefaultDependencies", "b", False),
        prop("CollectMode", "s", "inactive-or-failed"),
    ]


def range_to_bits(text: str, where: str) -> bytes:
    """A cpuset list ("0-3,5") as systemd's AllowedCPUs byte mask: bit n of byte n // 8 is cpu n."""
    bits = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise OciError(where, f"invalid cpu/node list {text!r}") from None
        if a < 0 or b < a or b > 1 << 20:
            raise OciError(where, f"invalid range {part!r} in {text!r}")
        bits |= ((1 << (b - a + 1)) - 1) << a
    if not bits:
        raise OciError(where, f"empty cpu/node list {text!r}")
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def cpu_quota(quota: int | None, period: int | None, version: int) -> tuple[list, int | None]:
    """CPUQuotaPerSecUSec (and CPUQuotaPeriodUSec): systemd keeps a quota in 10 ms-per-second steps, so
    a quota that is not a multiple is rounded up; the rounded quota is returned for the cgroupfs write,
    so both say the same (runc's addCPUQuota)."""
    props = []
    if period and version >= 242:  # systemd's CPUQuotaPeriodSec= is 242's
        props.append(prop("CPUQuotaPeriodUSec", "t", period))
    if not quota and not period:
        return props, quota
    per_sec = UINT64_MAX
    if quota and quota > 0:
        p = period or DEFAULT_PERIOD
        per_sec = quota * 1000000 // p
        if per_sec % 10000:
            per_sec = (per_sec // 10000 + 1) * 10000
            quota = per_sec * p // 1000000
    props.append(prop("CPUQuotaPerSecUSec", "t", per_sec))
    return props, quota


def _limit(v: int) -> int:
    return UINT64_MAX if v < 0 else v


def resource_properties(resources: dict, *, v2: bool, version: int) -> tuple[list, dict]:
    """(properties, resources for the cgroupfs writer): the same as `resources` but for a quota rounded
    as systemd keeps it. Only the keys present give properties (a partial update sets only those)."""
    if not isinstance(resources, dict):
        raise OciError(R, "must be an object")
    out: list = []
    res = dict(resources)
    if (m := get_section(resources, "memory")) is not None:
        where = f"{R}.memory"
        limit = get_int(m, "limit", where, lo=-1) or None
        if limit is not None:
            out.append(prop("MemoryMax" if v2 else "MemoryLimit", "t", _limit(limit)))
        if v2:
            reservation = get_int(m, "reservation", where, lo=-1) or None
            if reservation is not None:
                out.append(prop("MemoryLow", "t", _limit(reservation)))
            sw = convert.swap_to_v2(get_int(m, "swap", where, lo=-1), limit, f"{where}.swap")
            if sw:
                out.append(prop("MemorySwapMax", "t", _limit(sw)))
    if (c := get_section(resources, "cpu")) is not None:
        where = f"{R}.cpu"
        shares = get_int(c, "shares", where, lo=0) or None
        idle = get_int(c, "idle", where, lo=0, hi=1)
        if v2 and idle == 1 and version >= 252:
            out.append(prop("CPUWeight", "t", 0))  # systemd's spelling of cpu.idle=1
        elif shares is not None:
            out.append(prop("CPUWeight", "t", convert.shares_to_weight(shares)) if v2
                       else prop("CPUShares", "t", shares))
        quota = get_int(c, "quota", where, lo=-1) or None
        period = get_int(c, "period", where, lo=0) or None
        qprops, rounded = cpu_quota(quota, period, version)
        out += qprops
        if rounded != quota:
            res["cpu"] = {**c, "quota": rounded}
        if version >= 244:
            for key, name in (("cpus", "AllowedCPUs"), ("mems", "AllowedMemoryNodes")):
                v = c.get(key)
                if isinstance(v, str) and v.strip():
                    out.append(prop(name, "ay", range_to_bits(v, f"{where}.{key}")))
    if (p := get_section(resources, "pids")) is not None:
        limit = get_int(p, "limit", f"{R}.pids")
        if limit:  # 0 is "unset" (runc), and systemd refuses TasksMax=0
            out.append(prop("TasksMax", "t", _limit(limit)))
    if (b := get_section(resources, "blockIO")) is not None:
        out += _io_properties(b, v2)
    if v2 and (u := get_section(resources, "unified")) is not None:
        out += _unified_properties(u, version)
    return out, res


def _io_properties(b: dict, v2: bool) -> list:
    """blockIO as IOWeight/IODeviceWeight/IO*Max (v2) or the BlockIO* properties (v1); devices are named
    /dev/block/MAJOR:MINOR, which systemd parses without a lookup."""
    where = f"{R}.blockIO"
    out = []
    weight = get_int(b, "weight", where, lo=0, hi=1000) or None
    if weight is not None:
        out.append(prop("IOWeight", "t", convert.blkio_weight_to_io_weight(weight)) if v2
                   else prop("BlockIOWeight", "t", weight))
    devw = []
    for i, e in enumerate(get_list(b, "weightDevice", where) or []):
        w = f"{where}.weightDevice[{i}]"
        key = dev_key(e, w)
        wt = get_int(e, "weight", w, lo=0, hi=1000)
        if wt:
            devw.append((f"/dev/block/{key}", convert.blkio_weight_to_io_weight(wt) if v2 else wt))
    if devw:
        out.append(prop("IODeviceWeight" if v2 else "BlockIODeviceWeight", "a(st)", devw))
    names = (("throttleReadBpsDevice", "IOReadBandwidthMax", "BlockIOReadBandwidth"),
             ("throttleWriteBpsDevice", "IOWriteBandwidthMax", "BlockIOWriteBandwidth"),
             ("throttleReadIOPSDevice", "IOReadIOPSMax", None),
             ("throttleWriteIOPSDevice", "IOWriteIOPSMax", None))
    for key, name2, name1 in names:
        name = name2 if v2 else name1
        entries = []
        for i, e in enumerate(get_list(b, key, where) or []):
            dev, rate = throttle_entry(e, f"{where}.{key}[{i}]")
            entries.append((f"/dev/block/{dev}", rate if rate > 0 else UINT64_MAX))
        if entries and name:
            out.append(prop(name, "a(st)", entries))
    return out


_UNIFIED_MEMORY = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
                   "memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax"}


def _unified_properties(u: dict, version: int) -> list:
    """The unified keys systemd has properties for (runc's unifiedResToSystemdProps); the rest are only
    written to cgroupfs."""
    out = []
    for key, value in u.items():
        if not isinstance(value, str):
            continue  # the cgroupfs writer says what is wrong with it
        v = value.strip()
        w = f"{R}.unified.{key}"
        try:
            if key in _UNIFIED_MEMORY or key == "pids.max":
                n = UINT64_MAX if v == "max" else int(v)
                if key == "pids.max":
                    out.append(prop("TasksMax", "t", n or 1))
                else:
                    out.append(prop(_UNIFIED_MEMORY[key], "t", n))
            elif key == "cpu.weight" and u.get("cpu.idle", "").strip() != "1":
                out.append(prop("CPUWeight", "t", int(v)))
            elif key == "cpu.idle" and v == "1" and version >= 252:
                out.append(prop("CPUWeight", "t", 0))
            elif key == "cpu.max":
                f = v.split()
                if not 1 <= len(f) <= 2:
                    raise ValueError
                q = 0 if f[0] == "max" else int(f[0])
                out += cpu_quota(q, int(f[1]) if len(f) == 2 else DEFAULT_PERIOD, version)[0]
            elif key in ("cpuset.cpus", "cpuset.mems") and version >= 244:
                name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                out.append(prop(name, "ay", range_to_bits(v, w)))
        except ValueError:
            raise OciError(w, f"invalid value {value!r}") from None
    return out


# ------------------------------------------------------------------------------------------------ devices

def device_properties(rules: list, *, v2: bool) -> list:
    """DevicePolicy/DeviceAllow for the effective rule list (devices.build_rules order, deny-all first).

    systemd has only an allow list. When the rules come down to one, it gets it (DevicePolicy=strict); all
    devices allowed is DevicePolicy=auto with an empty list (runc). What an allow list cannot say (a deny
    punched into a wider allow, "c *:5" rules) stays with our own device filter: on v2 systemd then gets
    no filter of its own (auto, empty: the BPF program we attach is the exact one, and a stricter systemd
    program would deny more than asked); on v1 it gets strict and empty, as runc does, and the cgroupfs
    device writes that follow set the real rules.
    """
    allowed, exact = emulate_allow_list(rules)
    clear = prop("DeviceAllow", "a(ss)", [])
    if exact and allowed.get(("c", -1, -1)) == "rwm" and allowed.get(("b", -1, -1)) == "rwm":
        return [prop("DevicePolicy", "s", "auto"), clear]
    entries = []
    for (typ, major, minor), access in allowed.items():
        group = "char-" if typ == "c" else "block-"
        if major < 0 and minor >= 0:
            exact = False
            continue
        if major < 0:
            path = group + "*"
        elif minor < 0:
            path = f"{group}{major}"
        else:
            path = f"/dev/{'char' if typ == 'c' else 'block'}/{major}:{minor}"
        entries.append((path, access))
    if not exact:
        return [prop("DevicePolicy", "s", "auto" if v2 else "strict"), clear]
    return [prop("DevicePolicy", "s", "strict"), clear, prop("DeviceAllow", "a(ss)", entries)]


def emulate_allow_list(rules: list) -> tuple[dict, bool]:
    """Run the rules over an empty allow list: ({(type, major, minor): access}, exact). Not exact when a
    deny would have to cut a hole into a wider allow entry (an allow list cannot express it)."""
    allowed: dict[tuple[str, int, int], str] = {}
    exact = True
    for r in rules:
        if not isinstance(r, devmod.Rule):
            raise TypeError("device_properties takes devices.build_rules() output")
        types = ("c", "b") if r.type == "a" else (r.type,)
        major, minor = (-1, -1) if r.type == "a" else (r.major, r.minor)
        for t in types:
            if r.allow:
                key = (t, major, minor)
                allowed[key] = "".join(ch for ch in "rwm" if ch in allowed.get(key, "") + r.access)
                continue
            for key in list(allowed):
                kt, kmaj, kmin = key
                if kt != t:
                    continue
                covers = (major < 0 or major == kmaj) and (minor < 0 or minor == kmin)
                wider = (kmaj < 0 and major >= 0) or (kmin < 0 and minor >= 0)
                common = set(allowed[key]) & set(r.access)
                if covers and common:
                    left = "".join(ch for ch in allowed[key] if ch not in r.access)
                    if left:
                        allowed[key] = left
                    else:
                        del allowed[key]
                elif wider and common and (kmaj < 0 or kmaj == major) and (kmin < 0 or kmin == minor):
                    exact = False
    return allowed, exact


# ------------------------------------------------------------------------------------------------ annotations

ANNOTATION_PREFIX = "org.systemd.property."
_TYPED = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u", "int64": "x", "uint64": "t"}


def annotation_properties(annotations: dict) -> list:
    """runc's `org.systemd.property.<Name>` annotations: extra unit properties, values in GVariant text
    ("true", "uint64 30000000", "'inactive-or-failed'", "['a', 'b']"); a name ending in a lowercase
    letter + "Sec" is given in seconds and sent as <Name>USec in microseconds, as runc does."""
    out = []
    for key, text in annotations.items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name = key[len(ANNOTATION_PREFIX):]
        where = f"annotations.{key}"
        if not name or not name[0].isupper() or not name.isascii() or not name.isalnum():
            raise OciError(where, "a systemd property name is letters and digits, starting with a capital")
        sig, value = parse_gvariant(str(text), where)
        if name.endswith("Sec") and len(name) > 3 and "a" <= name[-4] <= "z":
            if sig not in _TYPED.values() and sig != "d":
                raise OciError(where, f"{name} needs a number of seconds, got {text!r}")
            name = name[:-3] + "USec"
            sig, value = "t", int(value * 1000000)  # type: ignore[operator]
        out.append(prop(name, sig, value))
    return out


def parse_gvariant(text: str, where: str) -> tuple[str, object]:
    """(D-Bus signature, value) of the GVariant text forms runc's annotations use."""
    t = text.strip()
    if t in ("true", "false"):
        return "b", t == "true"
    if t[:1] in ("'", '"') and len(t) >= 2 and t[-1] == t[0]:
        return "s", t[1:-1].replace("\\" + t[0], t[0]).replace("\\\\", "\\")
    if t.startswith("[") and t.endswith("]"):
        items = [parse_gvariant(p, where) for p in _split_items(t[1:-1], where)]
        sigs = {s for s, _ in items}
        if len(sigs) > 1:
            raise OciError(where, f"array items of different types in {text!r}")
        return "a" + (sigs.pop() if sigs else "s"), [v for _, v in items]
    word, _, rest = t.partition(" ")
    try:
        if word in _TYPED:
            return _TYPED[word], int(rest.strip(), 0)
        if word == "double":
            return "d", float(rest.strip())
        if "." in t or "e" in t.lower() and not t.lower().startswith("0x"):
            return "d", float(t)
        return "i", int(t, 0)
    except ValueError:
        raise OciError(where, f"cannot parse {text!r} (GVariant text: true, 'text', uint64 5, [...])") from None


def _split_items(body: str, where: str) -> list[str]:
    """The comma-separated items of an array body, commas inside quotes kept."""
    items, cur, quote = [], "", ""
    for ch in body:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
            cur += ch
        elif ch == ",":
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if quote:
        raise OciError(where, f"unterminated string in [{body}]")
    if cur.strip():
        items.append(cur)
    return [i for i in items if i.strip()]
