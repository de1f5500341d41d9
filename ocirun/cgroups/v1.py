"""cgroup v1 (and hybrid) manager: one directory per mounted hierarchy, as runc's fs driver.

Hybrid hosts (v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified) also get the container's
directory on the cgroup2 mount, which runc joins too (key "unified"); controllers stay on v1 there.
"""

import posix
import time

import ocirun
from ocirun import fspath
from ocirun.cgroups import fsutil
from ocirun.cgroups.base import Manager
from ocirun.errors import OciError

UNIFIED = "unified"
# Which hierarchy answers "which pids are in the container" (any joined one would do).
_PIDS_FROM = ("pids", "freezer", "devices", "memory", "cpu", "name=systemd")


class V1Manager(Manager):
    """Per-controller directories; co-mounted controllers ("cpu,cpuacct") share one directory."""

    def __init__(self, inner: str, dirs: dict[str, str], mounts: dict[str, str], *, hybrid: bool) -> None:
        self.inner = inner
        self._dirs = dict(dirs)
        self._mounts = dict(mounts)
        self.mode = "hybrid" if hybrid else "v1"
        self._fds: dict[str, int] = {}  # dir: open fd, from create() or open_dirs() until close()

    @classmethod
    def for_path(cls, inner: str, *, hybrid: bool) -> "V1Manager":
        """Resolve `inner` in every mounted v1 hierarchy (and the unified mount on hybrid hosts)."""
        from ocirun.cgroups import paths  # only create resolves paths: delete, ps, pause... rebuild from state

        v1, v2, v2root = paths.cgroup_mounts()
        own = paths.own_cgroups_for(inner)
        dirs: dict[str, str] = {}
        mounts: dict[str, str] = {}
        for ctrl, (mnt, root) in v1.items():
            dirs[ctrl] = paths.v1_dir(inner, ctrl, mnt, root, own)
            mounts[ctrl] = mnt
        if hybrid and v2 is not None:
            dirs[UNIFIED] = paths.v2_dir(inner, v2, v2root, own)
            mounts[UNIFIED] = v2
        if not dirs:
            raise OciError("cgroups", "no cgroup hierarchy is mounted")
        return cls(inner, dirs, mounts, hybrid=hybrid)

    @classmethod
    def from_state(cls, data: dict) -> "V1Manager":
        try:
            return cls(data["path"], data["paths"], data["mounts"], hybrid=data["mode"] == "hybrid")
        except (KeyError, TypeError) as e:
            raise OciError("state.json cgroup", f"missing {e}") from e

    def to_state(self) -> dict:
        return {"mode": self.mode, "path": self.inner, "paths": dict(self._dirs),
                "mounts": dict(self._mounts)}

    def paths(self) -> dict[str, str]:
        return dict(self._dirs)

    def _unique(self) -> list[tuple[str, str]]:
        """(controller, dir) once per directory (co-mounted controllers share one)."""
        seen: set[str] = set()
        out = []
        for ctrl, d in self._dirs.items():
            if d not in seen:
                seen.add(d)
                out.append((ctrl, d))
        return out

    # --- lifecycle ----------------------------------------------------------------------------

    def create(self) -> None:
        """mkdir in every hierarchy; on failure remove what this call created and raise."""
        self.close()
        created: list[str] = []
        try:
            for ctrl, d in self._unique():
                mnt = self._mounts[ctrl]
                rel = d[len(mnt):] if d.startswith(mnt.rstrip("/") + "/") else None
                if rel is None:
                    raise OciError(d, f"is not below the {ctrl} mount {mnt}")
                fill = _CpusetFill() if ctrl == "cpuset" else None
                tr = ocirun.TRACER
                t = tr and tr.now()
                try:
                    made, self._fds[d] = fsutil.mkdir_open(mnt, fsutil.split_inner(rel), before_level=fill)
                    created += made
                    if fill is not None:
                        fill(self._fds[d])
                except OSError as e:
                    raise OciError(d, f"creating cgroup: {posix.strerror(e.errno or 5)}") from e
                if tr:
                    tr.step("cgroup.mkdir", t, d)
        except BaseException:
            self.close()
            fsutil.remove_created(created)
            raise

    def open_dirs(self) -> None:
        for _ctrl, d in self._unique():
            if d not in self._fds:
                try:
                    self._fds[d] = fsutil.open_dir(d)
                except (OSError, OciError):
                    pass  # add_pid opens it again and says what is wrong

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            posix.close(fd)

    def apply(self, resources: dict, *, device_allow: list[dict] | tuple = ()) -> None:
        from ocirun.cgroups import resources_v1

        resources_v1.apply(self._dirs, resources, device_allow)

    def add_pid(self, pid: int) -> None:
        tr = ocirun.TRACER
        for ctrl, d in self._unique():
            t = tr and tr.now()
            try:
                fd = self._fds.get(d)
                if fd is not None:
                    fsutil.write_at(fd, "cgroup.procs", str(pid))
                else:
                    with fsutil.CgroupDir(d) as cg:
                        fsutil.write_at(cg.fd, "cgroup.procs", str(pid))
            except OSError as e:
                raise OciError(f"cgroup {ctrl}", f"adding pid {pid} to {d}/cgroup.procs: {e.strerror}") from e
            if tr:
                tr.step("cgroup.attach", t, f"{d}/cgroup.procs <- {pid}")

    def pids(self) -> list[int]:
        for ctrl in _PIDS_FROM:
            if ctrl in self._dirs:
                return sorted(set(fsutil.read_procs(self._dirs[ctrl])))
        return sorted({p for _c, d in self._unique() for p in fsutil.read_procs(d)})

    def destroy(self) -> None:
        first: OciError | None = None
        tr = ocirun.TRACER
        for _ctrl, d in self._unique():
            t = tr and tr.now()
            try:
                fsutil.rmdir_tree(d)
            except OciError as e:
                first = first or e
            if tr:
                tr.step("cgroup.rmdir", t, d)
        if first is not None:
            raise first

    # --- freezer ------------------------------------------------------------------------------

    def _freezer(self) -> fsutil.CgroupDir:
        d = self._dirs.get("freezer")
        if d is None:
            raise OciError("freezer", "the freezer cgroup controller is not mounted")
        try:
            return fsutil.CgroupDir(d)
        except OSError as e:
            raise OciError("freezer", f"{d}: {e.strerror}") from e

    def freeze(self) -> None:
        """Write FROZEN until the kernel reports FROZEN (FREEZING may need retries, as runc does)."""
        with self._freezer() as fz:
            for i in range(1000):
                if i % 50 == 49:  # a short thaw lets tasks stuck in FREEZING finish what blocks them
                    fz.write("freezer", "freezer.state", "THAWED")
                    time.sleep(0.01)
                fz.write("freezer", "freezer.state", "FROZEN")
                if fz.read("freezer.state").strip() == "FROZEN":
                    return
                time.sleep(0.001)
            fz.write("freezer", "freezer.state", "THAWED")
        raise OciError("freezer", f"{self._dirs['freezer']} did not reach FROZEN")

    def thaw(self) -> None:
        """THAWED in the freezer hierarchy, and on hybrid hosts cgroup.freeze 0 on the unified mount too:
        anyone may have frozen the container there, and a task frozen either way does not run."""
        if self._unified_frozen():
            with fsutil.CgroupDir(self._dirs[UNIFIED]) as u:
                u.write("freezer", "cgroup.freeze", "0")
        if "freezer" in self._dirs or UNIFIED not in self._dirs:
            with self._freezer() as fz:
                fz.write("freezer", "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        """FROZEN once a FREEZING has settled: a task that joins a frozen cgroup (an `exec --ignore-paused`
        child) turns the state to FREEZING until it has frozen, a while on a loaded machine, and a paused
        container must not read as running meanwhile. runc's GetState waits for it the same way; after ~1 s
        of FREEZING the pause asked for stands. On hybrid hosts: or frozen on the unified mount."""
        if self._unified_frozen():
            return True
        if "freezer" not in self._dirs:
            return False
        if not fspath.isdir(self._dirs["freezer"]):
            return False
        with self._freezer() as fz:
            for _ in range(1000):
                st = fz.read("freezer.state").strip()
                if st != "FREEZING":
                    return st == "FROZEN"
                time.sleep(0.001)
            return True

    def _unified_frozen(self) -> bool:
        d = self._dirs.get(UNIFIED)
        if d is None or not fspath.isdir(d):
            return False
        with fsutil.CgroupDir(d) as u:
            return "frozen 1" in (u.read_opt("cgroup.events") or "").splitlines()

    def kill_all(self, sig: int) -> None:
        """Freeze, signal every pid, thaw: frozen tasks cannot fork new ones behind our back."""
        if not self.pids():
            return
        self._signal_frozen(sig, "freezer" in self._dirs)

    # --- stats --------------------------------------------------------------------------------

    def stats(self) -> dict:
        from ocirun.cgroups import stats_v1

        return stats_v1.collect(self._dirs)

    def oom_kill_count(self) -> int:
        d = self._dirs.get("memory")
        if d is None:
            return 0
        with fsutil.CgroupDir(d) as cg:
            for line in cg.read("memory.oom_control").splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        return 0


class _CpusetFill:
    """Fill empty v1 cpuset.cpus/mems on the way down, from the nearest ancestor that has them.

    A v1 cpuset starts with empty cpus and mems and refuses tasks (ENOSPC) until both are set. A level made
    by a plain mkdir (not by a runtime) stays empty, so copying only from the immediate parent would copy
    nothing: like runc's cpuset ensureParent, every level from the root to the leaf, existing or new, gets
    the values of the nearest ancestor above it. Called with each level's fd, root first (mkdir_open's
    before_level), then with the leaf's.
    """

    __slots__ = ("cpus", "mems")

    def __init__(self) -> None:
        self.cpus = self.mems = ""

    def __call__(self, fd: int) -> None:
        for name in ("cpuset.cpus", "cpuset.mems"):
            have = fsutil.read_at(fd, name).strip()
            inherited = getattr(self, name[7:])
            if not have and inherited:
                fsutil.write_at(fd, name, inherited)
                have = inherited
            setattr(self, name[7:], have)
