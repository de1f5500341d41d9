"""csrc/fs.c's resolve_in_root, called directly (a test-only build, tests/cbuild.py) on hostile trees: every
path the container's init mounts on, creates or enters goes through it, so nothing it returns or creates may
be outside the root, whatever the rootfs's symlinks say."""

import errno
import os

import pytest
from cbuild import csrc_lib


@pytest.fixture(scope="module")
def c():  # noqa: ANN201
    return csrc_lib()


@pytest.fixture
def tree(tmp_path):  # noqa: ANN001, ANN201
    """root/ (the rootfs) and outside/ (a host directory its links aim at), side by side."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for d in (root / "etc", root / "dir" / "sub", outside / "etc"):
        d.mkdir(parents=True)
    (root / "file").write_text("in")
    (outside / "secret").write_text("host")
    return root, outside


class Resolver:
    def __init__(self, c, root) -> None:  # noqa: ANN001
        self.c, self.root = c, str(root)
        self.fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY)

    def __call__(self, path: str | bytes, create: bool = False, want_file: bool = False) -> str | int:
        """Where `path` leads (relative to the root, "." for itself), or the errno."""
        err = self.c.ffi.new("int *")
        before = _open_fds()
        fd = self.c.lib.resolve_in_root(self.fd, path.encode() if isinstance(path, str) else path, int(create),
                                        int(want_file), err)
        if fd < 0:
            assert _open_fds() == before, "an fd leaked from a failed resolution"
            assert err[0] > 0
            return err[0]
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
            assert _open_fds() == before | {fd}, "more than the result stayed open"
        finally:
            os.close(fd)
        assert where == self.root or where.startswith(self.root + "/"), f"{path!r} escaped to {where}"
        return os.path.relpath(where, self.root)


def _open_fds() -> set[int]:
    fds = set()
    for n in os.listdir("/proc/self/fd"):
        try:
            os.readlink(f"/proc/self/fd/{n}")
        except FileNotFoundError:  # the listing's own fd, closed by now
            continue
        fds.add(int(n))
    return fds


@pytest.fixture
def resolve(c, tree):  # noqa: ANN001, ANN201
    r = Resolver(c, tree[0])
    yield r
    os.close(r.fd)


def _walk(top) -> set[str]:  # noqa: ANN001
    return {os.path.relpath(os.path.join(d, n), top) for d, ds, fs in os.walk(top) for n in ds + fs}


def test_plain_paths(resolve) -> None:  # noqa: ANN001
    assert resolve("etc") == "etc" and resolve("/dir/sub") == "dir/sub" and resolve("dir/./sub/") == "dir/sub"
    assert resolve("") == resolve("/") == resolve("///") == resolve(".") == "."
    assert resolve("file") == "file"
    assert resolve("missing") == errno.ENOENT and resolve("dir/missing/deeper") == errno.ENOENT


@pytest.mark.parametrize("create", [False, True])
def test_dotdot_never_climbs_above_the_root(resolve, create: bool) -> None:  # noqa: ANN001
    assert resolve("../../../../etc", create) == "etc"
    assert resolve("dir/../../../dir/sub/../..", create) == "."


@pytest.mark.parametrize("create", [False, True])
def test_symlinks_to_the_host_resolve_inside(resolve, tree, create: bool) -> None:  # noqa: ANN001
    root, outside = tree
    os.symlink("/", root / "slash")
    os.symlink(str(outside), root / "abs")  # the host directory's real path
    os.symlink("../../../../../../.." + str(outside), root / "rel")
    os.symlink(str(outside / "secret"), root / "secretlink")
    assert resolve("slash", create) == "." and resolve("slash/etc", create) == "etc"
    assert resolve("slash/../../file", create) == "file"
    for link in ("abs", "rel"):
        got = resolve(f"{link}/etc", create)
        if create:  # made inside the root, along the link's path
            assert got == os.path.relpath(str(outside), "/") + "/etc"
        else:
            assert got == errno.ENOENT
    assert resolve("secretlink", create, want_file=True) == (os.path.relpath(str(outside / "secret"), "/")
                                                             if create else errno.ENOENT)
    assert (outside / "secret").read_text() == "host" and sorted(os.listdir(outside)) == ["etc", "secret"]


def test_create_makes_directories_only_inside_the_root(resolve, tree) -> None:  # noqa: ANN001
    root, outside = tree
    os.symlink(str(outside), root / "abs")
    os.symlink("/new/place", root / "dangling")
    before_outside = _walk(outside)
    assert resolve("a/b/c", create=True) == "a/b/c" and (root / "a/b/c").is_dir()
    assert resolve("abs/x/y", create=True) == os.path.relpath(str(outside), "/") + "/x/y"
    assert resolve("dangling/z", create=True) == "new/place/z" and (root / "new/place/z").is_dir()
    assert resolve("dir/f", create=True, want_file=True) == "dir/f" and (root / "dir/f").is_file()
    assert resolve("dangling2", create=False) == errno.ENOENT
    assert _walk(outside) == before_outside


def test_create_through_a_dangling_link_to_a_file(resolve, tree) -> None:  # noqa: ANN001
    """A bind of a file onto a dangling symlink: the file is made where the link points, inside the root."""
    root, _ = tree
    os.symlink("/etc/made", root / "etc-link")
    assert resolve("etc-link", create=True, want_file=True) == "etc/made" and (root / "etc/made").is_file()


@pytest.mark.parametrize("create", [False, True])
def test_symlink_loops_fail(resolve, tree, create: bool) -> None:  # noqa: ANN001
    root, _ = tree
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    os.symlink("self", root / "self")
    os.symlink("grow/x", root / "grow")  # each step makes the path longer
    for path in ("a", "a/x", "self/x", "grow", "grow/y"):
        assert resolve(path, create) == errno.ELOOP, path


@pytest.mark.parametrize("create", [False, True])
def test_a_chain_of_40_links_resolves_41_do_not(resolve, tree, create: bool) -> None:  # noqa: ANN001
    """Linux's limit (MAXSYMLINKS), the same with or without create."""
    root, _ = tree
    for i in range(41):
        os.symlink(f"l{i + 1}" if i < 40 else "dir", root / f"l{i}")
    assert resolve("l1/sub/new" if create else "l1/sub", create) == ("dir/sub/new" if create else "dir/sub")
    assert resolve("l0/sub/new" if create else "l0/sub", create) == errno.ELOOP


