"""config.json → a typed model. Every malformed or unsupported value is a fault naming its JSON path.

Only what the runtime acts on is modelled; `linux.resources` and `linux.seccomp` stay raw dicts for the
cgroup and seccomp modules, which check them with paths of their own.

Faults go to a Report. For create, run and exec the first one is raised at once, as an OciError
`config.json: <path>: <why>`; `ocirun validate` collects them all, every independent part of the config being
checked even when another failed. Warnings (an unknown capability: the spec says a runtime MUST warn and
SHOULD NOT fail) are collected in both cases; the command prints them.
"""


from ocirun import fspath, jsonio
from ocirun.errors import OciError, key_path, must_be, not_absolute, out_of_range, show, unknown

NAMESPACES = {
    "pid": 0x20000000,
    "network": 0x40000000,
    "mount": 0x00020000,
    "ipc": 0x08000000,
    "uts": 0x04000000,
    "user": 0x10000000,
    "cgroup": 0x02000000,
    "time": 0x00000080,
}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 1, "SCHED_FLAG_RECLAIM": 2, "SCHED_FLAG_DL_OVERRUN": 4,
               "SCHED_FLAG_KEEP_POLICY": 8, "SCHED_FLAG_KEEP_PARAMS": 16, "SCHED_FLAG_UTIL_CLAMP_MIN": 32,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 64}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
ROOTFS_PROPAGATIONS = ("", "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CLOCKS = ("monotonic", "boottime")
DEVICE_IFMT = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}  # S_IFCHR, S_IFBLK, S_IFIFO

# runc refuses ids above 2^31-1 ("uids and gids must be in range 0-2147483647"): setresuid(2) takes
# 4294967295 as -1, "leave unchanged", and the process would go on as root.
MAX_ID = (1 << 31) - 1
# The arguments one plan step carries (OCIRUN_MAX_ARGS in csrc/plan.h, stated here so that config.py loads no
# C: tests/test_config.py holds the two equal); SETGROUPS spends one on the count. (An argv and env have
# limits of their own, checked where the plan knows the final vectors: plan._check_vectors.)
PLAN_MAX_ARGS = 12296
# cgroup directory names are file names (NAME_MAX); the whole path must fit PATH_MAX under the mount point.
NAME_MAX = 255
CGROUPS_PATH_MAX = 3072


def bad(path: str, why: str) -> OciError:
    """The fault at a JSON path of config.json (`path` and `reason` kept apart for `ocirun validate`)."""
    e = OciError("config.json", f"{path}: {why}")
    e.path, e.reason = path, why  # type: ignore[attr-defined]
    return e


def fault_of(e: OciError) -> tuple[str, str]:
    """(JSON path, why) of a fault raised here or by a module that checks a section itself (rlimits, ...)."""
    if hasattr(e, "path"):
        return e.path, e.reason  # type: ignore[attr-defined]
    return e.what, e.why


class Report:
    """Where the model puts what it finds: faults raised at once (the default) or all collected."""

    __slots__ = ("faults", "warnings", "source")

    def __init__(self, collect: bool = False, source: str = "config.json") -> None:
        self.faults: list[tuple[str, str]] | None = [] if collect else None
        self.warnings: list[str] = []
        self.source = source  # what warnings name (exec: "--process FILE")

    def fault(self, path: str, why: str) -> None:
        """A fault that does not stop the checks around it (a relative path, a duplicate...)."""
        if self.faults is None:
            raise bad(path, why)
        self.faults.append((path, why))

    def warn(self, path: str, why: str) -> None:
        self.warnings.append(f"{self.source}: {path}: {why}")

    def field(self, check, value: object, path: str, *extra: object, default: object = None):  # noqa: ANN001, ANN201
        """check(value, path, *extra): the checked value; collecting, a fault is kept and `default` returned."""
        if self.faults is None:
            return check(value, path, *extra)
        try:
            return check(value, path, *extra)
        except OciError as e:
            self.faults.append(fault_of(e))
            return default

    def each(self, check, value: object, path: str, *extra: object) -> list:  # noqa: ANN001
        """check(item, f"{path}[i]", *extra) for each item of an array; collecting, the good ones."""
        if self.faults is None:
            return [check(item, f"{path}[{i}]", *extra) for i, item in enumerate(_list(value, path))]
        out = []
        for i, item in enumerate(self.field(_list, value, path, default=[])):
            v = self.field(check, item, f"{path}[{i}]", *extra, default=_BAD)
            if v is not _BAD:
                out.append(v)
        return out


