"""config.json → a typed model. Every malformed or unsupported value is an OciError naming its JSON path.

Only what the runtime acts on is modelled; `linux.resources` and `linux.seccomp` stay raw dicts for the
cgroup and seccomp modules, which check them with paths of their own.
"""


from ocirun import fspath, jsonio
from ocirun.errors import OciError

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


def bad(path: str, why: str) -> OciError:
    return OciError("config.json", f"{path}: {why}")


def _obj(v: object, path: str) -> dict:
    if not isinstance(v, dict):
        raise bad(path, "must be an object")
    return v


def _list(v: object, path: str) -> list:
    if not isinstance(v, list):
        raise bad(path, "must be an array")
    return v


def _str(v: object, path: str) -> str:
    if not isinstance(v, str):
        raise bad(path, "must be a string")
    return v


def _int(v: object, path: str, lo: int = -(1 << 63), hi: int = (1 << 64) - 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise bad(path, "must be an integer")
    if not lo <= v <= hi:
        raise bad(path, f"{v} out of range [{lo}, {hi}]")
    return v


def _bool(v: object, path: str) -> bool:
    if not isinstance(v, bool):
        raise bad(path, "must be a boolean")
    return v


def _strs(v: object, path: str) -> list[str]:
    return [_str(x, f"{path}[{i}]") for i, x in enumerate(_list(v, path))]


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, d: dict, path: str) -> None:
        self.path = _str(d.get("path"), f"{path}.path")
        if not self.path.startswith("/"):
            raise bad(f"{path}.path", f'"{self.path}" is not absolute')
        self.args = _strs(d["args"], f"{path}.args") if "args" in d else [self.path]
        # None (absent or null) is not []: without `env` a hook gets a default environment (ocirun.hooks).
        self.env = _strs(d["env"], f"{path}.env") if d.get("env") is not None else None
        self.timeout = _int(d["timeout"], f"{path}.timeout", 1) if "timeout" in d else 0

    def to_json(self) -> dict:
        d = {"path": self.path, "args": self.args}
        if self.env is not None:
            d["env"] = self.env
        if self.timeout:
            d["timeout"] = self.timeout
        return d


class Mount:
    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")

    def __init__(self, d: dict, path: str) -> None:
        self.destination = _str(d.get("destination"), f"{path}.destination")
        if not self.destination.startswith("/"):
            raise bad(f"{path}.destination", f'"{self.destination}" is not absolute')
        self.type = _str(d.get("type", ""), f"{path}.type")
        self.source = _str(d.get("source", ""), f"{path}.source")
        self.options = _strs(d.get("options", []), f"{path}.options")
        # An id-mapped mount's own mapping (None: not given; the plan may take the container's).
        self.uid_mappings = self.gid_mappings = None
        for key in ("uidMappings", "gidMappings"):
            if d.get(key) is not None:
                maps = [IdMap(_obj(m, f"{path}.{key}[{i}]"), f"{path}.{key}[{i}]")
                        for i, m in enumerate(_list(d[key], f"{path}.{key}"))]
                setattr(self, "uid_mappings" if key == "uidMappings" else "gid_mappings", maps)


class User:
    __slots__ = ("uid", "gid", "umask", "additional_gids")

    def __init__(self, d: dict, path: str) -> None:
        self.uid = _int(d.get("uid", 0), f"{path}.uid", 0, 0xFFFFFFFF)
        self.gid = _int(d.get("gid", 0), f"{path}.gid", 0, 0xFFFFFFFF)
        self.umask = _int(d["umask"], f"{path}.umask", 0, 0o7777) if "umask" in d else None
        self.additional_gids = [
            _int(g, f"{path}.additionalGids[{i}]", 0, 0xFFFFFFFF)
            for i, g in enumerate(_list(d.get("additionalGids", []), f"{path}.additionalGids"))
        ]


