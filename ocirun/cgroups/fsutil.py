"""Safe cgroupfs file access: everything goes through a directory fd that is verified to be on cgroupfs.

Files are opened by plain name relative to that fd with O_NOFOLLOW, and directories are walked one
component at a time, so neither a symlink nor a ".." can lead a write outside the cgroup tree.
"""

import errno
import posix
import time

import ocirun
from ocirun import fspath
from ocirun.errors import OciError

CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994

_DIR_FLAGS = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC | posix.O_NOFOLLOW


def _check_name(name: str) -> None:
    """Refuse anything but a single path component (no "/", no "..")."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise OciError(repr(name), "not a valid cgroup file or directory name")


def split_inner(inner: str) -> list[str]:
    """Split a cleaned absolute cgroup path into components, refusing "..": callers clean first."""
    parts = [p for p in inner.split("/") if p and p != "."]
    for p in parts:
        _check_name(p)
    return parts


def fs_magic(path: str) -> int:
    """statfs(2) f_type of `path`: from the native helper, else the fs type column of mountinfo."""
    try:
        from ocirun import _native  # lazy: the .so may be unbuilt

        value = _native.lib.ocirun_cg_statfs_magic(fspath.fsencode(path))
        if value < 0:
            raise OSError(-value, posix.strerror(-value), path)
        return int(value)
    except ImportError:
        return _magic_from_mountinfo(path)


def _magic_from_mountinfo(path: str) -> int:
    """Fallback when _native is missing: the filesystem type of the mount that contains `path`."""
    import os  # only here, for realpath (see ocirun.fspath for why the runtime avoids os)

    from ocirun.cgroups import paths

    real = os.path.realpath(path)
    best, fstype = "", ""
    for mnt, _root, fs, _opts in paths.mounts():
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, fs
    return {"cgroup": CGROUP_SUPER_MAGIC, "cgroup2": CGROUP2_SUPER_MAGIC, "tmpfs": TMPFS_MAGIC}.get(fstype, 0)


def open_dir(path: str) -> int:
    """Open an existing cgroup directory; the fd is checked to be on cgroupfs (v1 or v2)."""
    return _checked(posix.open(path, _DIR_FLAGS), path)


def _checked(fd: int, path: str) -> int:
    """`fd` if it is a directory on cgroupfs (v1 or v2); else it is closed and OciError raised."""
    try:
        from ocirun import _native

        magic = _native.lib.ocirun_cg_fstatfs_magic(fd)
    except ImportError:
        magic = _magic_from_mountinfo(path)
    if magic not in (CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC):
        posix.close(fd)
        raise OciError(path, "not a cgroup filesystem directory")
    return fd


def mkdir_p(root: str, parts: list[str], *, on_new: object = None, before_level: object = None) -> list[str]:
    """mkdir_open, closing the leaf: the paths this call created."""
    created, fd = mkdir_open(root, parts, on_new=on_new, before_level=before_level)
    posix.close(fd)
    return created


def mkdir_open(root: str, parts: list[str], *, on_new: object = None,
               before_level: object = None) -> tuple[list[str], int]:
    """Create root/parts... one level at a time with mkdirat; return the paths this call created and an open
    fd of the leaf, checked to be on cgroupfs like the root (nothing mounted over it), so later writes need
    no second walk.

    `before_level(parent_fd)` runs before each level (v2 enables controllers in subtree_control);
    `on_new(parent_fd, child_fd, child_path)` runs for each newly made level (v1 cpuset copies cpus/mems).
    On failure the levels this call made are removed again, so a failed create leaves nothing behind.
    """
    created: list[str] = []
    fd = open_dir(root)
    path = root
    try:
        for name in parts:
            _check_name(name)
            if before_level is not None:
                before_level(fd)  # type: ignore[operator]
            path = f"{path}/{name}"
            try:
                posix.mkdir(name, 0o755, dir_fd=fd)
                created.append(path)
                new = True
            except FileExistsError:
                new = False
            child = posix.open(name, _DIR_FLAGS, dir_fd=fd)
            if new and on_new is not None:
                try:
                    on_new(fd, child, path)  # type: ignore[operator]
                except BaseException:
                    posix.close(child)
                    raise
            posix.close(fd)
            fd = child
        if parts:
            leaf, fd = fd, -1
            fd = _checked(leaf, path)  # (which closes it when it is not cgroupfs)
    except BaseException:
        if fd >= 0:
            posix.close(fd)
        remove_created(created)
        raise
    return created, fd


def remove_created(paths: list[str]) -> None:
    """Undo a partial create: rmdir what it made, deepest first (best effort: the first error is the news)."""
    for p in reversed(paths):
        try:
            posix.rmdir(p)
        except OSError:
            pass


def write_at(dirfd: int, name: str, value: str) -> None:
    """One write(2) of `value` to a cgroup file; raises OSError as the kernel reports it."""
    _check_name(name)
    fd = posix.open(name, posix.O_WRONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW, dir_fd=dirfd)
    try:
        posix.write(fd, value.encode())
    finally:
        posix.close(fd)


def read_at(dirfd: int, name: str) -> str:
    """Whole content of a cgroup file (they are small, a 64 KiB read loop is plenty)."""
    _check_name(name)
    fd = posix.open(name, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW, dir_fd=dirfd)
    try:
        chunks = []
        while True:
            b = posix.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode()
    finally:
        posix.close(fd)


def exists_at(dirfd: int, name: str) -> bool:
    """Whether a cgroup file exists (controllers and kernel versions differ in what they offer)."""
    _check_name(name)
    try:
        posix.stat(name, dir_fd=dirfd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


class CgroupDir:
    """An open cgroup directory; write() turns kernel refusals into OciError naming resource and file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = open_dir(path)

    def close(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "CgroupDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, what: str, name: str, value: str) -> None:
        """Write `value`; on failure raise OciError(what, "writing <name>: <strerror>")."""
        err = self.try_write(name, value)
        if err:
            raise OciError(what, f"writing {name}: {posix.strerror(err)}")

    def try_write(self, name: str, value: str) -> int:
        """Write and return 0 or the errno, for callers that retry in another order (runc does)."""
        tr = ocirun.TRACER
        t = tr and tr.now()
        try:
            write_at(self.fd, name, value)
            err = 0
        except OSError as e:
            err = e.errno or errno.EIO
        if tr:
            why = f" ({posix.strerror(err)})" if err else ""
            tr.step("cgroup.write", t, f"{self.path}/{name} <- {value!r}{why}")
        return err

    def read(self, name: str) -> str:
        return read_at(self.fd, name)

    def read_opt(self, name: str) -> str | None:
        """Content, or None when the kernel does not offer the file."""
        try:
            return read_at(self.fd, name)
        except (FileNotFoundError, OSError) as e:
            if isinstance(e, FileNotFoundError) or e.errno in (errno.ENODEV, errno.EOPNOTSUPP):
                return None
            raise

    def exists(self, name: str) -> bool:
        return exists_at(self.fd, name)


def read_procs(path: str) -> list[int]:
    """All pids in `path` and its descendants (cgroup.procs is per-directory)."""
    out: list[int] = []
    for d in _walk_dirs(path, topdown=True):
        try:
            with open(d + "/cgroup.procs") as f:
                out.extend(int(x) for x in f.read().split())
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue
    return out


def _walk_dirs(path: str, *, topdown: bool) -> list[str]:
    """`path` and every directory below it, never through a symlink; unreadable directories are skipped."""
    try:
        with posix.scandir(path) as it:
            subdirs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        subdirs = []
    below = [d for s in subdirs for d in _walk_dirs(s, topdown=topdown)]
    return [path, *below] if topdown else [*below, path]


def rmdir_tree(path: str, *, retries: int = 50, delay: float = 0.02) -> None:
    """Remove a cgroup and its child cgroups depth first; retry EBUSY while exiting tasks drain."""
    try:
        posix.rmdir(path)  # the usual case, a leaf with no tasks left: one syscall, no directory walk
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    if not fspath.isdir(path) or fspath.islink(path):
        return
    for d in _walk_dirs(path, topdown=False):
        _rmdir_retry(d, retries, delay)


def _rmdir_retry(path: str, retries: int, delay: float) -> None:
    for attempt in range(retries):
        try:
            posix.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == retries - 1:
                raise OciError(path, f"removing cgroup: {posix.strerror(e.errno or errno.EIO)}") from e
            time.sleep(delay)
