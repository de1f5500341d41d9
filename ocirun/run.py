"""`run`: create + start in one process; in the foreground it forwards signals, relays a terminal,
exits with the container's status and deletes the container."""


import ocirun
from ocirun import fspath, lifecycle
from ocirun.create import CreateOpts, create
from ocirun.errors import OciError
from ocirun.executor import forward_signals, wait_status


def run(o: CreateOpts, detach: bool, keep: bool, warn) -> int:  # noqa: ANN001
    """`warn(msg)`: where warnings go (the CLI's output)."""
    from ocirun import config as config_mod

    cfg_terminal = False
    cfg = None
    if not o.console_socket and not o.dry_run:
        tr = ocirun.TRACER
        t = tr and tr.now()
        try:
            cfg = config_mod.load(o.bundle, o.config)
            cfg_terminal = bool(cfg.process and cfg.process.terminal)
        except OciError:
            pass  # create reports it
        if tr:
            tr.step("config.load", t, o.config or fspath.join(o.bundle, "config.json"))
    relay = None
    if cfg_terminal:
        if detach:
            raise OciError("process.terminal", "cannot allocate a tty when detaching without --console-socket")
        from ocirun.tty import Relay

        relay = Relay()
        o.console_fd = relay.child_end
        o.console_size = relay.host_size()
    try:
        st, child = create(o, warn, cfg)
    finally:
        if relay is not None:
            relay.close_child_end()
    if st is None or child is None:  # --dry-run
        return 0
    if relay is not None:
        relay.receive_master()
    if not detach:
        forward_signals(child.pid)
    try:
        notify = lifecycle.start(o.root, o.cid, warn, created=st)
    except BaseException:
        if not detach:
            _kill(child.pid)  # start may fail before its go (NOTIFY_SOCKET): the init would wait forever
            wait_status(child.pid)
        if not keep:
            lifecycle.delete(o.root, o.cid, True, warn)
        raise
    if ocirun.TRACER:
        ocirun.TRACER.flush()
    waiting = _notify(notify, child.pid, detach, relay is not None, warn) if notify is not None else None
    if detach:
        return 0
    if relay is not None:
        relay.run(child.pid)
    if waiting is not None:
        waiting.join()  # what the container said before it exited still reaches the host
    status = wait_status(child.pid)
    if not keep:
        lifecycle.delete(o.root, o.cid, True, warn)
    return status


def _kill(pid: int) -> None:
    """SIGKILL our unreaped child (a failed exec has already exited: then this does nothing)."""
    import posix

    try:
        posix.kill(pid, 9)
    except ProcessLookupError:
        pass


def _notify(notify, pid: int, detach: bool, terminal: bool, warn):  # noqa: ANN001, ANN202
    """NOTIFY_SOCKET: relay the container's readiness. MAINPID is the container's init when we detach, else
    ourselves: the service manager watches the process that stays (runc). With a terminal to relay too, the
    wait runs beside it in a thread, which is returned."""
    import posix

    mainpid = pid if detach else posix.getpid()

    def forward() -> None:
        try:
            notify.forward(mainpid)
        except OciError as e:
            warn(str(e))

    if terminal and not detach:
        import threading

        t = threading.Thread(target=forward, daemon=True)
        t.start()
        return t
    forward()
    return None
