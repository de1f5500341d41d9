"""Compile a Config into the flat plan the C helper carries out in the container's init.

The plan is the whole interface between Python and C: a list of (op, label, args) steps with int and
str/bytes args, serialised to the wire format of csrc/plan.h. `--dry-run` prints it.
"""

import posix

from ocirun import fspath
from ocirun._native import lib as _c  # csrc/plan.h's values (ocirun/_build_c.py); a plan's command loads it anyway
from ocirun.config import DEVICE_IFMT, NAMESPACES, Config, Mount, Process, bad
from ocirun.errors import OciError

# The ops, by name: enum ocirun_op in csrc/plan.h, whose numbers only C writes down.
OPCODE = {name[3:]: getattr(_c, name) for name in dir(_c) if name.startswith("OP_") and name != "OP_MAX"}
_ARG_INT, _ARG_STR = bytes((_c.ARG_INT,)), bytes((_c.ARG_STR,))

SYNC_PLACED = 1  # the runtime wrote id maps and placed the child in its cgroup
SYNC_HOOKS = 2  # the runtime ran prestart/createRuntime hooks; the go carries the container hooks' states
SYNC_TIMENS = 3  # the runtime wrote linux.timeOffsets into our (still empty) time_for_children namespace
# HOOK flags (csrc/plan.h): which state it reads (hooks.container_states); a default env that is the process's
HOOK_STATE_CREATING, HOOK_STATE_CREATED, HOOK_PROCESS_ENV = 0, _c.HOOK_STATE_CREATED, _c.HOOK_PROCESS_ENV
# MOUNT's kind and source mode, PIVOT's mode (csrc/plan.h)
MOUNT_FS, MOUNT_BIND, MOUNT_BIND_FILE, MOUNT_SRC_ASK, MOUNT_SRC_FD = (
    _c.MOUNT_FS, _c.MOUNT_BIND, _c.MOUNT_BIND_FILE, _c.MOUNT_SRC_ASK, _c.MOUNT_SRC_FD)
PIVOT_ROOT, PIVOT_MOVE, PIVOT_CHROOT = _c.PIVOT_ROOT, _c.PIVOT_MOVE, _c.PIVOT_CHROOT
CLONE_NEWTIME = 0x80

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS, MS_REMOUNT = 1, 2, 4, 8, 16, 32
MS_MANDLOCK, MS_DIRSYNC, MS_NOSYMFOLLOW, MS_NOATIME, MS_NODIRATIME = 64, 128, 256, 1024, 2048
MS_BIND, MS_REC, MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 4096, 16384, 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24

MOUNT_FLAGS = {  # option: (set, clear)
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV), "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
    "remount": (MS_REMOUNT, 0), "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK),
    "atime": (0, MS_NOATIME), "noatime": (MS_NOATIME, 0), "diratime": (0, MS_NODIRATIME),
    "nodiratime": (MS_NODIRATIME, 0), "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME),
    "nosymfollow": (MS_NOSYMFOLLOW, 0), "symfollow": (0, MS_NOSYMFOLLOW),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0), "defaults": (0, 0),
}
PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC, "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# Recursive mount attributes (mount_setattr): option -> (attr_set, attr_clr)
A_RDONLY, A_NOSUID, A_NODEV, A_NOEXEC, A_NOATIME, A_STRICTATIME, A_NODIRATIME, A_NOSYMFOLLOW = (
    1, 2, 4, 8, 0x10, 0x20, 0x80, 0x200000)
A_ATIME = 0x70
RECURSIVE_ATTRS = {
    "rro": (A_RDONLY, 0), "rrw": (0, A_RDONLY), "rnosuid": (A_NOSUID, 0), "rsuid": (0, A_NOSUID),
    "rnodev": (A_NODEV, 0), "rdev": (0, A_NODEV), "rnoexec": (A_NOEXEC, 0), "rexec": (0, A_NOEXEC),
    "rnodiratime": (A_NODIRATIME, 0), "rdiratime": (0, A_NODIRATIME), "rrelatime": (0, A_ATIME),
    "rnorelatime": (A_NOATIME, A_ATIME), "rnoatime": (A_NOATIME, A_ATIME), "ratime": (0, A_ATIME),
    "rstrictatime": (A_STRICTATIME, A_ATIME), "rnostrictatime": (0, A_ATIME),
    "rnosymfollow": (A_NOSYMFOLLOW, 0), "rsymfollow": (0, A_NOSYMFOLLOW),
}
# linux.rootfsPropagation → the flag applied to "/" before the mounts (runc's prepareRoot: rslave by default).
ROOTFS_PROPAGATION = {"": MS_SLAVE | MS_REC, **PROPAGATION}

