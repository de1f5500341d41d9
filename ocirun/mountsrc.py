"""Bind-mount sources the runtime opens for the container's init before the clone (plan.MountSource).

In a user namespace the init may not reach a source (a parent directory only the host's root may search), and
an id-mapped mount needs privileges over the source's filesystem the init never has. So the runtime, still in
its own namespaces, makes a detached copy of each such source (open_tree(OPEN_TREE_CLONE), recursive for
rbind), id-maps it when asked (mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace carrying the mount's
mapping), and puts the fd in the MOUNT step; the init attaches it with move_mount. runc does the same through
procMountPlease, crun through send_mounts. Imported only when a plan has such sources.
"""

import posix

from ocirun.errors import OciError
from ocirun.plan import Plan


def open_sources(plan: Plan) -> list[int]:
    """Make every source's fd and write it into its step; returns the fds (the caller closes them once the
    child has them). Nothing stays open when one fails."""
    from ocirun._native import lib

    fds: list[int] = []
    userns: dict[tuple[str, str] | str, int] = {}  # one mapping namespace per distinct mapping, as runc
    try:
        for ms in plan.mount_sources:
            label = ms.step.label
            fd = lib.ocirun_open_tree(ms.path.encode(), int(ms.recursive))
            if fd < 0:
                raise OciError(f"{label}.source", f"{ms.path}: open_tree: {posix.strerror(-fd).lower()}")
            fds.append(fd)
            if ms.idmap is not None:
                ns = userns.get(ms.idmap)
                if ns is None:
                    ns = userns[ms.idmap] = _userns(ms.idmap, label)
                r = lib.ocirun_idmap_mount(fd, ns, int(ms.idmap_recursive))
                if r < 0:
                    hint = " (the filesystem may not support id-mapped mounts)" if r == -22 else ""
                    raise OciError(label, f"id-mapping {ms.path}: {posix.strerror(-r).lower()}{hint}")
            args = list(ms.step.args)
            args[9] = fd
            ms.step.args = tuple(args)
    except BaseException:
        for fd in fds:
            posix.close(fd)
        raise
    finally:
        for ns in userns.values():
            posix.close(ns)  # an id-mapped mount keeps its own reference
    return fds


def _userns(idmap: tuple[str, str] | str, label: str) -> int:
    """A user namespace carrying the mapping: the one at a path (a joined container user namespace), or a
    new one whose uid_map/gid_map we write."""
    from ocirun._native import lib

    if isinstance(idmap, str):
        try:
            return posix.open(idmap, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as e:
            raise OciError(label, f"user namespace {idmap}: {e.strerror.lower()}") from None
    fd = lib.ocirun_userns_fd(idmap[0].encode(), idmap[1].encode())
    if fd < 0:
        raise OciError(f"{label}.uidMappings", f"a user namespace for the id mapping: {posix.strerror(-fd).lower()}")
    return fd