def _foreign(check, value: object, path: str, *extra: object):  # noqa: ANN001, ANN202
    """check() of a module that words its own errors (`<path>: <why>`): put them under config.json."""
    try:
        return check(value, path, *extra)
    except OciError as e:
        if e.what == "config.json":
            raise
        raise bad(e.what, e.why) from None


_BAD = object()


# ---------------------------------------------------------------- small checks: (value, path) -> value


def _obj(v: object, path: str) -> dict:
    if not isinstance(v, dict):
        raise bad(path, must_be("object", v))
    return v


def _list(v: object, path: str) -> list:
    if not isinstance(v, list):
        raise bad(path, must_be("array", v))
    return v


def _str(v: object, path: str) -> str:
    if not isinstance(v, str):
        raise bad(path, must_be("string", v))
    return v


def _int(v: object, path: str, lo: int = -(1 << 63), hi: int = (1 << 64) - 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise bad(path, must_be("integer", v))
    if not lo <= v <= hi:
        raise bad(path, out_of_range(v, lo, hi))
    return v


def _id(v: object, path: str) -> int:
    """A uid or gid the kernel takes as one (see MAX_ID)."""
    return _int(v, path, 0, MAX_ID)


def _bool(v: object, path: str) -> bool:
    if not isinstance(v, bool):
        raise bad(path, must_be("boolean", v))
    return v


def _strs(v: object, path: str) -> list[str]:
    return [_str(x, f"{path}[{i}]") for i, x in enumerate(_list(v, path))]


def _abs(v: object, path: str) -> str:
    """An absolute path (a string starting with "/")."""
    if not isinstance(v, str):
        raise bad(path, must_be("string", v))
    if not v.startswith("/"):
        raise bad(path, not_absolute(v))
    return v


def _choice(v: object, path: str, table: "dict | tuple", kind: str = "value") -> str:
    """One of the names in `table`, else `invalid value "x": must be one of ...`."""
    if _str(v, path) not in table:
        raise bad(path, unknown(v, tuple(table), kind))
    return v


# ---------------------------------------------------------------- the model


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, d: object, path: str, report: "Report | None" = None) -> None:
        r = report or Report()
        d = _obj(d, path)
        self.path = r.field(_abs, d.get("path"), f"{path}.path", default="/")
        self.args = r.field(_strs, d["args"], f"{path}.args", default=[]) if "args" in d else [self.path]
        # None (absent or null) is not []: without `env` a hook gets a default environment (ocirun.hooks).
        self.env = r.field(_strs, d["env"], f"{path}.env", default=None) if d.get("env") is not None else None
        self.timeout = r.field(_int, d["timeout"], f"{path}.timeout", 1, default=0) if "timeout" in d else 0

    def to_json(self) -> dict:
        d = {"path": self.path, "args": self.args}
        if self.env is not None:
            d["env"] = self.env
        if self.timeout:
            d["timeout"] = self.timeout
        return d


class Mount:
    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")

    def __init__(self, d: object, path: str, report: "Report | None" = None) -> None:
        r = report or Report()
        d = _obj(d, path)
        self.destination = r.field(_abs, d.get("destination"), f"{path}.destination", default="/")
        self.type = r.field(_str, d.get("type", ""), f"{path}.type", default="")
        self.source = r.field(_str, d.get("source", ""), f"{path}.source", default="")
        self.options = r.field(_strs, d.get("options", []), f"{path}.options", default=[])
        # An id-mapped mount's own mapping (None: not given; the plan may take the container's).
        self.uid_mappings = self.gid_mappings = None
        for key in ("uidMappings", "gidMappings"):
            if d.get(key) is not None:
                maps = r.each(IdMap, d[key], f"{path}.{key}")
                setattr(self, "uid_mappings" if key == "uidMappings" else "gid_mappings", maps)
        given = [d.get(k) is not None for k in ("uidMappings", "gidMappings")]
        if any(given) and not (d.get("uidMappings") and d.get("gidMappings")):  # (the plan's words for it)
            r.fault(path, "id-mapped mounts must have both uidMappings and gidMappings")