DEFAULT_DEVICES = (  # path, major, minor (all "c", 0666), as runc creates them
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
)
# Always allowed in the device cgroup on top of the spec's rules (runc's AllowedDevices).
DEFAULT_DEVICE_RULES = (
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"} for _, ma, mi in DEFAULT_DEVICES),
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx"),
)
CLONE_NEWPID = NAMESPACES["pid"]
CLONE_NEWUSER = NAMESPACES["user"]
# The order namespaces are joined in, by create (SETNS by path) and exec (the fds execute.py opens): pid first
# (its setns only names our children's, and is done while we hold the host's capabilities over its owner;
# PIDNS_FORK enters it once we are out of the host's mounts), then the user namespace (it owns the others: in
# it, their setns calls have the capabilities they need), the mount namespace last (create's later paths
# would resolve in the container's mounts).
JOIN_ORDER = ("pid", "user", "ipc", "uts", "network", "cgroup", "time", "mount")


class SeccompFilter:
    """A compiled linux.seccomp filter as the plan loads it: the BPF program (struct sock_filter array), the
    seccomp(2) flags, and whether it returns a listener fd (SCMP_ACT_NOTIFY) to hand to the runtime."""

    __slots__ = ("bpf", "flags", "notify")

    def __init__(self, bpf: bytes, flags: int, notify: bool) -> None:
        self.bpf = bpf
        self.flags = flags
        self.notify = notify


class Step:
    """One plan step: the opcode name, a label naming what it comes from (used in errors), its args."""

    __slots__ = ("op", "label", "args")

    def __init__(self, op: str, label: str, *args: int | str | bytes) -> None:
        self.op = op
        self.label = label
        self.args = args

    def __repr__(self) -> str:
        return f"Step({self.op!r}, {self.label!r}, {self.args!r})"


class MountSource:
    """An id-mapped bind source the runtime makes for the child before the clone (ocirun.mountsrc): a
    detached copy of `path` mapped through `idmap` (uid_map and gid_map texts, or the path of a user
    namespace). Its fd goes into the MOUNT step's args[9]."""

    __slots__ = ("step", "path", "recursive", "idmap", "idmap_recursive")

    def __init__(self, step: Step, path: str, recursive: bool, idmap: tuple[str, str] | str,
                 idmap_recursive: bool) -> None:
        self.step = step
        self.path = path
        self.recursive = recursive
        self.idmap = idmap
        self.idmap_recursive = idmap_recursive


class Plan:
    """Everything the C helper needs: the steps plus how to clone."""

    __slots__ = ("steps", "clone_flags", "new_user", "mount_sources")

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.clone_flags = 0
        self.new_user = False
        self.mount_sources: list[MountSource] = []

    def add(self, op: str, label: str, *args: int | str | bytes) -> None:
        self.steps.append(Step(op, label, *args))

    def encode(self) -> bytes:
        """The wire format of csrc/plan.h (little-endian; int.to_bytes rather than loading _struct)."""
        out = [b"OCIP", len(self.steps).to_bytes(4, "little")]
        for st in self.steps:
            if len(st.args) > _c.OCIRUN_MAX_ARGS:
                raise OciError(st.label or st.op.lower(),
                               f"{len(st.args)} values in one step: the container's init takes {_c.OCIRUN_MAX_ARGS}")
            label = st.label.encode("utf-8", "surrogateescape")
            out.append(OPCODE[st.op].to_bytes(4, "little") + len(st.args).to_bytes(4, "little"))
            out.append(len(label).to_bytes(4, "little") + label + b"\0")
            for a in st.args:
                if isinstance(a, int):
                    out.append(_ARG_INT + (a if a < (1 << 63) else a - (1 << 64)).to_bytes(8, "little", signed=True))
                else:
                    # surrogateescape: a command-line argument that is not UTF-8 goes through as its bytes
                    b = a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a
                    out.append(_ARG_STR + len(b).to_bytes(4, "little") + b + b"\0")
        return b"".join(out)

    def describe(self) -> str:
        """Readable, numbered steps for `create --dry-run`."""
        lines = [f"0. clone flags={_ns_names(self.clone_flags) or 'none'}"]
        for i, st in enumerate(self.steps, 1):
            args = []
            for a in st.args:
                if isinstance(a, bytes):
                    args.append(f"<{len(a)} bytes>")
                elif isinstance(a, int) and a > 0xFFFF:
                    args.append(hex(a))
                else:
                    args.append(repr(a))
            label = f" [{st.label}]" if st.label else ""
            lines.append(f"{i}. {st.op.lower()} {' '.join(args)}{label}")
        return "\n".join(lines)