class Process:
    __slots__ = (
        "terminal", "console_size", "user", "args", "env", "cwd", "capabilities", "rlimits",
        "no_new_privileges", "apparmor_profile", "selinux_label", "oom_score_adj", "raw",
        "io_priority", "scheduler", "cpu_affinity",
    )

    def __init__(self, d: dict, path: str = "process") -> None:
        self.raw = d
        self.terminal = _bool(d.get("terminal", False), f"{path}.terminal")
        cs = d.get("consoleSize")
        self.console_size = None
        if cs is not None:
            cs = _obj(cs, f"{path}.consoleSize")
            self.console_size = (
                _int(cs.get("height", 0), f"{path}.consoleSize.height", 0, 0xFFFF),
                _int(cs.get("width", 0), f"{path}.consoleSize.width", 0, 0xFFFF),
            )
        self.user = User(_obj(d.get("user", {}), f"{path}.user"), f"{path}.user")
        self.args = _strs(d.get("args", []), f"{path}.args")
        if not self.args:
            raise bad(f"{path}.args", "must name the program to run")
        self.env = _strs(d.get("env", []), f"{path}.env")
        self.cwd = _str(d.get("cwd", "/"), f"{path}.cwd")
        if not self.cwd.startswith("/"):
            raise bad(f"{path}.cwd", f'"{self.cwd}" is not absolute')
        caps = d.get("capabilities")
        self.capabilities: dict[str, int] | None = None
        if caps is not None:
            from ocirun.capabilities import caps_to_mask

            caps = _obj(caps, f"{path}.capabilities")
            self.capabilities = {}
            for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
                names = _list(caps.get(kind, []), f"{path}.capabilities.{kind}")
                try:
                    self.capabilities[kind] = caps_to_mask(names, f"{path}.capabilities.{kind}")
                except OciError as e:
                    raise OciError("config.json", str(e)) from None
        self.rlimits: list[tuple[int, int, int]] = []
        if d.get("rlimits"):
            from ocirun.rlimits import parse_rlimits

            try:
                self.rlimits = parse_rlimits(d["rlimits"], f"{path}.rlimits")
            except OciError as e:
                raise OciError("config.json", str(e)) from None
        self.no_new_privileges = _bool(d.get("noNewPrivileges", False), f"{path}.noNewPrivileges")
        self.apparmor_profile = _str(d.get("apparmorProfile", ""), f"{path}.apparmorProfile")
        self.selinux_label = _str(d.get("selinuxLabel", ""), f"{path}.selinuxLabel")
        self.io_priority = self.scheduler = None
        self.cpu_affinity = ""
        if d.get("ioPriority") is not None:
            io = _obj(d["ioPriority"], f"{path}.ioPriority")
            cls = _str(io.get("class"), f"{path}.ioPriority.class")
            if cls not in IOPRIO_CLASSES:
                raise bad(f"{path}.ioPriority.class", f'unknown class "{cls}"')
            self.io_priority = (IOPRIO_CLASSES[cls], _int(io.get("priority", 0), f"{path}.ioPriority.priority", 0, 7))
        if d.get("scheduler") is not None:
            sc = _obj(d["scheduler"], f"{path}.scheduler")
            pol = _str(sc.get("policy"), f"{path}.scheduler.policy")
            if pol not in SCHED_POLICIES:
                raise bad(f"{path}.scheduler.policy", f'unknown policy "{pol}"')
            flags = 0
            for i, fl in enumerate(_strs(sc.get("flags", []), f"{path}.scheduler.flags")):
                if fl not in SCHED_FLAGS:
                    raise bad(f"{path}.scheduler.flags[{i}]", f'unknown flag "{fl}"')
                flags |= SCHED_FLAGS[fl]
            self.scheduler = (
                SCHED_POLICIES[pol], _int(sc.get("nice", 0), f"{path}.scheduler.nice", -20, 19),
                _int(sc.get("priority", 0), f"{path}.scheduler.priority", 0, 99), flags,
                _int(sc.get("runtime", 0), f"{path}.scheduler.runtime", 0),
                _int(sc.get("deadline", 0), f"{path}.scheduler.deadline", 0),
                _int(sc.get("period", 0), f"{path}.scheduler.period", 0))
        if d.get("execCPUAffinity") is not None:
            aff = _obj(d["execCPUAffinity"], f"{path}.execCPUAffinity")
            cpus = _str(aff.get("final", aff.get("initial", "")), f"{path}.execCPUAffinity.final")
            if cpus and not all(part.replace("-", "", 1).isdigit() for part in cpus.split(",")):
                raise bad(f"{path}.execCPUAffinity.final", f'invalid cpu list "{cpus}"')
            self.cpu_affinity = cpus
        oom = d.get("oomScoreAdj")
        self.oom_score_adj = None if oom is None else _int(oom, f"{path}.oomScoreAdj", -1000, 1000)


class Namespace:
    __slots__ = ("type", "path", "flag")

    def __init__(self, d: dict, path: str) -> None:
        t = _str(d.get("type"), f"{path}.type")
        if t not in NAMESPACES:
            raise bad(f"{path}.type", f'unknown namespace "{t}"')
        self.type = t
        self.flag = NAMESPACES[t]
        self.path = _str(d.get("path", ""), f"{path}.path")
        if self.path and not self.path.startswith("/"):
            raise bad(f"{path}.path", f'"{self.path}" is not absolute')


class IdMap:
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, d: dict, path: str) -> None:
        self.container_id = _int(d.get("containerID"), f"{path}.containerID", 0, 0xFFFFFFFF)
        self.host_id = _int(d.get("hostID"), f"{path}.hostID", 0, 0xFFFFFFFF)
        self.size = _int(d.get("size"), f"{path}.size", 1, 0xFFFFFFFF)