class User:
    __slots__ = ("uid", "gid", "umask", "additional_gids")

    def __init__(self, d: object, path: str, report: "Report | None" = None) -> None:
        r = report or Report()
        d = _obj(d, path)
        self.uid = r.field(_id, d.get("uid", 0), f"{path}.uid", default=0)
        self.gid = r.field(_id, d.get("gid", 0), f"{path}.gid", default=0)
        self.umask = r.field(_int, d["umask"], f"{path}.umask", 0, 0o7777) if d.get("umask") is not None else None
        self.additional_gids = r.each(_id, d.get("additionalGids", []), f"{path}.additionalGids")
        _plan_fits(r, f"{path}.additionalGids", len(self.additional_gids), PLAN_MAX_ARGS - 1, "groups")


def _console_size(v: object, path: str) -> tuple[int, int]:
    cs = _obj(v, path)
    return (_int(cs.get("height", 0), f"{path}.height", 0, 0xFFFF),
            _int(cs.get("width", 0), f"{path}.width", 0, 0xFFFF))


def _env(v: object, path: str) -> list[str]:
    """KEY=VALUE strings (runc refuses an entry without "=" or with an empty name)."""
    env = _strs(v, path)
    for i, e in enumerate(env):
        if not e.partition("=")[0] or "=" not in e:
            raise bad(f"{path}[{i}]", f"must be KEY=VALUE, got {show(e)}")
    return env


def _capabilities(v: object, path: str, r: Report) -> dict[str, int]:
    """The five sets as bit masks; names the kernel or this runtime does not know are warned about and
    left out (runtime-spec 1.1: MUST warn, SHOULD NOT fail; runc 1.1 does the same)."""
    from ocirun.capabilities import caps_to_mask

    caps = _obj(v, path)
    out = {}
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        out[kind] = r.field(_foreign, caps_to_mask, caps.get(kind), f"{path}.{kind}", r.warn, default=0)
    return out


def _rlimits(v: object, path: str) -> list[tuple[int, int, int]]:
    from ocirun.rlimits import parse_rlimits

    return _foreign(parse_rlimits, v, path)


def _io_priority(v: object, path: str) -> tuple[int, int]:
    io = _obj(v, path)
    cls = _choice(io.get("class"), f"{path}.class", IOPRIO_CLASSES)
    return IOPRIO_CLASSES[cls], _int(io.get("priority", 0), f"{path}.priority", 0, 7)


def _scheduler(v: object, path: str) -> tuple[int, ...]:
    sc = _obj(v, path)
    pol = _choice(sc.get("policy"), f"{path}.policy", SCHED_POLICIES)
    flags = 0
    for i, fl in enumerate(_strs(sc.get("flags", []), f"{path}.flags")):
        flags |= SCHED_FLAGS[_choice(fl, f"{path}.flags[{i}]", SCHED_FLAGS)]
    return (SCHED_POLICIES[pol], _int(sc.get("nice", 0), f"{path}.nice", -20, 19),
            _int(sc.get("priority", 0), f"{path}.priority", 0, 99), flags,
            _int(sc.get("runtime", 0), f"{path}.runtime", 0),
            _int(sc.get("deadline", 0), f"{path}.deadline", 0),
            _int(sc.get("period", 0), f"{path}.period", 0))


def _cpu_affinity(v: object, path: str) -> str:
    aff = _obj(v, path)
    key = "final" if "final" in aff else "initial"
    cpus = _str(aff.get(key, ""), f"{path}.{key}")
    for part in cpus.split(",") if cpus else ():
        lo, dash, hi = part.partition("-")
        if not (lo.isdigit() and lo.isascii()) or (dash and not (hi.isdigit() and hi.isascii())):
            raise bad(f"{path}.{key}", f"invalid cpu list {show(cpus)} (e.g. \"0-3,7\")")
    return cpus