def _ns_names(flags: int) -> str:
    return ",".join(n for n, f in NAMESPACES.items() if flags & f)


def parse_mount_options(options: list[str], label: str) -> tuple[int, int, str, int, int]:
    """Mount options → (flags, propagation, data, attr_set, attr_clr), as runc's parseMountOptions."""
    flags = prop = attr_set = attr_clr = 0
    data = []
    for o in options:
        if o in MOUNT_FLAGS:
            s, c = MOUNT_FLAGS[o]
            flags = (flags | s) & ~c
        elif o in PROPAGATION:
            prop = PROPAGATION[o]
        elif o in RECURSIVE_ATTRS:
            s, c = RECURSIVE_ATTRS[o]
            attr_set = (attr_set | s) & ~c
            attr_clr |= c
        elif o in ("tmpcopyup", "idmap", "ridmap"):
            pass  # not mount(2) options: _mount_steps copies into a tmpfs, or id-maps a bind (MountSource)
        else:
            data.append(o)
    return flags, prop, ",".join(data), attr_set, attr_clr


def _mount_steps(plan: Plan, m: Mount, label: str, bundle: str, cgroup: dict,
                 userns_idmap: tuple[str, str] | str | None = None) -> bool:
    """The steps of one mount; True when it is mounted read-write now and made read-only once the rootfs
    is set up (runc's finalizeRootfs: a tmpfs, or /dev, still gets files and mounts under it).

    `userns_idmap`: the container's user namespace as an id mapping (its maps, or the path of the one it
    joins), what `idmap`/`ridmap` without mappings of their own map through."""
    flags, prop, data, aset, aclr = parse_mount_options(m.options, label)
    is_bind = m.type == "bind" or bool(flags & MS_BIND)
    idmap = _mount_idmap(m, label, is_bind, userns_idmap)
    if m.type in ("proc", "sysfs") and not is_bind:
        want = "/proc" if m.type == "proc" else "/sys"
        if fspath.normpath(m.destination) != want:
            raise bad(f"{label}.destination", f"{m.type} may only be mounted at {want}")
    if m.type == "cgroup" and not is_bind:
        _cgroup_mount_steps(plan, m, label, flags, cgroup)
        return False
    if is_bind:
        src = m.source if m.source.startswith("/") else fspath.join(bundle, m.source)
        try:
            kind = MOUNT_BIND if posix.stat(src).st_mode & 0o170000 == 0o040000 else MOUNT_BIND_FILE
        except OSError as e:
            raise bad(f"{label}.source", f"{src}: {e.strerror.lower()}") from None
        except ValueError:
            raise bad(f"{label}.source", f"{src!r}: contains a NUL byte") from None
        args = (src, m.destination, "", flags | MS_BIND, "", prop, kind, aset, aclr)
        if idmap is not None:
            # Mapped by the runtime on a detached copy it makes before the clone; the init attaches it.
            st = Step("MOUNT", label, *args, -1, MOUNT_SRC_FD)
            plan.steps.append(st)
            plan.mount_sources.append(MountSource(st, src, bool(flags & MS_REC), idmap, "ridmap" in m.options))
        elif userns_idmap is not None:
            # From a user namespace (new or joined) the source may be out of reach (a 0700 parent owned by
            # the host's root): when the init's bind is refused it asks the runtime to open it (runc's
            # procMountPlease).
            plan.add("MOUNT", label, *args, -1, MOUNT_SRC_ASK)
        else:
            plan.add("MOUNT", label, *args)
        return False
    later_ro = bool(flags & MS_RDONLY) and (m.type == "tmpfs" or fspath.normpath(m.destination) == "/dev")
    if later_ro:
        flags &= ~MS_RDONLY
    # tmpcopyup (podman --read-only's /tmp, /run): the tmpfs starts with the directory's contents; runc
    # ignores it on other types.
    op = "MOUNT_COPYUP" if m.type == "tmpfs" and "tmpcopyup" in m.options else "MOUNT"
    plan.add(op, label, m.source, m.destination, m.type, flags, data, prop, MOUNT_FS, aset, aclr)
    return later_ro