DEVICE_IFMT = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}  # S_IFCHR, S_IFBLK, S_IFIFO


class Device:
    __slots__ = ("path", "type", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, d: dict, path: str) -> None:
        self.path = _str(d.get("path"), f"{path}.path")
        if not self.path.startswith("/dev/") or "/../" in self.path + "/":
            raise bad(f"{path}.path", f'"{self.path}" is not under /dev')
        self.type = _str(d.get("type"), f"{path}.type")
        if self.type not in ("c", "b", "u", "p"):
            raise bad(f"{path}.type", f'unknown device type "{self.type}"')
        need = self.type != "p"
        self.major = _int(d.get("major"), f"{path}.major", 0) if "major" in d or need else 0
        self.minor = _int(d.get("minor"), f"{path}.minor", 0) if "minor" in d or need else 0
        mode = _int(d.get("fileMode", 0o666), f"{path}.fileMode", 0, 0o177777)
        # podman passes the host device's st_mode, file type included (S_IFCHR|0666); runc ORs the type in anyway.
        if mode & ~0o7777 and mode & ~0o7777 != DEVICE_IFMT[self.type]:
            raise bad(f"{path}.fileMode", f"file type bits {oct(mode & ~0o7777)} do not match type \"{self.type}\"")
        self.file_mode = mode & 0o7777
        self.uid = _int(d.get("uid", 0), f"{path}.uid", 0, 0xFFFFFFFF)
        self.gid = _int(d.get("gid", 0), f"{path}.gid", 0, 0xFFFFFFFF)


class Linux:
    __slots__ = (
        "namespaces", "uid_mappings", "gid_mappings", "devices", "cgroups_path", "resources",
        "rootfs_propagation", "seccomp", "sysctl", "masked_paths", "readonly_paths", "mount_label",
        "personality", "time_offsets",
    )

    def __init__(self, d: dict) -> None:
        p = "linux"
        self.namespaces = [
            Namespace(_obj(n, f"{p}.namespaces[{i}]"), f"{p}.namespaces[{i}]")
            for i, n in enumerate(_list(d.get("namespaces", []), f"{p}.namespaces"))
        ]
        seen: set[str] = set()
        for i, ns in enumerate(self.namespaces):
            if ns.type in seen:
                raise bad(f"{p}.namespaces[{i}].type", f'namespace "{ns.type}" given twice')
            seen.add(ns.type)
        self.uid_mappings = [
            IdMap(_obj(m, f"{p}.uidMappings[{i}]"), f"{p}.uidMappings[{i}]")
            for i, m in enumerate(_list(d.get("uidMappings", []), f"{p}.uidMappings"))
        ]
        self.gid_mappings = [
            IdMap(_obj(m, f"{p}.gidMappings[{i}]"), f"{p}.gidMappings[{i}]")
            for i, m in enumerate(_list(d.get("gidMappings", []), f"{p}.gidMappings"))
        ]
        new_user = any(n.type == "user" and not n.path for n in self.namespaces)
        if (self.uid_mappings or self.gid_mappings) and "user" not in seen:
            raise bad(f"{p}.uidMappings", "id mappings need a user namespace")
        if new_user and not (self.uid_mappings and self.gid_mappings):
            raise bad(f"{p}.namespaces", "a new user namespace needs uidMappings and gidMappings")
        self.devices = [
            Device(_obj(x, f"{p}.devices[{i}]"), f"{p}.devices[{i}]")
            for i, x in enumerate(_list(d.get("devices", []), f"{p}.devices"))
        ]
        cp = d.get("cgroupsPath")
        self.cgroups_path = None if cp is None else _str(cp, f"{p}.cgroupsPath")
        self.resources = _obj(d.get("resources", {}), f"{p}.resources")
        rp = _str(d.get("rootfsPropagation", ""), f"{p}.rootfsPropagation")
        # The spec names four values; runc also takes the recursive forms (containerd's CRI writes rshared/rslave).
        if rp not in ROOTFS_PROPAGATIONS:
            raise bad(f"{p}.rootfsPropagation", f'unknown propagation "{rp}"')
        self.rootfs_propagation = rp
        self.seccomp = d.get("seccomp")
        if self.seccomp is not None:
            _obj(self.seccomp, f"{p}.seccomp")
        self.sysctl = _obj(d.get("sysctl", {}), f"{p}.sysctl")
        for k, v in self.sysctl.items():
            _str(v, f"{p}.sysctl.{k}")
            if not k or "/" in k or ".." in k or k.startswith("."):
                raise bad(f"{p}.sysctl", f'invalid sysctl name "{k}"')
        self.masked_paths = _strs(d.get("maskedPaths", []), f"{p}.maskedPaths")
        self.readonly_paths = _strs(d.get("readonlyPaths", []), f"{p}.readonlyPaths")
        for kind, paths in (("maskedPaths", self.masked_paths), ("readonlyPaths", self.readonly_paths)):
            for i, x in enumerate(paths):
                if not x.startswith("/"):
                    raise bad(f"{p}.{kind}[{i}]", f'"{x}" is not absolute')
        self.mount_label = _str(d.get("mountLabel", ""), f"{p}.mountLabel")
        self.personality: int | None = None
        pers = d.get("personality")
        if pers is not None:
            pers = _obj(pers, f"{p}.personality")
            domain = _str(pers.get("domain"), f"{p}.personality.domain")
            if domain not in PERSONALITY_DOMAINS:
                raise bad(f"{p}.personality.domain", f'unknown domain "{domain}"')
            if pers.get("flags"):
                raise bad(f"{p}.personality.flags", "no flags are defined by the spec")
            self.personality = PERSONALITY_DOMAINS[domain]
        self.time_offsets: dict[str, tuple[int, int]] = {}
        for k, v in _obj(d.get("timeOffsets", {}), f"{p}.timeOffsets").items():
            if k not in ("monotonic", "boottime"):
                raise bad(f"{p}.timeOffsets", f'unknown clock "{k}"')
            v = _obj(v, f"{p}.timeOffsets.{k}")
            self.time_offsets[k] = (_int(v.get("secs", 0), f"{p}.timeOffsets.{k}.secs", -(1 << 62), 1 << 62),
                                    _int(v.get("nanosecs", 0), f"{p}.timeOffsets.{k}.nanosecs", 0, 999999999))
        if self.time_offsets and not any(n.type == "time" and not n.path for n in self.namespaces):
            raise bad(f"{p}.timeOffsets", "needs a new time namespace")


