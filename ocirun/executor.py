"""Parent side of the C helper: spawn the child with a plan and speak the sync protocol with it."""

import posix

import ocirun
from ocirun import fspath
from ocirun.errors import OciError
from ocirun.plan import Plan

MSG_SYNC, MSG_ERROR, MSG_PID, MSG_READY, MSG_FD, MSG_MOUNT = 1, 2, 3, 4, 5, 6
MSG_GO, MSG_ABORT = 100, 101
_HDR_SIZE = 12  # struct { uint32 type; int32 value; uint32 len } (little-endian), then len bytes


class Child:
    """A child carrying out a plan. Its pid changes once if it forks into a pid namespace (MSG_PID)."""

    __slots__ = ("pid", "fd", "_native", "_ffi", "reaped")

    def __init__(self, pid: int, fd: int, native, ffi) -> None:  # noqa: ANN001
        self.pid = pid
        self.fd = fd
        self._native = native
        self._ffi = ffi
        self.reaped = False

    def recv(self) -> tuple[int, int, bytes]:
        """The next message: (type, value, payload); (0, 0, b"") when the child closed its end."""
        try:
            m = posix.read(self.fd, 65536)
        except ConnectionResetError:
            m = b""
        if not m:
            return 0, 0, b""
        t = int.from_bytes(m[0:4], "little")
        v = int.from_bytes(m[4:8], "little", signed=True)
        n = int.from_bytes(m[8:12], "little")
        return t, v, m[_HDR_SIZE : _HDR_SIZE + n]

    def take_fd(self, num: int) -> int:
        """A copy of the child's fd `num` (the seccomp listener: MSG_FD carries its number), then the go it
        waits for. pidfd_getfd, not SCM_RIGHTS: the child may not sendmsg once its filter is loaded."""
        r = self._native.ocirun_pidfd_getfd(self.pid, num)
        if r < 0:
            raise OciError("seccomp listener", f"taking the notify fd from the init: {posix.strerror(-r).lower()}")
        self.go()
        return r

    def go(self, payload: bytes = b"") -> None:
        posix.write(self.fd, MSG_GO.to_bytes(4, "little") + bytes(4) + len(payload).to_bytes(4, "little"))
        if payload:
            posix.write(self.fd, payload)

    def close(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def follow(self, pid: int) -> None:
        """The child forked into its pid namespace and exits: reap it, carry on with `pid`."""
        try:
            posix.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = pid

    def kill(self) -> None:
        """Kill and reap a child that will not become a container (failed create or exec)."""
        if not self.reaped:  # (a reaped pid may already be someone else's)
            _kill_reap(self.pid)
            self.reaped = True
            if self.fd >= 0:
                # It may have forked into its pid namespace, the report still unread: that one too.
                posix.set_blocking(self.fd, False)
                while (m := self._pending()) is not None:
                    if m[0] == MSG_PID:
                        _kill_reap(m[1])
        self.close()

    def _pending(self) -> tuple[int, int, bytes] | None:
        try:
            m = self.recv()
        except BlockingIOError:
            return None
        return m if m[0] else None

    def died(self) -> str:
        """Why the child went away without a message."""
        try:
            pid, st = posix.waitpid(self.pid, 0)
            self.reaped = True
        except ChildProcessError:
            return "exited"
        if posix.WIFSIGNALED(st):
            return f"killed by signal {posix.WTERMSIG(st)}"
        return f"exited with status {posix.WEXITSTATUS(st)}"


def _kill_reap(pid: int) -> None:
    try:
        posix.kill(pid, 9)
    except ProcessLookupError:
        pass
    try:
        posix.waitpid(pid, 0)
    except ChildProcessError:
        pass


FORWARDED = (1, 2, 3, 10, 12, 14, 15, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30)


def wait_status(pid: int) -> int:
    """Wait for our child; its exit status as a shell reports it (128 + signal when killed).

    Here rather than in run.py: exec waits too, and importing run would pull in create and lifecycle."""
    tr = ocirun.TRACER
    t = tr and tr.now()
    status = _wait_status(pid)
    if tr:
        tr.step("wait", t, f"pid {pid} exited: status {status}")
    return status


def _wait_status(pid: int) -> int:
    while True:
        try:
            _, st = posix.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        if posix.WIFEXITED(st):
            return posix.WEXITSTATUS(st)
        if posix.WIFSIGNALED(st):
            return 128 + posix.WTERMSIG(st)


def forward_signals(pid: int) -> None:
    import _signal

    def handler(sig: int, frame: object) -> None:
        try:
            posix.kill(pid, sig)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        try:
            _signal.signal(s, handler)
        except (OSError, ValueError):
            pass


INIT_NAME = "ocirun-init"  # the static init program next to the C helper (ocirun/_build_c.py)


def seal_init(lib, ffi) -> None:  # noqa: ANN001
    """Load ocirun-init into the sealed memfd every child is executed from (once per process: the C side
    keeps it, later calls cost one cffi call), or where executable memfds are refused into a read-only file
    of a private tmpfs."""
    from ocirun import _native

    path = fspath.join(fspath.dirname(_native.__file__), INIT_NAME)
    fallback = ffi.new("int *")
    r = lib.ocirun_seal_init(path.encode(), fallback)
    if r >= 0:
        return
    if fallback[0]:
        raise OciError("container init", "the kernel refuses an executable memfd (vm.memfd_noexec=2) and a "
                       f"read-only copy in a private tmpfs failed: {posix.strerror(fallback[0]).lower()}")
    why = posix.strerror(-r).lower()
    raise OciError("container init", f"{path}: {why}" + (" (build it: python3 -m ocirun._build_c)" if -r == 2 else ""))


def spawn(plan: Plan, *, cgroup_fd: int = -1, who: str = "init") -> Child:
    """Clone the child that carries out `plan` (`who` names it in --trace output)."""
    from ocirun._native import ffi, lib

    seal_init(lib, ffi)
    tr = ocirun.TRACER
    if tr:
        tr.attach(plan, who)
        t0 = tr.now()
    buf = plan.encode()
    out = ffi.new("int *")
    try:
        pid = lib.ocirun_spawn(buf, len(buf), plan.clone_flags, cgroup_fd, out)
    finally:
        if tr:
            tr.spawned()
    if tr:
        from ocirun.plan import _ns_names

        extra = " CLONE_INTO_CGROUP" if cgroup_fd >= 0 else ""
        tr.step("clone", t0, f"pid {pid} flags={_ns_names(plan.clone_flags) or 'none'}{extra}")
    if pid < 0:
        raise OciError("clone", posix.strerror(-pid).lower())
    return Child(pid, out[0], lib, ffi)


def check(plan: Plan) -> None:
    """Parse the encoded plan with the C parser (used by --dry-run and tests)."""
    from ocirun._native import ffi, lib

    buf = plan.encode()
    bad = ffi.new("int *")
    if lib.ocirun_check_plan(buf, len(buf), bad) < 0:
        raise OciError("plan", f"malformed at step {bad[0]}")