def _map_text(maps: list) -> str:
    return "".join(f"{x.container_id} {x.host_id} {x.size}\n" for x in maps)


def _mount_idmap(m: Mount, label: str, is_bind: bool,
                 userns_idmap: tuple[str, str] | str | None) -> tuple[str, str] | str | None:
    """An id-mapped mount's mapping (runc 1.2's rules), or None when the mount is not id-mapped."""
    flagged = "idmap" in m.options or "ridmap" in m.options
    if not flagged and m.uid_mappings is None and m.gid_mappings is None:
        return None
    if not is_bind:
        raise bad(label, "id-mapped mounts are only supported for bind mounts")
    if m.uid_mappings is None and m.gid_mappings is None:
        if userns_idmap is None:
            raise bad(label, "id-mapped mounts must have both uidMappings and gidMappings (or a user namespace)")
        return userns_idmap
    if not m.uid_mappings or not m.gid_mappings:
        raise bad(label, "id-mapped mounts must have both uidMappings and gidMappings")
    return _map_text(m.uid_mappings), _map_text(m.gid_mappings)


def _cgroup_mount_steps(plan: Plan, m: Mount, label: str, flags: int, cgroup: dict) -> None:
    """`cgroup` mounts: cgroup2 on v2 hosts; on v1 a tmpfs with each hierarchy's container dir bound in,
    named as on the host (cpu, memory, systemd, unified…), as runc does."""
    ro = flags & MS_RDONLY
    if cgroup.get("mode") == "v2":  # in a cgroup namespace the kernel shows our own cgroup as the root
        plan.add("MOUNT", label, "cgroup2", m.destination, "cgroup2", flags, "", 0, MOUNT_FS, 0, 0)
        return
    base = MS_NOSUID | MS_NODEV | MS_NOEXEC
    dest = m.destination.rstrip("/")
    plan.add("MOUNT", label, "tmpfs", m.destination, "tmpfs", base, "mode=755", 0, MOUNT_FS, 0, 0)
    mounts = cgroup.get("mounts", {})
    for key, host_dir in sorted(cgroup.get("paths", {}).items()):
        name = fspath.basename(mounts.get(key, key)) or key
        plan.add("MOUNT", label, host_dir, f"{dest}/{name}", "", MS_BIND | base | ro, "", 0, MOUNT_BIND, 0, 0)
    if ro:
        plan.add("READONLY", label, m.destination)


def _sched_steps(plan: Plan, p: Process) -> None:
    """process.ioPriority, process.scheduler and execCPUAffinity (its `final` set is the one exec'd with;
    `initial` is where the runtime's own setup runs, which is the same set for a runtime without a re-exec)."""
    if p.io_priority is not None:
        plan.add("IOPRIO", "process.ioPriority", *p.io_priority)
    if p.scheduler is not None:
        plan.add("SCHED", "process.scheduler", *p.scheduler)
    if p.cpu_affinity:
        plan.add("CPU_AFFINITY", "process.execCPUAffinity", p.cpu_affinity)


