"""`exec`: run one more process in a running container, joining every namespace and the cgroup of its init.

The process is the container's own `process` (kept in state.json) with the command line's changes, or a
whole runtime-spec process from `--process FILE`, as runc builds it. The C helper joins the namespaces through
fds we open here (paths under /proc/<init> stop resolving once the child is in the container's mount
namespace) and the cgroup at its SYNC_PLACED point; only then does it fork into the container's pid
namespace (MSG_PID names the new process), so nothing of ours is visible in the container while it is still
in the host's mount namespace. A successful execve closes the sync socket (SOCK_CLOEXEC): EOF means the
command runs.

Behaviour decisions, all as runc 1.2 unless noted:
- exit status: the process's own in the foreground (128 + signal when killed); 255 for every failure of
  `exec` itself, with the errno text kept in the message ("... executable file not found in $PATH: No such
  file or directory") for callers that map it (podman: ENOENT → 127, EACCES → 126).
- `--env` overrides a variable of the container's process in place (the last value wins), never duplicates.
- `--cap` adds to the bounding, effective, permitted and ambient sets (ambient only takes if inheritable).
- `--preserve-fds N` passes fds 3..3+N-1. LISTEN_FDS in our environment is ignored, as runc's exec does
  (only create/run pass socket-activation fds); the process's environment never comes from ours.
- `--console-socket` needs `--tty` and `--detach`; `--tty` in the foreground relays our stdio instead.
"""

import posix

import ocirun
from ocirun import executor, fspath, plan, state
from ocirun.config import NAMESPACES, Process
from ocirun.errors import OciError
from ocirun.state import ContainerState

EXEC_FAILED = 255  # runc: fatalWithCode(fmt.Errorf("exec failed: %w", err), 255)


class ExecOpts:
    """What `exec` was asked for: the container, the command line after its id, and the flags (None when not
    given; FLAGS are the names of the CLI's exec table, preserve_fds already a number)."""

    FLAGS = ("process", "detach", "pid_file", "tty", "console_socket", "cwd", "env", "user", "additional_gids",
             "cap", "no_new_privs", "process_label", "apparmor", "ignore_paused", "cgroup", "pidfd_socket")
    __slots__ = ("root", "cid", "args", "preserve_fds", *FLAGS)

    def __init__(self, root: str, cid: str, args: list[str], preserve_fds: int = 0, **flags: object) -> None:
        self.root = root
        self.cid = cid
        self.args = args
        self.preserve_fds = preserve_fds
        for name in self.FLAGS:
            setattr(self, name, flags.pop(name, None))
        if flags:
            raise TypeError(f"unknown exec options: {sorted(flags)}")


def exec_command(o: ExecOpts, warn=None) -> int:  # noqa: ANN001
    """Entry point of `ocirun exec`; every failure of exec itself exits 255, as runc."""
    try:
        return _exec(o, warn)
    except OciError as e:
        e.status = EXEC_FAILED
        raise


