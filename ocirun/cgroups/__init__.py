"""cgroup v1/v2 managers behind one interface.

Import is cheap on purpose (create/start/delete hot path): the v1/v2 modules, resource writers, the
stats readers and the native BPF helper are imported only when a manager needs them.
"""

from __future__ import annotations

from ocirun.cgroups.base import Manager
from ocirun.errors import OciError

__all__ = ["Manager", "detect_mode", "from_state", "open_manager"]

CGROUP_ROOT = "/sys/fs/cgroup"


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


def open_manager(cgroups_path: str | None, container_id: str, *, systemd: bool = False) -> Manager:
    """A manager for `cgroups_path` (see paths.py for the runc rules); nothing is created yet."""
    from ocirun.cgroups import paths

    paths.check_systemd(cgroups_path, systemd)
    inner = paths.resolve_inner(cgroups_path, container_id)
    mode = detect_mode()
    if mode == "v2":
        from ocirun.cgroups.v2 import V2Manager

        _v1, v2mnt, v2root = paths.cgroup_mounts()
        mnt = v2mnt or CGROUP_ROOT
        return V2Manager(paths.v2_dir(inner, mnt, v2root, paths.own_cgroups()), root=mnt)
    from ocirun.cgroups.v1 import V1Manager

    return V1Manager.for_path(inner, hybrid=(mode == "hybrid"))


def from_state(data: dict) -> Manager:
    """Rebuild the manager that to_state() described."""
    mode = data.get("mode")
    if mode == "v2":
        from ocirun.cgroups.v2 import V2Manager

        return V2Manager.from_state(data)
    if mode in ("v1", "hybrid"):
        from ocirun.cgroups.v1 import V1Manager

        return V1Manager.from_state(data)
    raise OciError("state.json cgroup", f"unknown cgroup mode {mode!r}")