def _user_steps(plan: Plan, p: Process, seccomp: SeccompFilter | None) -> None:
    """Privilege drop in the order the kernel needs: bounding set, ids with caps kept, then the cap sets."""
    caps = p.capabilities
    nnp = p.no_new_privileges
    if _needs_home(p.env):
        # runc's prepareEnv: HOME from the container's passwd (read in the jail, before any filter is on).
        plan.add("LOOKUP_HOME", "process.env", p.user.uid)
    # Into the cwd while still privileged, as runc: a cwd the user may not search (/root for uid 1000) still
    # works. Refused with EACCES, it is resolved now (before a profile can forbid openat2) and entered again
    # once the user is set (a volume only its user may enter).
    plan.add("CHDIR_TRY", "process.cwd", p.cwd)
    if caps is not None:
        plan.add("CAPS_BOUNDING", "process.capabilities.bounding", caps["bounding"])
    if seccomp and not nnp:
        # Without no_new_privs loading a filter needs CAP_SYS_ADMIN: load it before dropping privileges, a
        # notify filter too (its listener fd goes to the runtime, which waits for it until the init is ready).
        plan.add("SECCOMP", "linux.seccomp", seccomp.bpf, seccomp.flags, 1 if seccomp.notify else 0)
    u = p.user
    if caps is not None:
        plan.add("KEEPCAPS", "process.user", 1)
    plan.add("CHOWN_STDIO", "process.user.uid", u.uid)  # runc's setupUser: before the ids change
    plan.add("SETGROUPS", "process.user.additionalGids", len(u.additional_gids), *u.additional_gids)
    plan.add("SETGID", "process.user.gid", u.gid)
    plan.add("SETUID", "process.user.uid", u.uid)
    if caps is not None:
        plan.add("KEEPCAPS", "process.user", 0)
        plan.add("CAPS", "process.capabilities", caps["effective"], caps["permitted"], caps["inheritable"],
                 caps["ambient"])
    if u.umask is not None:
        plan.add("UMASK", "process.user.umask", u.umask)
    if nnp:
        plan.add("NO_NEW_PRIVS", "process.noNewPrivileges")


def _needs_home(env: list[str]) -> bool:
    """No HOME, or an empty one (the last of duplicates counts), as runc decides it."""
    home = next((e for e in reversed(env) if e.startswith("HOME=")), "")
    return len(home) <= 5


def _check_vectors(args: list, env: list, what: str, env_what: str) -> None:
    """An argv and env within what the container's init takes (csrc/plan.h)."""
    if len(args) > _c.OCIRUN_MAX_ARGV - 1:
        raise OciError(what, f"{len(args)} arguments: the container's init takes {_c.OCIRUN_MAX_ARGV - 1}")
    if len(env) > _c.OCIRUN_MAX_ENV - 2:
        raise OciError(env_what, f"{len(env)} variables: the container's init takes {_c.OCIRUN_MAX_ENV - 2}")


def _exec_steps(plan: Plan, p: Process, preserve_fds: int, listen_fd: int | None,
                seccomp: SeccompFilter | None, start_hooks: list | None = None) -> None:
    plan.add("CHDIR", "process.cwd", p.cwd)
    if p.apparmor_profile or p.selinux_label:
        from ocirun.lsm import exec_attrs

        for label, path, value in exec_attrs(p):
            plan.add("WRITE_ATTR", label, path, value)
    path = next((e[5:] for e in p.env if e.startswith("PATH=")), "")
    plan.add("FIND_EXEC", "process.args", p.args[0], path)
    nnp = p.no_new_privileges
    if seccomp and nnp and seccomp.notify:
        # A notify listener fd must reach the runtime, which is only there until create returns.
        plan.add("SECCOMP", "linux.seccomp", seccomp.bpf, seccomp.flags, 1)
    plan.add("CLOSE_FDS", "", 3 + preserve_fds)
    if listen_fd is not None:
        plan.add("WAIT_START", "", listen_fd)
    if seccomp and nnp and not seccomp.notify:
        # As late as possible, so the runtime's own syscalls are not filtered; but before the startContainer
        # hooks, which run under the container's filter as in runc and crun.
        plan.add("SECCOMP", "linux.seccomp", seccomp.bpf, seccomp.flags, 0)
    env = [e for e in p.env if not e.startswith("HOME=")] if _needs_home(p.env) else p.env  # the child adds it
    for i, h in enumerate(start_hooks or ()):
        # Without `env`: the process's, the HOME the child looked up included (HOOK_PROCESS_ENV), as runc.
        _hook_step(plan, h, f"hooks.startContainer[{i}]", env, HOOK_STATE_CREATED | HOOK_PROCESS_ENV)
    _check_vectors(p.args, env, "process.args", "process.env")
    plan.add("EXEC", "process.args", len(p.args), *p.args, len(env), *env)