def _plan_fits(r: Report, path: str, n: int, room: int, what: str) -> None:
    """One plan step carries at most PLAN_MAX_ARGS arguments: say so here rather than fail at clone."""
    if n > room:
        r.fault(path, f"{n} {what}: at most {room} are supported")


class Process:
    __slots__ = (
        "terminal", "console_size", "user", "args", "env", "cwd", "capabilities", "rlimits",
        "no_new_privileges", "apparmor_profile", "selinux_label", "oom_score_adj", "raw",
        "io_priority", "scheduler", "cpu_affinity",
    )

    def __init__(self, d: object, path: str = "process", report: "Report | None" = None) -> None:
        r = report or Report()
        d = _obj(d, path)
        self.raw = d
        self.terminal = r.field(_bool, d.get("terminal", False), f"{path}.terminal", default=False)
        cs = d.get("consoleSize")
        self.console_size = None if cs is None else r.field(_console_size, cs, f"{path}.consoleSize")
        self.user = r.field(User, d.get("user", {}), f"{path}.user", r) or User({}, path)
        self.args = r.field(_strs, d.get("args", []), f"{path}.args", default=["?"])
        if not self.args:
            r.fault(f"{path}.args", "must name the program to run")
        self.env = r.field(_env, d.get("env", []), f"{path}.env", default=[])
        self.cwd = r.field(_abs, d.get("cwd", "/"), f"{path}.cwd", default="/")
        caps = d.get("capabilities")
        self.capabilities: dict[str, int] | None = None
        if caps is not None:
            self.capabilities = r.field(_capabilities, caps, f"{path}.capabilities", r)
        self.rlimits: list[tuple[int, int, int]] = []
        if d.get("rlimits"):
            self.rlimits = r.field(_rlimits, d["rlimits"], f"{path}.rlimits", default=[])
        self.no_new_privileges = r.field(_bool, d.get("noNewPrivileges", False), f"{path}.noNewPrivileges",
                                         default=False)
        self.apparmor_profile = r.field(_str, d.get("apparmorProfile", ""), f"{path}.apparmorProfile", default="")
        self.selinux_label = r.field(_str, d.get("selinuxLabel", ""), f"{path}.selinuxLabel", default="")
        io, sc, aff, oom = (d.get(k) for k in ("ioPriority", "scheduler", "execCPUAffinity", "oomScoreAdj"))
        self.io_priority = None if io is None else r.field(_io_priority, io, f"{path}.ioPriority")
        self.scheduler = None if sc is None else r.field(_scheduler, sc, f"{path}.scheduler")
        self.cpu_affinity = "" if aff is None else r.field(_cpu_affinity, aff, f"{path}.execCPUAffinity", default="")
        self.oom_score_adj = None if oom is None else r.field(_int, oom, f"{path}.oomScoreAdj", -1000, 1000)


class Namespace:
    __slots__ = ("type", "path", "flag")

    def __init__(self, d: object, path: str, report: "Report | None" = None) -> None:
        d = _obj(d, path)
        self.type = _choice(d.get("type"), f"{path}.type", NAMESPACES)
        self.flag = NAMESPACES[self.type]
        self.path = _str(d.get("path", ""), f"{path}.path")
        if self.path and not self.path.startswith("/"):
            (report or Report()).fault(f"{path}.path", not_absolute(self.path))


class IdMap:
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, d: object, path: str) -> None:
        d = _obj(d, path)
        self.container_id = _int(d.get("containerID"), f"{path}.containerID", 0, 0xFFFFFFFF)
        self.host_id = _int(d.get("hostID"), f"{path}.hostID", 0, 0xFFFFFFFF)
        self.size = _int(d.get("size"), f"{path}.size", 1, 0xFFFFFFFF)


