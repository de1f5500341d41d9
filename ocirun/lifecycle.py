"""start, kill and delete: the state machine of runtime.md on an existing container."""

import posix

import ocirun
from ocirun import fspath, state
from ocirun.errors import OciError
from ocirun.state import ContainerState

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
    "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
    "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(s: str) -> int:
    """A number (0: only check that the container runs, as runc takes it), a name with or without SIG
    (KILL, SIGKILL), or RTMIN+n."""
    if s.isdigit():
        n = int(s)
        if 0 <= n <= 64:
            return n
    else:
        name = s.upper().removeprefix("SIG")
        if name in SIGNALS:
            return SIGNALS[name]
        base, sep, off = name.partition("+") if "+" in name else name.partition("-")
        if base in ("RTMIN", "RTMAX") and (not sep or off.isdigit()):
            k = int(off) if off else 0
            n = 34 + k if base == "RTMIN" else 64 - k
            if 34 <= n <= 64:
                return n
    raise OciError(f'signal "{s}"', "unknown signal")  # (runc's words)


def _hooks(st: ContainerState, kind: str) -> list:
    """The kept hooks of `kind` as config.Hook objects (config is imported only when there are some)."""
    raw = st.config.hooks_of(kind)
    if not raw:
        return []
    from ocirun.config import Hook

    return [Hook(h, f"hooks.{kind}[{i}]") for i, h in enumerate(raw)]


def start(root: str, cid: str, warn, created: ContainerState | None = None):  # noqa: ANN001, ANN201
    """`created`: the state `run` has just written (so it needs no second read and check).

    Returns None, or with NOTIFY_SOCKET an ocirun.sdnotify.Relay whose forward() the caller runs (after the
    lock is released, so `delete` can still stop a container that never becomes ready)."""
    d = state.container_dir(root, cid)
    lock = state.Lock(d, cid)
    relay = None
    try:
        st = created or state.load(root, cid)
        cur = "created" if created else st.current_status()
        if cur != "created":
            if cur == "stopped":
                raise OciError(f'container "{cid}"', "cannot start a container that has stopped")
            if cur == "running":
                raise OciError(f'container "{cid}"', "cannot start an already running container")
            raise OciError(f'container "{cid}"', f"cannot start a container in the {cur} state")
        if fspath.getenv("NOTIFY_SOCKET"):
            from ocirun import sdnotify

            host = sdnotify.wanted(d)
            relay = sdnotify.Relay(d, host, st.pid) if host else None
        import _socket

        tr = ocirun.TRACER
        t = tr and tr.now()
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        dfd = posix.open(d, posix.O_PATH | posix.O_CLOEXEC)
        try:
            s.connect(f"/proc/self/fd/{dfd}/{state.NOTIFY_SOCK}")
            s.sendall(b"S")
            err = b""
            while chunk := s.recv(4096):
                err += chunk
        except OSError as e:
            raise OciError(f'container "{cid}"', f"container not running ({e.strerror})") from None
        finally:
            posix.close(dfd)
            s.close()
        if tr:
            what = "failed" if err else "container process exec'd"
            tr.step("start", t, f"{d}/{state.NOTIFY_SOCK}: go sent, {what}")
        try:
            posix.unlink(fspath.join(d, state.NOTIFY_SOCK))
        except FileNotFoundError:
            pass
        if err:
            st.status = "stopped"
            state.save(d, st)
            raise OciError("container process", err.decode(errors="replace"))
        # Nothing to save: with notify.sock gone the stored "created" reads as running (current_status).
        if poststart := _hooks(st, "poststart"):
            from ocirun import hooks

            # poststart failures are warnings: the container already runs (runtime.md lifecycle step 8).
            hooks.run_hooks_warn(poststart, "poststart", st.hook_json("running"), warn, st.bundle)
    except BaseException:
        if relay is not None:
            relay.close()
        raise
    finally:
        lock.release()
    return relay


def signal_init(st: ContainerState, sig: int) -> None:
    """Signal the init through a pidfd taken while its start time still matches: no pid-reuse race."""
    if st.pid <= 0:
        raise OciError(f'container "{st.id}"', "container not running")
    try:
        pfd = posix.pidfd_open(st.pid)
    except (ProcessLookupError, OverflowError):
        raise OciError(f'container "{st.id}"', "container not running") from None
    try:
        if not st.alive():
            raise OciError(f'container "{st.id}"', "container not running")
        import _signal

        _signal.pidfd_send_signal(pfd, sig)
    except ProcessLookupError:
        raise OciError(f'container "{st.id}"', "container not running") from None
    finally:
        posix.close(pfd)


