"""A terminal for `run`/`exec` without --console-socket: receive the pty master over our own socketpair
and relay it to our stdio, with window-size changes passed on."""

import posix

from ocirun.errors import OciError


class Relay:
    def __init__(self) -> None:
        import _socket

        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        self.our_end = a.detach()
        self.child_end: int | None = b.detach()
        self.master = -1

    @staticmethod
    def host_size() -> tuple[int, int] | None:
        """Our terminal's (rows, cols): the child sets them on the pty before it execs, so nothing races."""
        import fcntl
        import struct
        import termios

        try:
            rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            return None
        return (rows, cols) if rows and cols else None

    def close_child_end(self) -> None:
        if self.child_end is not None:
            posix.close(self.child_end)
            self.child_end = None

    def receive_master(self) -> None:
        from ocirun._native import ffi, lib

        r = lib.ocirun_recv_fd(self.our_end, ffi.NULL, 0)
        posix.close(self.our_end)
        if r < 0:
            raise OciError("console", f"receiving the pty master: {posix.strerror(-r)}")
        self.master = r
        self._resize()

    def _resize(self, *_: object) -> None:
        import fcntl
        import termios

        try:
            ws = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, ws)
        except OSError:
            pass

    def run(self, pid: int) -> None:
        """Copy stdin → master and master → stdout until the container closes the pty."""
        import _signal
        import gc
        import select
        import termios
        import tty

        gc.enable()  # an interactive session may last: collect cycles again (see install_launcher)
        saved = None
        if posix.isatty(0):
            saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop what the user typed ahead
            _signal.signal(28, self._resize)
        p = select.poll()
        p.register(self.master, select.POLLIN)
        stdin_open = True
        p.register(0, select.POLLIN)
        try:
            while True:
                try:
                    events = p.poll()
                except InterruptedError:
                    continue
                for fd, ev in events:
                    if fd == self.master:
                        try:
                            data = posix.read(self.master, 65536)
                        except OSError:
                            data = b""
                        if not data:
                            return
                        posix.write(1, data)
                    elif stdin_open:
                        data = posix.read(0, 65536) if ev & (select.POLLIN | select.POLLHUP) else b""
                        if not data:
                            p.unregister(0)
                            stdin_open = False
                        else:
                            posix.write(self.master, data)
        finally:
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            posix.close(self.master)
