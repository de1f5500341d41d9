"""cgroup v2 manager: one directory on the cgroup2 mount (runc's fs2 driver, crun's cgroup-cgroupfs.c).

`root` is the cgroup2 mount point; it is /sys/fs/cgroup on v2 hosts and can be the hybrid
/sys/fs/cgroup/unified mount (used by the tests on v1 hosts to exercise freeze, kill and BPF devices).
"""

import errno
import posix
import time

from ocirun import fspath
from ocirun.cgroups import fsutil
from ocirun.cgroups.base import Manager
from ocirun.errors import OciError


class V2Manager(Manager):
    mode = "v2"

    def __init__(self, path: str, *, root: str = "/sys/fs/cgroup") -> None:
        root = root.rstrip("/") or "/"
        if not path.startswith(root + "/"):
            raise OciError(path, f"is not below the cgroup2 mount {root}")
        self.dir = path
        self.root = root
        self._fd = -1  # the directory, from create() or open_dirs() until close()

    @classmethod
    def from_state(cls, data: dict) -> "V2Manager":
        try:
            return cls(data["path"], root=data["root"])
        except (KeyError, TypeError) as e:
            raise OciError("state.json cgroup", f"missing {e}") from e

    def to_state(self) -> dict:
        return {"mode": "v2", "path": self.dir, "root": self.root}

    def paths(self) -> dict[str, str]:
        """"unified" plus every controller enabled for the cgroup (all share the one directory)."""
        out = {"unified": self.dir, "freezer": self.dir, "devices": self.dir}
        try:
            with open(self.dir + "/cgroup.controllers") as f:
                for c in f.read().split():
                    out[c] = self.dir
        except OSError:
            pass
        return out

    # --- lifecycle ----------------------------------------------------------------------------

    def create(self) -> None:
        """mkdir each level, enabling every available controller in the ancestors' subtree_control."""
        try:
            _made, fd = fsutil.mkdir_open(self.root, fsutil.split_inner(self.dir[len(self.root):]),
                                          before_level=_enable_controllers)
        except OSError as e:
            raise OciError(self.dir, f"creating cgroup: {posix.strerror(e.errno or errno.EIO)}") from e
        self.close()
        self._fd = fd

    def open_dirs(self) -> None:
        if self._fd < 0:
            try:
                self._fd = fsutil.open_dir(self.dir)
            except (OSError, OciError):
                pass  # add_pid opens it again and says what is wrong

    def close(self) -> None:
        if self._fd >= 0:
            posix.close(self._fd)
            self._fd = -1

    def apply(self, resources: dict, *, device_allow: list[dict] | tuple = ()) -> None:
        from ocirun.cgroups import resources_v2

        resources_v2.apply(self.dir, resources, device_allow)

    def add_pid(self, pid: int) -> None:
        try:
            if self._fd >= 0:
                fsutil.write_at(self._fd, "cgroup.procs", str(pid))
            else:
                with fsutil.CgroupDir(self.dir) as d:
                    fsutil.write_at(d.fd, "cgroup.procs", str(pid))
        except OSError as e:
            raise OciError("cgroup", f"adding pid {pid} to {self.dir}/cgroup.procs: {e.strerror}") from e

    def clone_into_fd(self) -> int | None:
        """The caller owns (and closes) the fd; pass it as clone_args.cgroup with CLONE_INTO_CGROUP."""
        return posix.dup(self._fd) if self._fd >= 0 else fsutil.open_dir(self.dir)

    def pids(self) -> list[int]:
        return sorted(set(fsutil.read_procs(self.dir)))

    def destroy(self) -> None:
        fsutil.rmdir_tree(self.dir)

    # --- freezer ------------------------------------------------------------------------------

    def _events_frozen(self, d: fsutil.CgroupDir) -> bool:
        for line in (d.read_opt("cgroup.events") or "").splitlines():
            if line.startswith("frozen "):
                return line.split()[1] == "1"
        return False

    def freeze(self) -> None:
        """Write cgroup.freeze=1, then wait for cgroup.events to report "frozen 1"."""
        with fsutil.CgroupDir(self.dir) as d:
            d.write("freezer", "cgroup.freeze", "1")
            for _ in range(2000):
                if self._events_frozen(d):
                    return
                time.sleep(0.005)
            d.write("freezer", "cgroup.freeze", "0")
        raise OciError("freezer", f"{self.dir} did not report frozen in cgroup.events")

    def thaw(self) -> None:
        with fsutil.CgroupDir(self.dir) as d:
            d.write("freezer", "cgroup.freeze", "0")

    def is_frozen(self) -> bool:
        """Frozen, or asked to be (cgroup.freeze 1) while a task that joined it (an `exec --ignore-paused`
        child) freezes: cgroup.events says "frozen 0" until then, and a paused container must not read as
        running meanwhile (runc waits for "frozen 1" the same way; after ~1 s the pause asked for stands)."""
        if not fspath.isdir(self.dir):
            return False
        with fsutil.CgroupDir(self.dir) as d:
            for _ in range(200):
                if self._events_frozen(d):
                    return True
                if (d.read_opt("cgroup.freeze") or "0").strip() != "1":
                    return False
                time.sleep(0.005)
            return True

    def kill_all(self, sig: int) -> None:
        """SIGKILL via cgroup.kill (atomic, reaches forks in flight); other signals freeze-signal-thaw."""
        if not self.pids():
            return
        with fsutil.CgroupDir(self.dir) as d:
            if sig == 9 and d.exists("cgroup.kill"):
                d.write("cgroup.kill", "cgroup.kill", "1")
                return
        self._signal_frozen(sig)

    # --- stats --------------------------------------------------------------------------------

    def stats(self) -> dict:
        from ocirun.cgroups import stats_v2

        return stats_v2.collect(self.dir)

    def oom_kill_count(self) -> int:
        with fsutil.CgroupDir(self.dir) as d:
            for line in (d.read_opt("memory.events") or "").splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        return 0


def _enable_controllers(fd: int) -> None:
    """+every available controller not yet in subtree_control; failures are left for apply() to report
    (a populated non-root ancestor cannot delegate domain controllers: the no-internal-process rule)."""
    try:
        avail = fsutil.read_at(fd, "cgroup.controllers").split()
        enabled = set(fsutil.read_at(fd, "cgroup.subtree_control").split())
    except OSError:
        return
    missing = [c for c in avail if c not in enabled]
    if not missing:
        return
    try:
        fsutil.write_at(fd, "cgroup.subtree_control", " ".join("+" + c for c in missing))
    except OSError:
        for c in missing:
            try:
                fsutil.write_at(fd, "cgroup.subtree_control", "+" + c)
            except OSError:
                pass