@pytest.mark.parametrize("create", [False, True])
def test_files_are_not_directories(resolve, tree, create: bool) -> None:  # noqa: ANN001
    root, _ = tree
    os.symlink("file", root / "filelink")
    assert resolve("file/x", create) == errno.ENOTDIR
    assert resolve("filelink/x", create) == errno.ENOTDIR
    assert resolve("file/x/y", create, want_file=True) == errno.ENOTDIR
    assert not (root / "x").exists()


def test_existing_kinds_are_returned_as_they_are(resolve, tree) -> None:  # noqa: ANN001
    """The caller checks the kind (a bind of a file onto a directory fails in mount(2)), nothing is replaced."""
    root, _ = tree
    assert resolve("dir", create=True, want_file=True) == "dir" and (root / "dir").is_dir()
    assert resolve("file", create=True) == "file" and (root / "file").read_text() == "in"


@pytest.mark.parametrize("create", [False, True])
def test_long_names(resolve, tree, create: bool) -> None:  # noqa: ANN001
    root, _ = tree
    assert resolve("dir/" + "n" * 255, create) == ("dir/" + "n" * 255 if create else errno.ENOENT)
    assert resolve("dir/" + "n" * 256, create) == errno.ENAMETOOLONG
    assert resolve("dir/" + "a/" * 3000, create) == errno.ENAMETOOLONG  # 6000 bytes: past PATH_MAX
    assert resolve("/" * 5000 + "etc", create) == "etc"  # (leading slashes name the root, however many)
    assert not (root / "dir" / "a").exists()


def test_deep_paths(resolve, tree) -> None:  # noqa: ANN001
    """Deeper than the walker keeps directories open for (256): refused, not overflowed."""
    root, _ = tree
    assert resolve("deep/" + "d/" * 200, create=True) == "deep/" + "/".join(["d"] * 200)
    assert resolve("deeper/" + "d/" * 300, create=True) == errno.ENAMETOOLONG


def test_nul_free_bytes_names(resolve, tree) -> None:  # noqa: ANN001
    """Names are bytes: anything but "/" and NUL, including newlines and non-UTF-8."""
    root, _ = tree
    name = b"we\nird \xff name"
    got = resolve(b"dir/" + name + b"/x", create=True)
    assert os.path.isdir(os.path.join(bytes(root), b"dir", name, b"x")), got


def _in_private_mount_ns(fn) -> object:  # noqa: ANN001
    """fn() in a forked child in its own mount namespace (mounts there never reach the host); its result."""
    import ctypes
    import pickle

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(0x00020000) != 0 or libc.mount(b"none", b"/", None, 1 << 19 | 1 << 14, None) != 0:
                raise OSError(ctypes.get_errno(), "unshare/mount")
            out = ("ok", fn())
        except BaseException as e:  # noqa: BLE001 (reported to the parent)
            out = ("error", repr(e))
        os.write(w, pickle.dumps(out))
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    assert kind == "ok", value
    return value


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a procfs in the tree (needs root)")
def test_proc_magic_links_are_never_followed(c, tree) -> None:  # noqa: ANN001
    """A procfs mounted in the rootfs (the init mounts /proc before binds under it) offers links to the host:
    /proc/self/root, cwd, fd/N. None is followed, and create makes nothing through them."""
    root, outside = tree
    (root / "proc").mkdir()
    held = os.open(str(outside), os.O_PATH)  # a host directory fd, as a leaked one would be

    def probe() -> dict:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"proc", str(root / "proc").encode(), b"proc", 0, None) != 0:
            raise OSError(ctypes.get_errno(), "mount proc")
        r = Resolver(c, root)
        return {(p, create): r(p, create) for p in ("proc/self/root", "proc/self/root/etc", "proc/self/cwd/x",
                                                    f"proc/self/fd/{held}", f"proc/self/fd/{held}/made",
                                                    "proc/1/root/tmp")
                for create in (False, True)} | {"status": r("proc/self/status")}

    try:
        got = _in_private_mount_ns(probe)
    finally:
        os.close(held)
    status = got.pop("status")
    # (pid 1's links are refused by the ptrace check first: EACCES)
    escaping = {p: v for p, v in got.items() if v not in (errno.ELOOP, errno.EACCES)}
    assert not escaping, escaping
    assert status.startswith("proc/") and status.endswith("/status")  # the procfs itself is usable
    assert sorted(os.listdir(outside)) == ["etc", "secret"]
