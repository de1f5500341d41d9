"""cgroup v1/v2 managers behind one interface.

Import is cheap on purpose (create/start/delete hot path): the v1/v2 modules, resource writers, the
stats readers and the native BPF helper are imported only when a manager needs them.
"""

import posix

import ocirun
from ocirun import fspath
from ocirun.cgroups.base import Manager
from ocirun.errors import OciError

__all__ = ["Manager", "detect_mode", "from_state", "open_manager", "prewarm_attach", "prewarm_wait"]

CGROUP_ROOT = "/sys/fs/cgroup"
_prewarm: list = []  # [lock released when the warm-up thread's write returned, or the launcher child's pid]


def prewarm_attach() -> None:
    """Start, in a thread, the RCU grace period that the first cgroup attach after idle waits for.

    Moving a task between cgroups takes the global cgroup_threadgroup_rwsem for writing; when no writer
    held it for a grace period, that down_write waits one out (8-16 ms; every runtime pays it). Writing "0"
    (ourselves) to the cgroup.procs of the cgroup we are already in takes the lock and migrates nothing, so
    done in a thread it starts that wait while we parse config.json and clone, and the container's real
    attach right after finds the lock warm. Best effort: if our own cgroup's directory is not certain (a
    mount whose root is not the hierarchy's), nothing is written.
    """
    if _prewarm:
        return
    if ocirun.WARM_PID > 0:  # the C launcher forked a child that did just this before Python started
        _prewarm.append(ocirun.WARM_PID)
        return
    if fspath.exists(CGROUP_ROOT + "/cgroup.procs"):  # pure v2: clone3 joins the cgroup directly
        return
    import _thread

    done = _thread.allocate_lock()
    done.acquire()
    _prewarm.append(done)
    try:
        _thread.start_new_thread(_warm, (done,))
    except RuntimeError:
        done.release()


def _warm(done: object) -> None:
    try:
        from ocirun.cgroups import paths

        tr = ocirun.TRACER
        t = tr and tr.now()
        v1, v2, v2root = paths.cgroup_mounts()
        own = paths.own_cgroups()
        target = ""
        if v2 is not None and v2root == "/" and "" in own:
            target = (v2.rstrip("/") + own[""]).rstrip("/")
        else:
            for ctrl, (mnt, root) in v1.items():
                if root == "/" and ctrl in own:
                    target = (mnt.rstrip("/") + own[ctrl]).rstrip("/")
                    break
        if target:
            fd = posix.open(target + "/cgroup.procs", posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, b"0")
            finally:
                posix.close(fd)
            if tr:
                tr.step("cgroup.prewarm", t, f"{target}/cgroup.procs <- 0 (where we are): the attach lock, early")
    except (OSError, ValueError, IndexError):
        pass
    finally:
        done.release()  # type: ignore[attr-defined]


def prewarm_wait() -> None:
    """Wait for the warm-up write: clone (a raw syscall, no atfork handlers) must not copy a busy thread;
    the launcher's warm-up child is reaped here (its write returns when the grace period is over)."""
    if not _prewarm:
        return
    w = _prewarm[0]
    if not isinstance(w, int):
        w.acquire()
        w.release()
        return
    if w <= 0:
        return
    _prewarm[0] = 0
    tr = ocirun.TRACER
    t = tr and tr.now()
    try:
        posix.kill(w, 9)  # it keeps the lock warm until now; a write in progress (a grace period) ends first
        posix.waitpid(w, 0)
    except (ChildProcessError, ProcessLookupError):
        return
    if tr:
        tr.step("cgroup.prewarm", t, f"stopped the launcher's warm-up child {w} (the attach lock, early)")


def detect_mode() -> str:
    """"v2": /sys/fs/cgroup is cgroup2; "hybrid": v1 plus cgroup2 at .../unified; else "v1"."""
    from ocirun.cgroups import fsutil

    try:
        magic = fsutil.fs_magic(CGROUP_ROOT)
    except OSError as e:
        raise OciError(CGROUP_ROOT, f"cannot statfs: {e.strerror}") from e
    if magic == fsutil.CGROUP2_SUPER_MAGIC:
        return "v2"
    try:
        if fsutil.fs_magic(CGROUP_ROOT + "/unified") == fsutil.CGROUP2_SUPER_MAGIC:
            return "hybrid"
    except OSError:
        pass
    return "v1"


def open_manager(cgroups_path: str | None, container_id: str, *, systemd: bool = False,
                 annotations: dict | None = None) -> Manager:
    """A manager for `cgroups_path` (see paths.py for the runc rules); nothing is created yet.
    `annotations` (the config's) give the systemd driver its org.systemd.property.* unit properties."""
    from ocirun.cgroups import paths

    paths.check_systemd(cgroups_path, systemd)
    mode = detect_mode()
    if systemd:
        from ocirun.cgroups.systemd import SystemdManager, default_user

        return SystemdManager.open(cgroups_path, container_id, mode, user=default_user(), annotations=annotations)
    inner = paths.resolve_inner(cgroups_path, container_id)
    if mode == "v2":
        from ocirun.cgroups.v2 import V2Manager

        _v1, v2mnt, v2root = paths.cgroup_mounts()
        mnt = v2mnt or CGROUP_ROOT
        return V2Manager(paths.v2_dir(inner, mnt, v2root, paths.own_cgroups_for(inner)), root=mnt)
    from ocirun.cgroups.v1 import V1Manager

    return V1Manager.for_path(inner, hybrid=(mode == "hybrid"))


def from_state(data: dict) -> Manager:
    """Rebuild the manager that to_state() described."""
    if data.get("driver") == "systemd":
        from ocirun.cgroups.systemd import SystemdManager

        return SystemdManager.from_state(data)
    mode = data.get("mode")
    if mode == "v2":
        from ocirun.cgroups.v2 import V2Manager

        return V2Manager.from_state(data)
    if mode in ("v1", "hybrid"):
        from ocirun.cgroups.v1 import V1Manager

        return V1Manager.from_state(data)
    if mode == "disabled":
        from ocirun.cgroups.null import NullManager

        return NullManager()
    raise OciError("state.json cgroup", f"unknown cgroup mode {mode!r}")

