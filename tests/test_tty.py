"""Terminals without a console socket: `run` and `exec -t` relay the container's pty to our own terminal.

The tests drive ocirun from a pty of their own (pty.fork), as a user at a terminal would.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time

from ocitest import ROOT, ocirun_cmd


def pty_run(argv: list[str], *, rows: int = 33, cols: int = 101, stdin: bytes = b"",
            timeout: float = 30) -> tuple[bytes, int]:
    """Run argv on a new pty of the given size; everything it printed and its exit status."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.environ["PYTHONPATH"] = ROOT
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    if stdin:
        os.write(fd, stdin)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not r:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every slave fd is closed
                break
            if not data:
                break
            out += data
        else:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"{argv} did not finish in {timeout}s; output so far: {out!r}")
    finally:
        os.close(fd)
    _, st = os.waitpid(pid, 0)
    return out, os.waitstatus_to_exitcode(st)


def test_run_with_terminal_relays_output_and_status(rt, bundle):
    b = bundle(["sh", "-c", "tty; stty size; echo out-$((6*7)); exit 5"], terminal=True)
    out, status = pty_run([*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id])
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert status == 5, text
    lines = text.splitlines()
    assert lines[0].startswith("/dev/pts/"), text
    assert "33 101" in lines, text  # our window size reached the container's pty
    assert "out-42" in lines, text
    assert rt("state", b.id).returncode != 0  # run deleted it


def test_run_with_terminal_passes_input(rt, bundle):
    b = bundle(["sh", "-c", "read line; echo got:$line; exit 0"], terminal=True)
    out, status = pty_run([*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id], stdin=b"hello\n")
    assert status == 0, out
    assert b"got:hello" in out


def test_run_terminal_detach_needs_console_socket(rt, bundle):
    b = bundle(["true"], terminal=True)
    p = rt("run", "-d", "-b", b.path, b.id)
    assert p.returncode != 0 and "console" in p.err
    assert rt("state", b.id).returncode != 0