class Config:
    __slots__ = (
        "oci_version", "root_path", "root_readonly", "mounts", "process", "hostname",
        "domainname", "hooks", "annotations", "linux", "bundle",
    )

    def __init__(self, d: dict, bundle: str) -> None:
        self.bundle = bundle
        self.oci_version = _str(d.get("ociVersion"), "ociVersion")
        if not self.oci_version.startswith("1."):
            raise bad("ociVersion", f'unsupported version "{self.oci_version}"')
        root = _obj(d.get("root"), "root")
        rp = _str(root.get("path"), "root.path")
        self.root_path = fspath.normpath(fspath.join(bundle, rp))
        self.root_readonly = _bool(root.get("readonly", False), "root.readonly")
        self.mounts = [
            Mount(_obj(m, f"mounts[{i}]"), f"mounts[{i}]")
            for i, m in enumerate(_list(d.get("mounts", []), "mounts"))
        ]
        pr = d.get("process")
        self.process = Process(_obj(pr, "process")) if pr is not None else None
        self.hostname = _str(d.get("hostname", ""), "hostname")
        self.domainname = _str(d.get("domainname", ""), "domainname")
        hooks = _obj(d.get("hooks", {}), "hooks")
        self.hooks: dict[str, list[Hook]] = {}
        for kind, hs in hooks.items():
            if kind not in HOOK_KINDS:
                continue  # unknown hook kinds are ignored, as the spec allows for extensions
            self.hooks[kind] = [
                Hook(_obj(h, f"hooks.{kind}[{i}]"), f"hooks.{kind}[{i}]")
                for i, h in enumerate(_list(hs, f"hooks.{kind}"))
            ]
        self.annotations = _obj(d.get("annotations", {}), "annotations")
        lx = d.get("linux")
        self.linux = Linux(_obj(lx, "linux")) if lx is not None else Linux({})
        if (self.hostname or self.domainname) and self.ns("uts") is None:
            raise bad("hostname", "setting a hostname needs a uts namespace")

    def has_new_ns(self, t: str) -> bool:
        return any(n.type == t and not n.path for n in self.linux.namespaces)

    def ns(self, t: str) -> Namespace | None:
        for n in self.linux.namespaces:
            if n.type == t:
                return n
        return None


def load(bundle: str, path: str | None = None) -> Config:
    """Read and model <bundle>/config.json, or `path` (crun's --config FILE, relative to the current directory;
    root.path stays relative to the bundle)."""
    bundle = fspath.abspath(bundle)
    path = fspath.abspath(path) if path else fspath.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except FileNotFoundError:
        raise OciError(path, "no such file or directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise OciError(path, getattr(e, "strerror", None) or str(e)) from None
    d = jsonio.loads(text, "config.json")
    if not isinstance(d, dict):
        raise OciError("config.json", "must be a JSON object")
    cfg = Config(d, bundle)
    if not fspath.isdir(cfg.root_path):
        raise bad("root.path", f"{cfg.root_path}: no such directory")
    return cfg