def _exec(a: ExecOpts, warn=None) -> int:  # noqa: ANN001
    cid = a.cid
    root = a.root
    from ocirun import cgroups

    tr = ocirun.TRACER
    t = tr and tr.now()
    data = state.load(root, cid)
    st = data.current_status()
    if tr:
        tr.step("state.load", t, f"{cid}: {st}, init pid {data.pid}")
    if st in ("stopped", "creating"):
        raise OciError(f'container "{cid}"', "cannot exec in a stopped container: container not running")
    if st == "paused" and not a.ignore_paused:
        raise OciError(f'container "{cid}"', "cannot exec in a paused container (use --ignore-paused to override)")
    p = build_process(a, data, warn)
    detach = bool(a.detach)
    preserve = _preserve_fds(a.preserve_fds)
    sub_cgroups = parse_sub_cgroups(a.cgroup or [])
    relay = None
    fds: list[int] = []
    child = mgr = None
    try:
        console_fd = None
        if a.console_socket and not (detach and p.terminal):
            raise OciError("--console-socket", "cannot use console socket if runc will not detach or allocate tty")
        if p.terminal:
            if a.console_socket:
                from ocirun.create import _connect_console

                console_fd = _connect_console(a.console_socket)
                fds.append(console_fd)
            elif detach:
                raise OciError("--tty", "cannot allocate tty if runc will detach without setting console socket")
            else:
                from ocirun.tty import Relay

                relay = Relay()
                console_fd = relay.child_end
                if p.console_size is None:
                    p.console_size = relay.host_size()
        pid = data.pid
        t = tr and tr.now()
        ns_fds = _open_namespaces(data, pid, fds)
        if tr:
            tr.step("namespaces", t, f"/proc/{pid}/ns: {' '.join(n for n, _, _ in ns_fds)}")
        if not data.alive():  # the pid could have been reused while we opened its namespaces
            raise OciError(f'container "{cid}"', "cannot exec in a stopped container: container not running")
        sec, sec_obj = _seccomp(data, root)
        pl = plan.compile_exec(p, ns_fds, console_fd=console_fd, preserve_fds=preserve, seccomp=sec)
        for fd in range(3, 3 + preserve):
            posix.set_inheritable(fd, True)
        # The cgroup dirs are opened before the clone: after it the child, on this CPU or on a halted one
        # that must first be woken, should find us already waiting for its first sync point.
        mgr = data.manager()
        mgr.open_dirs()
        cgroups.prewarm_wait()
        child = executor.spawn(pl, who="exec")
        for fd in fds:
            posix.close(fd)
        fds = []
        if relay is not None:
            relay.close_child_end()
        _drive(child, data, sec_obj, sub_cgroups, mgr)
        mgr.close()
        # Before the child is let go: as runc, a pidfd or pid file that can't be handed over fails exec and
        # kills what it started (the except below).
        if a.pidfd_socket:
            _send_pidfd(a.pidfd_socket, child.pid)
        if a.pid_file:
            state.write_pid_file(a.pid_file, child.pid)
        child.close()
        if tr:
            tr.point("exec'd", f"pid {child.pid}: sync socket closed by execve")
            tr.flush()
        if detach:
            return 0
        executor.forward_signals(child.pid)
        if relay is not None:
            relay.receive_master()
            relay.run(child.pid)
        return executor.wait_status(child.pid)
    except BaseException:
        for fd in fds:
            posix.close(fd)
        if mgr is not None:
            mgr.close()
        if relay is not None:
            relay.close_child_end()
        if child is not None and child.fd >= 0:
            child.kill()  # failed before exec: nothing of it may stay behind
        raise


def build_process(a: ExecOpts, data: ContainerState, warn=None) -> Process:  # noqa: ANN001
    """The process to run: --process FILE as given, else the container's process with the flags applied;
    `warn` gets the warnings (capabilities the kernel or ocirun does not know: left out)."""
    for flag, val in (("--apparmor", a.apparmor), ("--process-label", a.process_label)):
        if val:
            raise OciError(flag, "not supported: this runtime has no AppArmor or SELinux support")
    if a.process:
        from ocirun import jsonio

        try:
            with open(a.process, "rb") as f:
                raw = jsonio.load_input(f.read(), f"--process {a.process}")
        except OSError as e:
            raise OciError(f"--process {a.process}", (e.strerror or str(e)).lower()) from None
        if not isinstance(raw, dict):
            raise OciError(f"--process {a.process}", "must be a JSON object")
        for key, flag in (("apparmorProfile", "--apparmor"), ("selinuxLabel", "--process-label")):
            if raw.get(key):
                raise OciError(f"--process {a.process}", f"process.{key}: not supported (see {flag})")
        return _parse(raw, f"--process {a.process}", warn)
    args = a.args
    if not args:
        raise OciError("exec", "process args cannot be empty")
    base = data.config.process or {}
    raw = _copy(base)
    raw["args"] = list(args)
    raw["terminal"] = bool(a.tty)
    if not a.tty:
        raw.pop("consoleSize", None)
    if a.cwd:
        raw["cwd"] = a.cwd
    if a.env:
        raw["env"] = merge_env(list(raw.get("env") or []), a.env)
    if a.no_new_privs is not None:
        raw["noNewPrivileges"] = bool(a.no_new_privs)
    user = dict(raw.get("user") or {})
    if a.user:
        uid, sep, gid = a.user.partition(":")
        user["uid"] = _id(uid, "--user", "uid")
        if sep:
            user["gid"] = _id(gid, "--user", "gid")
    if a.additional_gids:
        gids = list(user.get("additionalGids") or [])
        for g in a.additional_gids:
            gids.append(_id(g, "--additional-gids", "gid"))
        user["additionalGids"] = gids
    raw["user"] = user
    if a.cap:
        from ocirun.capabilities import caps_to_mask

        caps = {k: list(v or []) for k, v in (raw.get("capabilities") or {}).items()}
        # Unknown names are warned about and left out, as in config.json (runc: the same warning).
        known = [c for c in a.cap if caps_to_mask([c], "--cap", lambda _w, why: warn and warn(f"--cap: {why}"))]
        for kind in ("bounding", "effective", "permitted", "ambient"):
            have = caps.setdefault(kind, [])
            for c in known:
                if c not in have:
                    have.append(c)
        raw["capabilities"] = caps
    return _parse(raw, "exec", warn)