class Device:
    """linux.devices[]: since runtime-spec 1.1 the path "MAY be anywhere" in the container; the C helper
    resolves it inside the rootfs like every other path (symlinks included), creating missing parents."""

    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, d: object, path: str, report: "Report | None" = None) -> None:
        r = report or Report()
        d = _obj(d, path)
        self.path = r.field(_device_path, d.get("path"), f"{path}.path", default="/dev/null")
        self.type = _choice(d.get("type"), f"{path}.type", ("c", "b", "u", "p"), "device type")
        need = self.type != "p"
        self.major = self.minor = 0
        for key in ("major", "minor"):
            if key in d or need:
                if d.get(key) is None and need:
                    r.fault(f"{path}.{key}", f"is required for device type {show(self.type)}")
                    continue
                setattr(self, key, r.field(_int, d.get(key), f"{path}.{key}", 0, 0xFFFFFFFF, default=0))
        mode = _int(d.get("fileMode", 0o666), f"{path}.fileMode", 0, 0o177777)
        # podman passes the host device's st_mode, file type included (S_IFCHR|0666); runc ORs the type in anyway.
        if mode & ~0o7777 and mode & ~0o7777 != DEVICE_IFMT[self.type]:
            r.fault(f"{path}.fileMode", f"file type bits {oct(mode & ~0o7777)} do not match type {show(self.type)}")
        self.file_mode = mode & 0o7777
        self.uid = r.field(_int, d.get("uid", 0), f"{path}.uid", 0, 0xFFFFFFFF, default=0)
        self.gid = r.field(_int, d.get("gid", 0), f"{path}.gid", 0, 0xFFFFFFFF, default=0)


def _device_path(v: object, path: str) -> str:
    p = _abs(v, path)
    parts = p.split("/")
    if fspath.normpath(p) == "/" or ".." in parts or not parts[-1]:
        raise bad(path, f"{show(p)} does not name a file (no \"..\", not \"/\", no trailing \"/\")")
    return p


def _cgroups_path(v: object, path: str) -> str:
    from ocirun.cgroups.paths import is_systemd_path, resolve_inner

    cp = _str(v, path)
    b = cp.encode()
    if len(b) > CGROUPS_PATH_MAX or any(len(part) > NAME_MAX for part in b.split(b"/")):
        raise bad(path, f"is too long ({len(b)} bytes; a cgroup's name takes at most {NAME_MAX}, "
                        f"the whole path {CGROUPS_PATH_MAX})")
    if not is_systemd_path(cp):
        try:
            resolve_inner(cp, "id")  # the cgroup code's own rules (not the root cgroup)
        except OciError as e:
            raise bad(path, e.why) from None
    return cp


def _sysctls(v: object, path: str) -> dict[str, str]:
    """Names and values, names in their dotted form (see ocirun/sysctl.py); the namespace rules need the
    whole config and are checked by Config."""
    from ocirun import sysctl

    out = {}
    for k, val in _obj(v, path).items():
        where = key_path(path, k)
        _str(val, where)
        key = sysctl.dotted(k)
        if sysctl.bad_name(key):
            raise bad(where, f"invalid sysctl name {show(k)}")
        out[key] = val
    return out


def _time_offsets(v: object, path: str) -> dict[str, tuple[int, int]]:
    out = {}
    for k, off in _obj(v, path).items():
        if k not in CLOCKS:
            raise bad(path, unknown(k, CLOCKS, "key"))
        off = _obj(off, f"{path}.{k}")
        out[k] = (_int(off.get("secs", 0), f"{path}.{k}.secs", -(1 << 62), 1 << 62),
                  _int(off.get("nanosecs", 0), f"{path}.{k}.nanosecs", 0, 999999999))
    return out


def _personality(v: object, path: str) -> int:
    pers = _obj(v, path)
    domain = _choice(pers.get("domain"), f"{path}.domain", PERSONALITY_DOMAINS)
    if pers.get("flags"):
        raise bad(f"{path}.flags", "no flags are defined by the spec")
    return PERSONALITY_DOMAINS[domain]


