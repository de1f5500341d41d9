"""Where a container's cgroup lives: mountinfo scan, own-cgroup lookup and cgroupsPath resolution.

cgroupsPath rules (runc's fs/fs2 drivers):
  * absolute "/a/b": relative to each hierarchy's root (mount point);
  * relative "a/b": v1: under the caller's own cgroup in that hierarchy; v2: under the *parent* of the
    caller's cgroup (the caller's own cgroup usually has tasks, so it cannot get child controllers);
  * unset: runc sets Name=<id> with no Parent, i.e. the relative path "<id>" -> same rules as relative.
    We do the same, so a runtime started from the root cgroup puts containers at "/<id>".
  * "slice:prefix:name" is the systemd driver's syntax (parse_systemd); without the driver it is refused.
"""


from ocirun import fspath
from ocirun.errors import OciError, show

# v1 controllers runc's fs manager knows, in its order; "name=systemd" and "misc" are joined only.
V1_CONTROLLERS = (
    "cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
    "net_cls", "net_prio", "perf_event", "freezer", "rdma", "name=systemd", "misc",
)


def clean_path(path: str) -> str:
    """Lexically clean like runc's CleanPath: "..", "." and "//" can never climb above the root."""
    if not path:
        return ""
    if path.startswith("/"):
        return fspath.normpath("/" + path.lstrip("/"))
    cleaned = fspath.normpath("/" + path)
    return cleaned.lstrip("/") or ""


def is_systemd_path(path: str | None) -> bool:
    """runc's systemd driver syntax "slice:prefix:name" (three colon-separated fields)."""
    return path is not None and path.count(":") == 2 and not path.startswith("/")


def check_systemd(path: str | None, systemd: bool) -> None:
    """A slice:prefix:name path needs the systemd driver, and the driver needs a running systemd."""
    if not (systemd or is_systemd_path(path)):
        return
    if not fspath.isdir("/run/systemd/system"):
        raise OciError(
            "cgroupsPath",
            "systemd cgroup driver needs systemd running (/run/systemd/system is missing); "
            "use a plain path such as \"/mygroup/<id>\" with the cgroupfs driver",
        )
    if not systemd:
        raise OciError("cgroupsPath", f"{path!r} is systemd's slice:prefix:name syntax: it needs the systemd "
                       "cgroup driver (--systemd-cgroup)")


def parse_systemd(path: str | None, container_id: str, default_slice: str) -> tuple[str, str, str]:
    """(slice, unit name, slice's cgroup path) of runc's systemd cgroupsPath "slice:prefix:name".

    Unset: `default_slice` and "ocirun-<id>.scope" (runc: "runc-<id>.scope"); an empty slice field is the
    default slice too. The unit is "<prefix>-<name>.scope" as in runc's getUnitName.
    """
    if not path:
        if not container_id or "/" in container_id:
            raise OciError("container id", f"{container_id!r} cannot name a systemd unit")
        slice_, prefix, name = default_slice, "ocirun", container_id
    else:
        parts = path.split(":")
        if len(parts) != 3:
            raise OciError("cgroupsPath", "expected cgroupsPath to be of format \"slice:prefix:name\" for "
                           f"systemd cgroups, got {path!r} instead")
        slice_, prefix, name = parts
        slice_ = slice_ or default_slice
    if not name or "/" in prefix or "/" in name or "\0" in prefix + name:
        raise OciError("cgroupsPath", f"{path!r}: the name must be set, and neither prefix nor name may contain \"/\"")
    if name.endswith(".slice"):
        raise OciError("cgroupsPath", f"{path!r} names a slice: a container's unit is a scope")
    return slice_, f"{prefix}-{name}.scope", expand_slice(slice_)


def expand_slice(slice_: str) -> str:
    """systemd's slice hierarchy from its name: "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice", "-.slice"
    -> "/" (runc's ExpandSlice, the same validation)."""
    if not slice_.endswith(".slice") or len(slice_) <= len(".slice") or "/" in slice_:
        raise OciError("cgroupsPath", f"invalid slice name: {slice_!r}")
    stem = slice_[: -len(".slice")]
    if stem == "-":
        return "/"
    out, prefix = "", ""
    for comp in stem.split("-"):
        if not comp:
            raise OciError("cgroupsPath", f"invalid slice name: {slice_!r}")
        out += f"/{prefix}{comp}.slice"
        prefix += comp + "-"
    return out


_OCTAL = "01234567"


