"""start, kill and delete: the state machine of runtime.md on an existing container."""

import posix

import ocirun
from ocirun import fspath, state
from ocirun.errors import OciError

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
    "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
    "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(s: str) -> int:
    """A number, a name with or without SIG (KILL, SIGKILL), or RTMIN+n."""
    if s.isdigit():
        n = int(s)
        if 0 < n <= 64:
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
    raise OciError(f'signal "{s}"', "invalid signal")


def _hooks(data: dict, kind: str) -> list:
    """The kept hooks of `kind` as config.Hook objects (config is imported only when there are some)."""
    raw = data.get("config", {}).get("hooks", {}).get(kind, [])
    if not raw:
        return []
    from ocirun.config import Hook

    return [Hook(h, f"hooks.{kind}[{i}]") for i, h in enumerate(raw)]


def start(root: str, cid: str, warn, created: dict | None = None):  # noqa: ANN001, ANN201
    """`created`: the state `run` has just written (so it needs no second read and check).

    Returns None, or with NOTIFY_SOCKET an ocirun.sdnotify.Relay whose forward() the caller runs (after the
    lock is released, so `delete` can still stop a container that never becomes ready)."""
    d = state.container_dir(root, cid)
    lock = state.Lock(d, cid)
    relay = None
    try:
        data = created or state.load(root, cid)
        st = "created" if created else state.status(data)
        if st != "created":
            if st == "stopped":
                raise OciError(f'container "{cid}"', "cannot start a container that has stopped")
            raise OciError(f'container "{cid}"', f"cannot start an already {st} container")
        if fspath.getenv("NOTIFY_SOCKET"):
            from ocirun import sdnotify

            host = sdnotify.wanted(d)
            relay = sdnotify.Relay(d, host, data["pid"]) if host else None
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
            data["status"] = "stopped"
            state.save(d, data)
            raise OciError("container process", err.decode(errors="replace"))
        # Nothing to save: with notify.sock gone the stored "created" reads as running (state.status).
        if poststart := _hooks(data, "poststart"):
            from ocirun import hooks

            # poststart failures are warnings: the container already runs (runtime.md lifecycle step 8).
            hooks.run_hooks_warn(poststart, "poststart", state.hook_state(data, "running"), warn, data["bundle"])
    except BaseException:
        if relay is not None:
            relay.close()
        raise
    finally:
        lock.release()
    return relay


def signal_init(data: dict, sig: int) -> None:
    """Signal the init through a pidfd taken while its start time still matches: no pid-reuse race."""
    pid = data["pid"]
    try:
        pfd = posix.pidfd_open(pid)
    except ProcessLookupError:
        raise OciError(f'container "{data["id"]}"', "container not running") from None
    try:
        if not state.init_alive(data):
            raise OciError(f'container "{data["id"]}"', "container not running")
        import _signal

        _signal.pidfd_send_signal(pfd, sig)
    except ProcessLookupError:
        raise OciError(f'container "{data["id"]}"', "container not running") from None
    finally:
        posix.close(pfd)


def kill(root: str, cid: str, sig: int, all_procs: bool = False) -> None:
    data = state.load(root, cid)
    if all_procs:
        from ocirun import cgroups

        cgroups.from_state(data["cgroup"]).kill_all(sig)
        return
    signal_init(data, sig)  # (refuses a stopped container: "container not running")


def _wait_gone(data: dict, timeout_ms: int = 10000) -> None:
    """Wait for the init to exit (it is usually not our child: poll a pidfd)."""
    try:
        pfd = posix.pidfd_open(data["pid"])
    except ProcessLookupError:
        return
    try:
        if not state.init_alive(data):
            return
        import select

        p = select.poll()
        p.register(pfd, select.POLLIN)
        p.poll(timeout_ms)
    finally:
        posix.close(pfd)


def delete(root: str, cid: str, force: bool, warn) -> None:  # noqa: ANN001
    d = state.container_dir(root, cid)
    lock = state.Lock(d, cid)
    try:
        try:
            data = state.load(root, cid)
        except OciError:
            # A directory without state: an interrupted create. Clean it up.
            state.remove_dir(d)
            return
        st = state.status(data)
        if st in ("running", "paused") and not force:
            raise OciError(f'container "{cid}"', f"cannot delete container that is not stopped: {st}")
        from ocirun import cgroups

        mgr = cgroups.from_state(data["cgroup"]) if data.get("cgroup") else None
        if st != "stopped":
            if st == "paused" and mgr is not None:
                mgr.thaw()
            try:
                signal_init(data, 9)
            except OciError:
                pass
            _wait_gone(data)
        if mgr is not None:
            try:
                if force or st != "stopped":
                    mgr.kill_all(9)
            except OSError:
                pass
            # A cgroup that stays busy fails delete (OciError) and keeps the state, so delete can be retried.
            mgr.destroy()
        t = ocirun.TRACER and ocirun.TRACER.now()
        state.remove_dir(d)
        if ocirun.TRACER:
            ocirun.TRACER.step("state.remove", t, d)
        if poststop := _hooks(data, "poststop"):
            from ocirun import hooks

            hooks.run_hooks_warn(poststop, "poststop", state.hook_state(data, "stopped"), warn, data["bundle"])
    finally:
        lock.release()