def compile_create(
    cfg: Config,
    *,
    listen_fd: int,
    console_fd: int | None = None,
    preserve_fds: int = 0,
    no_pivot: bool = False,
    no_new_keyring: bool = False,
    cgroup: dict | None = None,
    seccomp: SeccompFilter | None = None,
) -> Plan:
    """The plan for a container's init (create/run)."""
    if cfg.process is None:
        raise bad("process", "is required to create a container")
    lx = cfg.linux
    plan = Plan()
    joins = [n for n in lx.namespaces if n.path]
    new = 0
    for n in lx.namespaces:
        if not n.path and n.type != "cgroup" and not (n.type == "time" and lx.time_offsets):
            new |= n.flag
    plan.new_user = bool(new & CLONE_NEWUSER)
    # A pid namespace joined by path holds other processes (another container's, which may have
    # CAP_SYS_PTRACE): we enter it only by a fork once the host's filesystem is out of reach (PIDNS_FORK).
    join_pid = any(n.type == "pid" for n in joins)
    if not joins:
        plan.clone_flags = new
    else:
        # Joining existing namespaces must come before creating ours (a new user ns would own them); the pid
        # namespace first, while we hold the host's capabilities over whatever user namespace owns it: that
        # setns only names the namespace of our children (JOIN_ORDER).
        joins.sort(key=lambda n: JOIN_ORDER.index(n.type))
        for n in joins:
            plan.add("SETNS", f"linux.namespaces.{n.type}", n.path, n.flag)
        plan.clone_flags = new & CLONE_NEWPID if not plan.new_user else 0
        rest = new & ~plan.clone_flags
        if rest:
            plan.add("UNSHARE", "linux.namespaces", rest)
    if lx.time_offsets:
        # Offsets can only be written while the time namespace has no process: unshare it (it applies to
        # children), let the runtime write /proc/PID/timens_offsets, then enter it ourselves.
        plan.add("UNSHARE", "linux.timeOffsets", CLONE_NEWTIME)
    plan.add("SYNC", "", SYNC_PLACED)
    if lx.time_offsets:
        plan.add("SYNC", "linux.timeOffsets", SYNC_TIMENS)
        plan.add("SETNS", "linux.timeOffsets", "/proc/self/ns/time_for_children", CLONE_NEWTIME)
    if plan.new_user:
        plan.add("SETRESID0", "linux.uidMappings")
    if cfg.has_new_ns("cgroup"):
        plan.add("CGROUP_NS_UNSHARE", "linux.namespaces.cgroup")
    if not join_pid:
        plan.add("SETSID", "")  # (else once forked: _enter_pidns)
    if cfg.hostname:
        plan.add("HOSTNAME", "hostname", cfg.hostname)
    if cfg.domainname:
        plan.add("DOMAINNAME", "domainname", cfg.domainname)
    if cfg.ns("mount") is None:
        # No mount namespace: any mount would land in the host's. Only chroot, as a plain chroot runtime would.
        plan.add("ROOTFS", "root.path", cfg.root_path, 0)
        forked = _hook_sync(plan, cfg, join_pid)
        plan.add("PIVOT", "root.path", PIVOT_CHROOT)
        if join_pid and not forked:
            _enter_pidns(plan)
        _process_steps(plan, cfg, console_fd, no_new_keyring, seccomp, preserve_fds, listen_fd)
        return plan
    root_prop = ROOTFS_PROPAGATION[lx.rootfs_propagation]
    if no_pivot and root_prop & MS_PRIVATE:
        raise bad("linux.rootfsPropagation", f"{lx.rootfs_propagation} is not safe without pivot_root (--no-pivot)")
    plan.add("PROPAGATE_ROOT", "linux.rootfsPropagation", root_prop)
    if lx.mount_label:
        from ocirun.lsm import check_mount_label

        check_mount_label(lx.mount_label)
    # The mount holding the rootfs must not be shared: pivot_root refuses it and the rootfs bind would
    # propagate to the host (runc's rootfsParentMountPropagation).
    plan.add("ROOTFS", "root.path", cfg.root_path, 1, MS_SLAVE if root_prop & MS_SLAVE else MS_PRIVATE)
    user_ns = cfg.ns("user")
    userns_idmap = None if user_ns is None else user_ns.path or (_map_text(lx.uid_mappings),
                                                                _map_text(lx.gid_mappings))
    remount_ro = [(f"mounts[{i}]", m.destination) for i, m in enumerate(cfg.mounts)
                  if _mount_steps(plan, m, f"mounts[{i}]", cfg.bundle, cgroup or {}, userns_idmap)]
    if not _dev_is_bound(cfg):
        _dev_steps(plan, cfg)
    forked = _hook_sync(plan, cfg, join_pid)
    plan.add("PIVOT", "root.path", PIVOT_MOVE if no_pivot else PIVOT_ROOT)
    if join_pid and not forked:
        _enter_pidns(plan)
    if not root_prop & (MS_PRIVATE | MS_SLAVE):
        # shared/unbindable apply to the new "/" too (private and slave are already in place), as runc.
        plan.add("PROPAGATE_NEWROOT", "linux.rootfsPropagation", root_prop)
    if fspath.normpath(cfg.process.cwd) != "/":
        plan.add("MKDIR_CWD", "process.cwd", cfg.process.cwd)  # runc: MkdirAll(cwd, 0755) as root, in the jail
    if console_fd is not None:
        rows, cols = cfg.process.console_size or (0, 0)
        plan.add("CONSOLE", "process.terminal", console_fd, rows, cols)
    for label, dest in remount_ro:  # /dev/console is bound by now
        plan.add("REMOUNT_RO", label, dest)
    for k, v in sorted(lx.sysctl.items()):
        plan.add("SYSCTL", f"linux.sysctl.{k}", k, v)
    # After sysctls (they write /proc/sys, usually made read-only here), as runc orders them.
    for i, path in enumerate(lx.readonly_paths):
        plan.add("READONLY", f"linux.readonlyPaths[{i}]", path)
    for i, path in enumerate(lx.masked_paths):
        plan.add("MASK", f"linux.maskedPaths[{i}]", path)
    if cfg.root_readonly:
        plan.add("ROOT_READONLY", "root.readonly")
    _process_steps(plan, cfg, None, no_new_keyring, seccomp, preserve_fds, listen_fd)
    return plan