def _unescape(s: str) -> str:
    """mountinfo's octal escapes of a byte (the kernel writes " ", tab, newline and backslash as \\ooo)."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        o = s[i + 1 : i + 4]
        if s[i] == "\\" and len(o) == 3 and o[0] in "0123" and o[1] in _OCTAL and o[2] in _OCTAL:
            out.append(chr(int(o, 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mounts(mountinfo: str | None = None) -> list[tuple[str, str, str, str]]:
    """/proc/self/mountinfo (or that text), one (mount point, root, fstype, super options) per mount, in order.

    The only mountinfo parser of the package; tools/launcher.c reads it alike, before Python starts (its
    choice is compared with warm_target's in tests/test_launcher.py)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    out = []
    for line in mountinfo.split("\n"):  # (the kernel's separators: newline, single spaces)
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = [f for f in left.split(" ") if f]
        rfields = [f for f in right.split(" ") if f]
        if len(fields) < 5 or len(rfields) < 3:
            continue
        out.append((_unescape(fields[4]), _unescape(fields[3]), rfields[0], rfields[2]))
    return out


def cgroup_mounts(mountinfo: str | None = None) -> tuple[dict[str, tuple[str, str]], str | None, str]:
    """Parse mountinfo: ({v1 controller: (mountpoint, mount root)}, v2 mountpoint or None, v2 root).

    The first mount of each controller wins (bind mounts of the same hierarchy come later).
    """
    v1: dict[str, tuple[str, str]] = {}
    v2: str | None = None
    v2_root = "/"
    for mnt, root, fstype, opts in mounts(mountinfo):
        if fstype == "cgroup2":
            if v2 is None:
                v2, v2_root = mnt, root
        elif fstype == "cgroup":
            for opt in opts.split(","):
                if opt in V1_CONTROLLERS and opt not in v1:
                    v1[opt] = (mnt, root)
    return v1, v2, v2_root


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """Parse /proc/self/cgroup: {controller: path}; the v2 entry is keyed "" (hierarchy 0). The first line
    naming a controller wins."""
    if text is None:
        with open("/proc/self/cgroup") as f:
            text = f.read()
    out: dict[str, str] = {}
    for line in text.split("\n"):
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if hid == "0" and ctrls == "":
            out.setdefault("", path)
            continue
        for c in ctrls.split(","):
            if c:
                out.setdefault(c, path)
    return out


def warm_target(mountinfo: str | None = None, cgroup: str | None = None) -> str:
    """The cgroup.procs that cgroups.prewarm_attach writes "0" to (our own cgroup: nothing moves), or "" when
    none is certain: on the first cgroup2 mount when it is the hierarchy's root, else on the first v1
    controller (in mountinfo order) whose first mount is. The C launcher makes the same choice (warm_target in
    tools/launcher.c); a path the kernel could not open (PATH_MAX) is none."""
    v1, v2, v2_root = cgroup_mounts(mountinfo)
    own = own_cgroups(cgroup)
    target = None
    if v2 is not None and v2_root == "/" and "" in own:
        target = (v2.rstrip("/") + own[""]).rstrip("/")
    else:
        for ctrl, (mnt, root) in v1.items():
            if root == "/" and ctrl in own:
                target = (mnt.rstrip("/") + own[ctrl]).rstrip("/")
                break
    if target is None or len((target + "/cgroup.procs").encode()) >= 4096:
        return ""
    return target + "/cgroup.procs"


def own_cgroups_for(inner: str) -> dict[str, str]:
    """own_cgroups() when `inner` is relative to them; an absolute cgroupsPath needs no /proc read."""
    return {} if inner.startswith("/") else own_cgroups()


def _strip_mount_root(own: str, mount_root: str) -> str:
    """Inside a cgroupns or a bind mount the mount root is not "/": make `own` relative to it."""
    if mount_root in ("/", ""):
        return own
    if own == mount_root:
        return "/"
    if own.startswith(mount_root.rstrip("/") + "/"):
        return own[len(mount_root.rstrip("/")):]
    return own


def resolve_inner(cgroups_path: str | None, container_id: str) -> str:
    """Cleaned cgroupsPath, "<id>" when unset (runc: Name=<id>, Parent="")."""
    if cgroups_path:
        inner = clean_path(cgroups_path)
        if inner in ("", "/"):
            raise OciError("cgroupsPath", f"{show(cgroups_path)} names the root cgroup, not a container's own")
        return inner
    if not container_id or "/" in container_id or container_id in (".", ".."):
        raise OciError("container id", f"{show(container_id)} cannot name a cgroup")
    return container_id


def v1_dir(inner: str, controller: str, mnt: str, mount_root: str, own: dict[str, str]) -> str:
    """Absolute directory of `inner` in the v1 hierarchy of `controller` mounted at `mnt`."""
    if inner.startswith("/"):
        return mnt.rstrip("/") + inner
    base = _strip_mount_root(own.get(controller, "/"), mount_root)
    return fspath.normpath(mnt.rstrip("/") + "/" + base.strip("/") + "/" + inner)


def v2_dir(inner: str, mnt: str, mount_root: str, own: dict[str, str]) -> str:
    """Absolute directory of `inner` on the cgroup2 mount; relative paths go under our parent cgroup."""
    if inner.startswith("/"):
        return mnt.rstrip("/") + inner
    base = fspath.dirname(_strip_mount_root(own.get("", "/"), mount_root)) or "/"
    return fspath.normpath(mnt.rstrip("/") + "/" + base.strip("/") + "/" + inner)
