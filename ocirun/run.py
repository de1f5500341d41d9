"""`run`: create + start in one process; in the foreground it forwards signals, relays a terminal,
exits with the container's status and deletes the container."""

import os

import ocirun
from ocirun import lifecycle
from ocirun.cli import Output
from ocirun.create import CreateOpts, create
from ocirun.errors import OciError

FORWARDED = (1, 2, 3, 10, 12, 14, 15, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30)


def wait_status(pid: int) -> int:
    """Wait for our child; its exit status as a shell reports it (128 + signal when killed)."""
    tr = ocirun.TRACER
    t = tr and tr.now()
    status = _wait_status(pid)
    if tr:
        tr.step("wait", t, f"pid {pid} exited: status {status}")
    return status


def _wait_status(pid: int) -> int:
    while True:
        try:
            _, st = os.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        if os.WIFEXITED(st):
            return os.WEXITSTATUS(st)
        if os.WIFSIGNALED(st):
            return 128 + os.WTERMSIG(st)


def forward_signals(pid: int) -> None:
    import _signal

    def handler(sig: int, frame: object) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for s in FORWARDED:
        try:
            _signal.signal(s, handler)
        except (OSError, ValueError):
            pass


def run(o: CreateOpts, detach: bool, keep: bool, out: Output) -> int:
    from ocirun import config as config_mod

    cfg_terminal = False
    cfg = None
    if not o.dry_run:
        from ocirun import cgroups

        cgroups.prewarm_attach()  # as early as possible: see there
    if not o.console_socket and not o.dry_run:
        tr = ocirun.TRACER
        t = tr and tr.now()
        try:
            cfg = config_mod.load(o.bundle)
            cfg_terminal = bool(cfg.process and cfg.process.terminal)
        except OciError:
            pass  # create reports it
        if tr:
            tr.step("config.load", t, os.path.join(o.bundle, "config.json"))
    relay = None
    if cfg_terminal:
        if detach:
            raise OciError("process.terminal", "cannot allocate a tty when detaching without --console-socket")
        from ocirun.tty import Relay

        relay = Relay()
        o.console_fd = relay.child_end
        o.console_size = relay.host_size()
    try:
        data, child = create(o, out.warn, cfg)
    finally:
        if relay is not None:
            relay.close_child_end()
    if o.dry_run:
        return 0
    if relay is not None:
        relay.receive_master()
    if not detach:
        forward_signals(child.pid)
    try:
        lifecycle.start(o.root, o.cid, out.warn)
    except BaseException:
        if not detach:
            wait_status(child.pid)
        if not keep:
            lifecycle.delete(o.root, o.cid, True, out.warn)
        raise
    if ocirun.TRACER:
        ocirun.TRACER.flush()
    if detach:
        return 0
    if relay is not None:
        relay.run(child.pid)
    status = wait_status(child.pid)
    if not keep:
        lifecycle.delete(o.root, o.cid, True, out.warn)
    return status