def _dev_is_bound(cfg: Config) -> bool:
    """A bind mount on /dev brings its own nodes: nothing is created in it (it may be the host's /dev)."""
    return any(fspath.normpath(m.destination) == "/dev" and (m.type == "bind" or "bind" in m.options
                                                             or "rbind" in m.options) for m in cfg.mounts)


def _dev_steps(plan: Plan, cfg: Config) -> None:
    """The default and configured device nodes (bound from the host in a user namespace) and /dev's links."""
    lx = cfg.linux
    bind_devices = plan.new_user
    devices = [(p, "c", ma, mi, 0o666, 0, 0) for p, ma, mi in DEFAULT_DEVICES]
    devices += [(d.path, d.type, d.major, d.minor, d.file_mode, d.uid, d.gid) for d in lx.devices]
    for path, typ, ma, mi, mode, uid, gid in devices:
        label = "linux.devices" if (path, ma, mi) not in {(p, a, b) for p, a, b in DEFAULT_DEVICES} else ""
        if bind_devices:
            plan.add("BIND_DEV", label, path, path)
        else:
            plan.add("MKNOD", label, path, DEVICE_IFMT[typ] | mode, ma, mi, uid, gid)
    for target, link in DEV_SYMLINKS:
        plan.add("SYMLINK", "", target, link)


def _enter_pidns(plan: Plan) -> None:
    """Fork into the pid namespace joined by path; a proc mount before it names that namespace (or, on a
    kernel that cannot, forks there and then). The new process leads its own session."""
    plan.add("PIDNS_FORK", "linux.namespaces.pid")
    plan.add("SETSID", "")