def _parse(raw: dict, what: str, warn=None) -> Process:  # noqa: ANN001
    """Process(dict) with errors and warnings naming our source instead of config.json."""
    from ocirun.config import Report

    report = Report(source=what)
    try:
        p = Process(raw, "process", report)
    except OciError as e:
        raise OciError(what, e.why if e.what == "config.json" else str(e)) from None
    for w in report.warnings if warn else ():
        warn(w)
    return p


def _copy(obj: object) -> object:
    """A deep copy of JSON data (copy.deepcopy is a heavier import)."""
    if isinstance(obj, dict):
        return {k: _copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy(v) for v in obj]
    return obj


def merge_env(env: list[str], extra: list[str]) -> list[str]:
    """KEY=VALUE pairs of `extra` replace the same KEY in `env` (in place) or are appended."""
    pos = {e.partition("=")[0]: i for i, e in enumerate(env)}
    for e in extra:
        key, eq, _ = e.partition("=")
        if not eq or not key:
            raise OciError(f'--env "{e}"', "must be KEY=VALUE")
        if key in pos:
            env[pos[key]] = e
        else:
            pos[key] = len(env)
            env.append(e)
    return env


def _id(s: str, flag: str, kind: str) -> int:
    """A decimal uid/gid in the range runc takes (0..2^31-1: 4294967295 would be -1, "unchanged", to the
    kernel, leaving the process root)."""
    from ocirun.config import MAX_ID
    from ocirun.errors import out_of_range, show

    digits = s[1:] if s[:1] == "-" else s
    if not (digits.isascii() and digits.isdigit()):
        raise OciError(flag, f"invalid {kind} {show(s)}: must be a decimal number")
    n = int(s, 10) if len(digits) <= 12 else None  # (not 5000 digits into an int)
    if n is None or not 0 <= n <= MAX_ID:
        raise OciError(flag, f"{kind} {out_of_range(s if n is None else n, 0, MAX_ID)}")
    return n


def _preserve_fds(n: int) -> int:
    """--preserve-fds N: fds 3..3+N-1 must all be open."""
    for i in range(n):
        try:
            posix.fstat(3 + i)
        except OSError as e:
            raise OciError("--preserve-fds", f"unable to stat preserved-fd {i} (of {n}): {e.strerror}") from None
    return n


def parse_sub_cgroups(args: list[str]) -> dict[str, str]:
    """--cgroup [CONTROLLER[,CONTROLLER]:]PATH, repeatable: sub-cgroups of the container's to run in."""
    out: dict[str, str] = {}
    for c in args:
        parts = c.split(":")
        if len(parts) > 2:
            raise OciError(f"--cgroup {c}", "invalid argument")
        if len(parts) == 1:
            if len(args) != 1:
                raise OciError(f"--cgroup {c}", "missing <controller>: prefix")
            out[""] = c
        else:
            for ctrl in parts[0].split(","):
                out[ctrl] = parts[1]
    for sub in out.values():
        if not sub or sub.startswith("/") or ".." in sub.split("/"):
            raise OciError(f"--cgroup {sub}", "must be a relative path below the container's cgroup")
    return out