class Linux:
    __slots__ = (
        "namespaces", "uid_mappings", "gid_mappings", "devices", "cgroups_path", "resources",
        "rootfs_propagation", "seccomp", "sysctl", "masked_paths", "readonly_paths", "mount_label",
        "personality", "time_offsets",
    )

    def __init__(self, d: object, p: str = "linux", report: "Report | None" = None) -> None:
        r = report or Report()
        d = _obj(d, p)
        self.namespaces = r.each(Namespace, d.get("namespaces", []), f"{p}.namespaces", r)
        first: dict[str, int] = {}
        for i, ns in enumerate(d.get("namespaces") if isinstance(d.get("namespaces"), list) else []):
            t = ns.get("type") if isinstance(ns, dict) else None
            if t in first:
                r.fault(f"{p}.namespaces[{i}].type",
                        f"namespace {show(t)} repeated (first at {p}.namespaces[{first[t]}])")
            elif isinstance(t, str):
                first[t] = i
        self.uid_mappings = r.each(IdMap, d.get("uidMappings", []), f"{p}.uidMappings")
        self.gid_mappings = r.each(IdMap, d.get("gidMappings", []), f"{p}.gidMappings")
        user = next((n for n in self.namespaces if n.type == "user"), None)
        for name, maps in (("uidMappings", self.uid_mappings), ("gidMappings", self.gid_mappings)):
            if maps and user is None:
                r.fault(f"{p}.{name}", "is set but linux.namespaces has no user namespace")
            elif user is not None and not user.path and not d.get(name):
                r.fault(f"{p}.{name}", f"is required by the new user namespace ({p}.namespaces[{first['user']}])")
        self.devices = r.each(Device, d.get("devices", []), f"{p}.devices", r)
        cp = d.get("cgroupsPath")
        self.cgroups_path = None if cp is None else r.field(_cgroups_path, cp, f"{p}.cgroupsPath")
        self.resources = r.field(_obj, d.get("resources", {}), f"{p}.resources", default={})
        if isinstance(self.resources.get("devices"), list):  # refused before any cgroup is made
            r.field(_device_rules, self.resources["devices"], f"{p}.resources.devices")
        # The spec names four values; runc also takes the recursive forms (containerd's CRI writes rshared/rslave).
        rp = r.field(_str, d.get("rootfsPropagation", ""), f"{p}.rootfsPropagation", default="")
        if rp:
            r.field(_choice, rp, f"{p}.rootfsPropagation", ROOTFS_PROPAGATIONS[1:])
        self.rootfs_propagation = rp if rp in ROOTFS_PROPAGATIONS else ""
        self.seccomp = d.get("seccomp")
        if self.seccomp is not None:
            r.field(_obj, self.seccomp, f"{p}.seccomp")
        self.sysctl = r.field(_sysctls, d.get("sysctl", {}), f"{p}.sysctl", default={})
        self.masked_paths = r.each(_abs, d.get("maskedPaths", []), f"{p}.maskedPaths")
        self.readonly_paths = r.each(_abs, d.get("readonlyPaths", []), f"{p}.readonlyPaths")
        self.mount_label = r.field(_str, d.get("mountLabel", ""), f"{p}.mountLabel", default="")
        pers = d.get("personality")
        self.personality: int | None = None if pers is None else r.field(_personality, pers, f"{p}.personality")
        self.time_offsets = r.field(_time_offsets, d.get("timeOffsets", {}), f"{p}.timeOffsets", default={})
        if self.time_offsets and not any(n.type == "time" and not n.path for n in self.namespaces):
            r.fault(f"{p}.timeOffsets", "needs a new time namespace")


def _device_rules(v: list, path: str) -> None:
    """linux.resources.devices, checked before any cgroup is made (the cgroup code applies them)."""
    from ocirun.cgroups.devices import build_rules

    _foreign(lambda rules, _path: build_rules(rules, ()), v, path)