def kill(root: str, cid: str, sig: int, all_procs: bool = False) -> None:
    st = state.load(root, cid)
    tr = ocirun.TRACER
    if all_procs:
        mgr = st.manager()
        if mgr.mode == "disabled":  # no cgroup to find the others: the init (runc's signalInit)
            if st.alive():
                signal_init(st, sig)
        elif sig:  # (signal 0 only asks whether the container is there, as runc takes it)
            mgr.kill_all(sig)
        if tr:
            tr.point("kill", f"signal {sig} to every process of {cid}")
        return
    signal_init(st, sig)  # (refuses a stopped container: "container not running")
    if sig == 9 and st.paused:
        # A frozen init cannot die until thawed (v1 freezer): thaw after SIGKILL, as runc does.
        try:
            st.manager().thaw()
        except (OSError, OciError):
            pass
    if tr:
        tr.point("kill", f"signal {sig} to init {st.pid}")


def _wait_gone(st: ContainerState, timeout_ms: int = 10000) -> bool:
    """Wait for the init to exit (it is usually not our child: poll a pidfd); False if it still runs."""
    if st.pid <= 0:
        return True
    try:
        pfd = posix.pidfd_open(st.pid)
    except (ProcessLookupError, OverflowError):
        return True
    try:
        if not st.alive():
            return True
        import select

        p = select.poll()
        p.register(pfd, select.POLLIN)
        return bool(p.poll(timeout_ms))
    finally:
        posix.close(pfd)


def _thaw(mgr) -> None:  # noqa: ANN001
    try:
        if mgr.is_frozen():
            mgr.thaw()
    except (OSError, OciError):
        pass


def _kill_everything(st: ContainerState, mgr) -> None:  # noqa: ANN001
    """SIGKILL the init and wait for it, then every process left in the cgroup. A frozen task dies only once
    thawed (cgroup v1), so a frozen cgroup is thawed after the signal: ours (pause) at once, anyone else's
    (freezer.state or cgroup.freeze written from outside) when the init is not gone after a moment; the
    freezer is not read when the init dies at once."""
    if st.alive():
        try:
            signal_init(st, 9)
        except OciError:
            pass
        if mgr is not None and st.paused:
            _thaw(mgr)
        if not _wait_gone(st, 100):
            if mgr is not None:
                _thaw(mgr)
            _wait_gone(st)
    if mgr is not None:
        try:
            mgr.kill_all(9)  # what outlived the init (no pid namespace); thaws a frozen cgroup after signalling
        except (OSError, OciError):
            pass


def delete(root: str, cid: str, force: bool, warn) -> None:  # noqa: ANN001
    d = state.container_dir(root, cid)
    lock = state.Lock(d, cid)
    tr = ocirun.TRACER
    try:
        st, damaged = state.load_for_cleanup(root, cid)
        if st is None:
            if damaged and not force:
                raise OciError(f'container "{cid}"', f"{damaged}: nothing records whether it runs; "
                               "cannot delete container that is not stopped without --force")
            if damaged:
                warn(f'container "{cid}": {damaged}: no record of its processes: removing its state only')
            # Else an empty directory: create was killed before it wrote anything.
            state.remove_dir(d)
            return
        cur = st.current_status()
        if cur == "creating" and st.pid <= 0:
            cur = "stopped"  # we hold the lock, so create is gone: killed before the init could outlive it
        mgr = st.manager() if st.cgroup is not None else None
        busy = cur in ("running", "paused", "creating")
        if not busy and damaged and mgr is not None and mgr.pids():
            busy = True  # its init is gone, but something still runs in its cgroup
        if busy and not force:
            extra = f" ({damaged})" if damaged else ""
            raise OciError(f'container "{cid}"', f"cannot delete container that is not stopped: {cur}{extra}; "
                           "use --force")
        if damaged:
            warn(f'container "{cid}": {damaged}: removing it as its create journal recorded it')
        t = tr and tr.now()
        if cur != "stopped" or force:
            _kill_everything(st, mgr)
            if tr:
                tr.step("kill", t, f"SIGKILL to init {st.pid} and the cgroup")
        if mgr is not None:
            # A cgroup that stays busy fails delete (OciError) and keeps the state, so delete can be retried.
            mgr.destroy()
        t = tr and tr.now()
        state.remove_dir(d)
        if tr:
            tr.step("state.remove", t, d)
        if poststop := _hooks(st, "poststop"):
            from ocirun import hooks

            hooks.run_hooks_warn(poststop, "poststop", st.hook_json("stopped"), warn, st.bundle)
    finally:
        lock.release()
