"""NOTIFY_SOCKET: systemd's readiness protocol (sd_notify) through the runtime, as runc's notify_socket.go.

When the runtime runs with NOTIFY_SOCKET set (a systemd service, podman --sdnotify=container), `create` binds
the container's state directory's sdnotify/ on /run/notify in the container (read-only) and gives the process
NOTIFY_SOCKET=/run/notify/notify.sock. `start` (and `run`) binds a datagram socket there before it starts the
process, then relays what the container sends to the host's NOTIFY_SOCKET until READY=: the state lines as
they come, then READY with MAINPID (the container's init for `start` and `run -d`, the runtime for `run` in
the foreground, which the service manager then watches) and a BARRIER=1, whose acknowledgement it waits for
(30 s at most, as runc). `start` returns once the container is ready, or has exited without saying so.

Imported only when NOTIFY_SOCKET is set: without it create and start cost one environment lookup more.
"""

import posix
import sys

from ocirun import fspath
from ocirun.config import Config, Mount
from ocirun.errors import OciError

DIR = "sdnotify"  # in the state dir, whose notify.sock is the start handshake's
SOCK = "notify.sock"
CONTAINER_DIR = "/run/notify"
CONTAINER_SOCKET = f"{CONTAINER_DIR}/{SOCK}"
BARRIER_TIMEOUT_MS = 30_000


def host_socket() -> str:
    return fspath.getenv("NOTIFY_SOCKET")


def setup(cfg: Config, d: str) -> None:
    """For create: the socket's directory, its bind mount and the process's NOTIFY_SOCKET (the config's own
    value, if any, is replaced: it could not reach anything outside)."""
    src = fspath.join(d, DIR)
    try:
        posix.mkdir(src, 0o755)
    except OSError as e:
        raise OciError(f"NOTIFY_SOCKET: {src}", (e.strerror or str(e)).lower()) from None
    cfg.mounts.append(Mount({"destination": CONTAINER_DIR, "type": "bind", "source": src,
                             "options": ["bind", "nosuid", "noexec", "nodev", "ro"]}, "NOTIFY_SOCKET"))
    p = cfg.process
    p.env = [e for e in p.env if not e.startswith("NOTIFY_SOCKET=")] + [f"NOTIFY_SOCKET={CONTAINER_SOCKET}"]


def wanted(d: str) -> str:
    """For start: the host socket to relay to, or "" (no NOTIFY_SOCKET, or a container created without it)."""
    host = host_socket()
    return host if host and fspath.isdir(fspath.join(d, DIR)) else ""


class Relay:
    """The container's socket, bound, and the host's, connected, before the container's process starts, so a
    bad NOTIFY_SOCKET fails `start` with nothing started."""

    __slots__ = ("host", "pid", "sock", "out")

    def __init__(self, d: str, host: str, pid: int) -> None:
        import _socket

        self.host = host
        self.pid = pid
        self.sock = self.out = None
        dfd = posix.open(fspath.join(d, DIR), posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        try:
            s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
            self.sock = s
            try:
                posix.unlink(SOCK, dir_fd=dfd)
            except FileNotFoundError:
                pass
            s.bind(f"/proc/self/fd/{dfd}/{SOCK}")  # (long --root paths still fit in sun_path)
            posix.chmod(f"/proc/self/fd/{dfd}/{SOCK}", 0o777)  # any container user may notify
        except OSError as e:
            self.close()
            raise OciError(f"NOTIFY_SOCKET: {d}/{DIR}/{SOCK}", (e.strerror or str(e)).lower()) from None
        finally:
            posix.close(dfd)
        try:
            self.out = _connect(host)
        except OSError as e:
            self.close()
            raise OciError(f"NOTIFY_SOCKET {host}", (e.strerror or str(e)).lower()) from None

    def close(self) -> None:
        for s in (self.sock, self.out):
            if s is not None:
                s.close()
        self.sock = self.out = None

    def forward(self, mainpid: int) -> None:
        """Relay until READY= (then MAINPID=mainpid and a barrier) or until the container's init exits."""
        import select

        try:
            pfd = posix.pidfd_open(self.pid)
        except ProcessLookupError:
            self.close()
            return
        try:
            p = select.poll()
            p.register(self.sock.fileno(), select.POLLIN)
            p.register(pfd, select.POLLIN)
            while True:
                ready = {fd for fd, _ in p.poll()}
                if self.sock.fileno() in ready:
                    lines, is_ready = self._receive()
                    if is_ready:
                        self._send("\n".join([*lines, f"MAINPID={mainpid}"]) + "\n")
                        self._barrier()
                        return
                    if lines:
                        self._send("\n".join(lines) + "\n")
                elif pfd in ready:
                    return  # exited without READY: nothing to wait for (runc returns quietly too)
        finally:
            posix.close(pfd)
            self.close()

    def _receive(self) -> tuple[list[str], bool]:
        """One datagram's state lines (the container's MAINPID and BARRIER mean nothing outside it; the fds it
        passes, a barrier's included, are closed, which is their acknowledgement) and whether READY= is in it."""
        import _socket

        data, anc, _flags, _addr = self.sock.recvmsg(4096, _socket.CMSG_SPACE(253 * 4))
        for level, kind, fds in anc:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                for i in range(0, len(fds) - len(fds) % 4, 4):
                    posix.close(int.from_bytes(fds[i:i + 4], sys.byteorder))
        lines = [ln for ln in data.decode(errors="replace").split("\n")
                 if ln and not ln.startswith(("MAINPID=", "BARRIER="))]
        return lines, any(ln.startswith("READY=") for ln in lines)

    def _send(self, text: str) -> None:
        try:
            self.out.send(text.encode())
        except OSError as e:
            raise OciError(f"NOTIFY_SOCKET {self.host}", (e.strerror or str(e)).lower()) from None

    def _barrier(self) -> None:
        """sd_notify_barrier: BARRIER=1 with a pipe's write end; the manager closes it once it has handled what
        came before. Without a reply in 30 s, carry on (a manager without barrier support)."""
        import _socket
        import select

        r, w = posix.pipe2(posix.O_CLOEXEC)
        try:
            try:
                self.out.sendmsg([b"BARRIER=1"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                                   w.to_bytes(4, sys.byteorder))])
            except OSError as e:
                raise OciError(f"NOTIFY_SOCKET {self.host}", (e.strerror or str(e)).lower()) from None
            posix.close(w)
            w = -1
            p = select.poll()
            p.register(r, select.POLLIN)
            p.poll(BARRIER_TIMEOUT_MS)
        finally:
            posix.close(r)
            if w >= 0:
                posix.close(w)


def _connect(host: str):  # noqa: ANN202
    """A datagram socket connected to NOTIFY_SOCKET: a path, or "@name" in the abstract namespace."""
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        if host.startswith("@"):
            s.connect("\0" + host[1:])
        elif len(fspath.fsencode(host)) < 108:
            s.connect(host)
        else:  # longer than sun_path: through the directory's fd
            dfd = posix.open(fspath.dirname(host) or ".", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
            try:
                s.connect(f"/proc/self/fd/{dfd}/{fspath.basename(host)}")
            finally:
                posix.close(dfd)
    except BaseException:
        s.close()
        raise
    return s