class Config:
    __slots__ = (
        "oci_version", "root_path", "root_readonly", "mounts", "process", "hostname",
        "domainname", "hooks", "annotations", "linux", "bundle", "warnings", "root_given",
    )

    def __init__(self, d: object, bundle: str, report: "Report | None" = None) -> None:
        r = report or Report()
        d = _obj(d, "(top level)")
        self.bundle = bundle
        self.warnings = r.warnings
        self.oci_version = r.field(_version, d.get("ociVersion"), "ociVersion", default="1.0.0")
        root = r.field(_obj, d.get("root"), "root", default={})
        rp = r.field(_str, root.get("path"), "root.path", default="")
        self.root_given = rp
        self.root_path = fspath.normpath(fspath.join(bundle, rp))
        self.root_readonly = r.field(_bool, root.get("readonly", False), "root.readonly", default=False)
        self.mounts = r.each(Mount, d.get("mounts", []), "mounts", r)
        pr = d.get("process")
        self.process = None if pr is None else r.field(Process, pr, "process", r)
        self.hostname = r.field(_str, d.get("hostname", ""), "hostname", default="")
        self.domainname = r.field(_str, d.get("domainname", ""), "domainname", default="")
        hooks = r.field(_obj, d.get("hooks", {}), "hooks", default={})
        self.hooks: dict[str, list[Hook]] = {}
        for kind, hs in hooks.items():
            if kind in HOOK_KINDS:  # unknown hook kinds are ignored, as the spec allows for extensions
                self.hooks[kind] = r.each(Hook, hs, f"hooks.{kind}", r)
        self.annotations = r.field(_obj, d.get("annotations", {}), "annotations", default={})
        for k, v in self.annotations.items():
            r.field(_str, v, key_path("annotations", k))
        lx = d.get("linux")
        self.linux = r.field(Linux, {} if lx is None else lx, "linux", r, default=None) or Linux({}, "linux")
        for name in ("hostname", "domainname"):
            if getattr(self, name) and self.ns("uts") is None:
                r.fault(name, f"setting a {name} needs a uts namespace")
        if self.linux.sysctl:
            self._check_sysctls(r)

    def _check_sysctls(self, r: Report) -> None:
        """Only sysctls of namespaces the container has to itself (ocirun/sysctl.py); and with no mount
        namespace the plan sets none (no /proc/sys of the container's own to write): say so."""
        from ocirun import sysctl

        ns: dict[str, str | None] = {}
        for t in ("ipc", "network", "uts", "user"):
            n = self.ns(t)
            ns[t] = None if n is None else n.path  # "" for a new one
        fields = {"hostname": self.hostname, "domainname": self.domainname}
        for k, v in self.linux.sysctl.items():
            why = sysctl.refusal(k, v, ns, fields)
            if why:
                r.fault(key_path("linux.sysctl", k), why)
        if self.ns("mount") is None:
            r.warn("linux.sysctl", "not applied: the container has no mount namespace (and so no /proc of its own)")

    def has_new_ns(self, t: str) -> bool:
        return any(n.type == t and not n.path for n in self.linux.namespaces)

    def ns(self, t: str) -> Namespace | None:
        for n in self.linux.namespaces:
            if n.type == t:
                return n
        return None


def _version(v: object, path: str) -> str:
    s = _str(v, path)
    if not s.startswith("1."):
        raise bad(path, f"unsupported version {show(s)}: ocirun implements runtime-spec 1.x")
    return s


def read(bundle: str, path: str | None = None) -> bytes:
    """The bytes of <bundle>/config.json (`bundle` absolute), or of `path` (crun's --config FILE, relative to
    the current directory)."""
    path = fspath.abspath(path) if path else fspath.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise OciError(path, "no such file or directory") from None
    except OSError as e:
        raise OciError(path, (e.strerror or str(e)).lower()) from None


def check_root(cfg: Config, report: "Report | None" = None) -> None:
    """root.path must be a directory (relative paths are the bundle's)."""
    if not fspath.isdir(cfg.root_path):
        why = "is not a directory" if fspath.exists(cfg.root_path) else "does not exist"
        where = "" if cfg.root_given.startswith("/") else f" (looked at {cfg.root_path})"
        (report or Report()).fault("root.path", f"{show(cfg.root_given, 4096)} {why}{where}")


def load(bundle: str, path: str | None = None, report: "Report | None" = None) -> Config:
    """Read and model <bundle>/config.json, or `path` (crun's --config FILE; root.path stays relative to the
    bundle)."""
    bundle = fspath.abspath(bundle)
    cfg = Config(jsonio.load_input(read(bundle, path), "config.json"), bundle, report)
    check_root(cfg, report)
    return cfg


