"""Bind-mount sources the runtime opens for the container's init, which cannot open them itself.

- An id-mapped bind needs privileges over the source's filesystem the init never has: before the clone the
  runtime makes a detached copy of the source (open_tree(OPEN_TREE_CLONE), recursive for rbind), maps it
  (mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace carrying the mount's mapping) and puts the fd in the
  MOUNT step (plan.MountSource); the init attaches it with move_mount. As runc 1.2 and crun.
- In a user namespace the init may not reach a source at all (a parent only the host's root may search).
  When its own bind is refused it asks (MSG_MOUNT, the mount's label) and the runtime opens the source inside
  the init's mount namespace (through /proc/PID/root) and sends the fd back: the init binds from it, so the
  host mount's flags stay locked, as runc's procMountPlease.

Imported only when a plan has id-mapped mounts or an init asks.
"""

import posix

from ocirun.errors import OciError
from ocirun.plan import Plan


def open_sources(plan: Plan) -> list[int]:
    """Make every id-mapped source's fd and write it into its step; returns the fds (the caller closes them
    once the child has them). Nothing stays open when one fails."""
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


def send_source(child, cfg, label: str) -> None:  # noqa: ANN001
    """Answer the init's MSG_MOUNT for the bind mount `label` ("mounts[N]"): its source, opened with our
    privileges inside the init's mount namespace, as an fd with the go."""
    from ocirun import executor, fspath
    from ocirun._native import lib

    m = None
    if label.startswith("mounts[") and label.endswith("]") and label[7:-1].isdigit():
        i = int(label[7:-1])
        m = cfg.mounts[i] if i < len(cfg.mounts) else None
    if m is None or not (m.type == "bind" or "bind" in m.options or "rbind" in m.options):
        raise OciError("container init", f"asked for the source of {label!r}, which is no bind mount")
    src = m.source if m.source.startswith("/") else fspath.join(cfg.bundle, m.source)
    try:
        root = posix.open(f"/proc/{child.pid}/root", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as e:
        raise OciError(f"{label}.source", f"{src}: the init's root: {e.strerror.lower()}") from None
    try:
        fd = lib.ocirun_open_in_root(root, src.encode())
    finally:
        posix.close(root)
    if fd < 0:
        raise OciError(f"{label}.source", f"{src}: {posix.strerror(-fd).lower()}")
    try:
        go = executor.MSG_GO.to_bytes(4, "little") + bytes(8)
        r = lib.ocirun_send_fd(child.fd, fd, go, len(go))
        if r < 0:
            raise OciError(f"{label}.source", f"sending it to the init: {posix.strerror(-r).lower()}")
    finally:
        posix.close(fd)