def _open_namespaces(data: ContainerState, pid: int, fds: list[int]) -> list[tuple[str, int, int]]:
    """fds of the init's namespaces in plan.JOIN_ORDER (pid first: its setns only names our children's)."""
    types = data.config.namespace_types()
    out = []
    for t in sorted((t for t in types if t in NAMESPACES), key=plan.JOIN_ORDER.index):
        name = "net" if t == "network" else "mnt" if t == "mount" else t
        path = f"/proc/{pid}/ns/{name}"
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError as e:
            raise OciError(f"namespace {t}", f"{path}: {(e.strerror or str(e)).lower()}") from None
        fds.append(fd)
        out.append((t, fd, NAMESPACES[t]))
    return out


def _seccomp(data: ContainerState, root: str) -> tuple[plan.SeccompFilter | None, object]:
    """The container's own filter for the new process (compiled once, then read from the cache)."""
    section = data.config.seccomp
    if not section:
        return None, None
    from ocirun.seccomp import load_cached

    s = load_cached(section, fspath.join(root, ".seccomp-cache"))
    return plan.SeccompFilter(s.bpf, s.flags, s.notify), s


def _drive(child: executor.Child, data: ContainerState, sec_obj, sub_cgroups: dict[str, str],  # noqa: ANN001
           mgr) -> None:  # noqa: ANN001
    """Answer the child until it execs (EOF) or reports why it could not."""
    while True:
        t, v, payload = child.recv()
        if t == executor.MSG_SYNC and v == plan.SYNC_PLACED:
            _join_cgroup(mgr, child.pid, sub_cgroups)
            child.go()
        elif t == executor.MSG_PID:
            child.follow(v)  # forked into the pid namespace (in the cgroup it inherited)
        elif t == executor.MSG_FD:
            from ocirun.create import _send_listener

            _send_listener(sec_obj, child.take_fd(v), data.hook_json("running"))
        elif t == executor.MSG_ERROR:
            msg = payload.decode(errors="replace")
            child.kill()
            raise OciError("exec", msg[6:] if msg.startswith("exec: ") else msg)
        elif t == 0:
            return
        else:
            child.kill()
            raise OciError("exec", f"unexpected message {t} from the child")


def _join_cgroup(mgr, pid: int, sub: dict[str, str]) -> None:  # noqa: ANN001
    if not sub:
        mgr.add_pid(pid)
        return
    if mgr.mode == "disabled":
        raise mgr.refuse("--cgroup")
    if mgr.mode == "v2" and set(sub) - {"", "unified"}:
        raise OciError("--cgroup", "controller prefixes other than unified: are not allowed on cgroup v2")
    done: set[str] = set()
    for ctrl, d in mgr.paths().items():
        rel = sub.get(ctrl, sub.get("", "")) if mgr.mode != "v2" else sub.get("", sub.get("unified", ""))
        target = fspath.join(d, rel) if rel else d
        if target in done or d in done:
            continue
        done.add(target)
        done.add(d)
        try:
            fd = posix.open(fspath.join(target, "cgroup.procs"), posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, str(pid).encode())
            finally:
                posix.close(fd)
        except OSError as e:
            raise OciError(f"--cgroup {rel or '.'}", f"{target}: {(e.strerror or str(e)).lower()}") from None


def _send_pidfd(path: str, pid: int) -> None:
    """--pidfd-socket: hand a pidfd of the new process to whoever listens there."""
    import _socket

    from ocirun._native import lib

    try:
        pidfd = posix.pidfd_open(pid)
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            s.connect(path)
            r = lib.ocirun_send_fd(s.fileno(), pidfd, b"pidfd", 5)
            if r < 0:
                raise OSError(-r, posix.strerror(-r))
        finally:
            s.close()
            posix.close(pidfd)
    except OSError as e:
        raise OciError(f"--pidfd-socket {path}", (e.strerror or str(e)).lower()) from None