def _hook_sync(plan: Plan, cfg: Config, join_pid: bool = False) -> bool:
    """Stop for the runtime's prestart/createRuntime hooks (and to get the state JSON), then createContainer.

    The hooks are given the init's pid, so a pid namespace joined by path is entered before them, not after
    pivot_root (as runc does it always); returns whether it was."""
    forked = False
    if any(cfg.hooks.get(k) for k in ("prestart", "createRuntime", "createContainer", "startContainer")):
        if join_pid:
            _enter_pidns(plan)
            forked = True
        plan.add("SYNC", "hooks", SYNC_HOOKS)
    hooks = cfg.hooks.get("createContainer", ())
    if hooks:
        # In the container's mount namespace before pivot_root, with the rootfs as cwd (runc): a relative path
        # in a hook's args names a file in the container's root; the hook's own path resolves in the runtime's.
        plan.add("CHDIR", "hooks.createContainer", "/")
        env = None
        if any(h.env is None for h in hooks):
            from ocirun.hooks import runtime_env

            # Without `env`, a hook whose path resolves in the runtime namespace gets the runtime's environment
            # (as the runtime-side hooks do, and crun); the container process's env stays its own.
            env = [k + b"=" + v for k, v in runtime_env().items()]
        for i, h in enumerate(hooks):
            _hook_step(plan, h, f"hooks.createContainer[{i}]", env, HOOK_STATE_CREATING)
    return forked


def _hook_step(plan: Plan, h, label: str, default_env: list | None, flags: int) -> None:  # noqa: ANN001
    """A hook the container's init runs itself (createContainer, startContainer): path, timeout, args, env,
    and flags: which of the two states the runtime sent with the hooks go it reads on stdin, and whether its
    env is the process's (which gets the HOME the init looked up).

    `default_env` is the environment of a hook without `env` (startContainer: the process's, as runc)."""
    if h.env is not None:
        env, flags = h.env, flags & ~HOOK_PROCESS_ENV
    else:
        env = default_env or ()
    _check_vectors(h.args, env, f"{label}.args", f"{label}.env")
    plan.add("HOOK", label, h.path, h.timeout, len(h.args), *h.args, len(env), *env, flags)


def _process_steps(plan: Plan, cfg: Config, console_fd: int | None, no_new_keyring: bool,
                   seccomp: SeccompFilter | None, preserve_fds: int, listen_fd: int) -> None:
    p = cfg.process
    if console_fd is not None:
        rows, cols = p.console_size or (0, 0)
        plan.add("CONSOLE", "process.terminal", console_fd, rows, cols)
    if cfg.linux.personality is not None:
        plan.add("PERSONALITY", "linux.personality", cfg.linux.personality)
    if p.oom_score_adj is not None:
        plan.add("OOM_SCORE_ADJ", "process.oomScoreAdj", p.oom_score_adj)
    _sched_steps(plan, p)
    if not no_new_keyring:
        plan.add("NEW_KEYRING", "")
    for i, (res, soft, hard) in enumerate(p.rlimits):
        plan.add("RLIMIT", f"process.rlimits[{i}]", res, soft, hard)
    _user_steps(plan, p, seccomp)
    _exec_steps(plan, p, preserve_fds, listen_fd, seccomp, cfg.hooks.get("startContainer"))


def compile_exec(
    p: Process,
    ns_fds: list[tuple[str, int, int]],
    *,
    console_fd: int | None = None,
    preserve_fds: int = 0,
    seccomp: SeccompFilter | None = None,
) -> Plan:
    """The plan for `exec`: join the container's namespaces (fds opened by the runtime), then the process.

    The child is cloned in the runtime's pid namespace and joins the container's by a fork once it is in
    the container's mount namespace and cgroup: a process of the container (CAP_SYS_PTRACE) never sees it
    while /proc/<pid>/root would still be the host's."""
    plan = Plan()
    for t, fd, flag in ns_fds:  # pid first (it only names our children's), mount last
        plan.add("SETNS", f"namespace {t}", fd, flag)
    plan.add("SYNC", "", SYNC_PLACED)
    if any(t == "pid" for t, _, _ in ns_fds):
        plan.add("PIDNS_FORK", "namespace pid")
    plan.add("SETSID", "")  # always, as runc's nsexec: the process leads its own session, terminal or not
    if console_fd is not None:
        rows, cols = p.console_size or (0, 0)
        plan.add("CONSOLE", "process.terminal", console_fd, rows, cols)
    if p.oom_score_adj is not None:
        plan.add("OOM_SCORE_ADJ", "process.oomScoreAdj", p.oom_score_adj)
    _sched_steps(plan, p)
    for i, (res, soft, hard) in enumerate(p.rlimits):
        plan.add("RLIMIT", f"process.rlimits[{i}]", res, soft, hard)
    _user_steps(plan, p, seccomp)
    _exec_steps(plan, p, preserve_fds, None, seccomp)
    return plan
