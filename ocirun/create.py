"""`create`: config → plan → a container init waiting for `start`, with nothing left behind on failure."""

import posix

import ocirun
from ocirun import config as config_mod
from ocirun import executor, fspath, plan, state
from ocirun.errors import OciError


class CreateOpts:
    __slots__ = ("root", "cid", "bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring",
                 "preserve_fds", "systemd_cgroup", "dry_run", "console_fd", "console_size")

    def __init__(self, root: str, cid: str, bundle: str = ".", **kw: object) -> None:
        self.root = root
        self.cid = cid
        self.bundle = bundle
        self.pid_file = kw.get("pid_file") or ""
        self.console_socket = kw.get("console_socket") or ""
        self.no_pivot = bool(kw.get("no_pivot"))
        self.no_new_keyring = bool(kw.get("no_new_keyring"))
        self.preserve_fds = int(kw.get("preserve_fds") or 0)
        self.systemd_cgroup = bool(kw.get("systemd_cgroup"))
        self.dry_run = bool(kw.get("dry_run"))
        self.console_fd = kw.get("console_fd")  # `run` with a terminal and no socket: our own socketpair
        self.console_size = kw.get("console_size")  # (rows, cols) of the terminal `run` relays


def _listen(d: str) -> int:
    """The socket `start` connects to; bound through /proc/self/fd so long --root paths still fit."""
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    dfd = posix.open(d, posix.O_PATH | posix.O_CLOEXEC)
    try:
        s.bind(f"/proc/self/fd/{dfd}/{state.NOTIFY_SOCK}")
    finally:
        posix.close(dfd)
    s.listen(1)
    return s.detach()


def _socket_activation() -> int:
    """systemd socket activation meant for us (LISTEN_PID is our pid): pass fds 3.. on, as runc does."""
    if fspath.getenv("LISTEN_PID") != str(posix.getpid()):
        return 0
    try:
        n = int(fspath.getenv("LISTEN_FDS", "0"))
    except ValueError:
        return 0
    return n if 0 < n < 1024 else 0


def _connect_console(path: str) -> int:
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OciError(f"console socket {path}", (e.strerror or str(e)).lower()) from None
    return s.detach()


def _write_proc(pid: int, name: str, text: str, what: str) -> None:
    """One write of a /proc/PID file only the parent may fill in (id maps, time offsets)."""
    try:
        fd = posix.open(f"/proc/{pid}/{name}", posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, text.encode())
        finally:
            posix.close(fd)
    except OSError as e:
        raise OciError(what, f"writing {name}: {e.strerror}") from None


def _write_id_maps(pid: int, cfg: config_mod.Config) -> None:
    lx = cfg.linux
    for name, maps, what in (("uid_map", lx.uid_mappings, "linux.uidMappings"),
                             ("gid_map", lx.gid_mappings, "linux.gidMappings")):
        _write_proc(pid, name, "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps), what)


def _write_time_offsets(pid: int, cfg: config_mod.Config) -> None:
    text = "".join(f"{k} {secs} {ns}\n" for k, (secs, ns) in cfg.linux.time_offsets.items())
    _write_proc(pid, "timens_offsets", text, "linux.timeOffsets")


def _seccomp(cfg: config_mod.Config, root: str):  # noqa: ANN202
    sec = cfg.linux.seccomp
    if not sec:
        return None, None
    from ocirun.seccomp import load_cached

    try:
        s = load_cached(sec, fspath.join(root, ".seccomp-cache"))
    except OciError as e:
        raise OciError("config.json", str(e)) from None
    return (s.bpf, s.flags, s.notify), s


def _send_listener(s, fd: int, st: bytes) -> None:  # noqa: ANN001
    """Hand the seccomp notify fd to the listener with the container state, as runc does."""
    import _socket

    from ocirun import jsonio
    from ocirun._native import lib

    try:
        state_obj = jsonio.loads(st.decode())
        msg = jsonio.dumps({"ociVersion": state_obj["ociVersion"], "fds": ["seccompFd"], "pid": state_obj["pid"],
                            "metadata": s.listener_metadata or "", "state": state_obj}).encode()
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.connect(s.listener_path)
            r = lib.ocirun_send_fd(sock.fileno(), fd, msg, len(msg))
            if r < 0:
                raise OSError(-r, posix.strerror(-r))
        finally:
            sock.close()
    except OSError as e:
        raise OciError(f"linux.seccomp.listenerPath {s.listener_path}", (e.strerror or str(e)).lower()) from None
    finally:
        posix.close(fd)


def create(o: CreateOpts, warn=None, cfg: config_mod.Config | None = None) -> tuple[dict, executor.Child | None]:  # noqa: ANN001
    """Create the container; returns its state data and (for `run`) the still-unreaped child.

    `cfg`: the bundle's config when the caller (`run`) already loaded it: parsed once per command."""
    state.check_id(o.cid)
    from ocirun import cgroups

    tr = ocirun.TRACER
    if cfg is None:
        t = tr and tr.now()
        cfg = config_mod.load(o.bundle)
        if tr:
            tr.step("config.load", t, fspath.join(o.bundle, "config.json"))
    if cfg.process is None:
        raise config_mod.bad("process", "is required to create a container")
    for w in cfg.warnings if warn else ():
        warn(w)
    if cfg.process.terminal and not o.console_socket and o.console_fd is None and not o.dry_run:
        raise OciError("process.terminal", "a terminal needs --console-socket")
    if not cfg.process.terminal and o.console_socket:
        raise OciError("--console-socket", "given but process.terminal is false")
    if o.dry_run:
        p = plan.compile_create(cfg, listen_fd=-1, console_fd=-1 if cfg.process.terminal else None,
                                preserve_fds=o.preserve_fds, no_pivot=o.no_pivot,
                                no_new_keyring=o.no_new_keyring, cgroup=None,
                                seccomp=_seccomp(cfg, o.root)[0])
        executor.check(p)
        print(p.describe())
        return {}, None
    if cfg.ns("mount") is None and cfg.mounts and warn:
        warn("no mount namespace: mounts are not applied (they would change the host's mounts)")
    d = state.make_dir(o.root, o.cid)
    lock = state.Lock(d, o.cid)
    mgr = child = None
    fds: list[int] = []
    try:
        t = tr and tr.now()
        mgr = cgroups.open_manager(cfg.linux.cgroups_path, o.cid, systemd=o.systemd_cgroup,
                                   annotations=cfg.annotations)
        if tr:
            tr.step("cgroup.find", t, f"{mgr.mode}: {len(mgr.paths())} hierarchies")
        if warn and (busy := mgr.pids()):  # runc 1.1 warns too (1.2 refuses)
            warn(f"container's cgroup is not empty: {len(busy)} process(es) found")
        mgr.create()
        try:
            mgr.apply(cfg.linux.resources, device_allow=_device_rules(cfg))
        except OciError as e:  # a linux.resources value (or the kernel's refusal of it): config.json's
            raise OciError("config.json", str(e)) if e.what.startswith("linux.resources") else e from None
        t = tr and tr.now()
        sec, sec_obj = _seccomp(cfg, o.root)
        if tr and sec:
            tr.step("seccomp.load", t, f"{len(sec[0]) // 8} BPF instructions (cache {o.root}/.seccomp-cache)")
        listen_fd = _listen(d)
        fds.append(listen_fd)
        console_fd = o.console_fd
        if o.console_socket:
            console_fd = _connect_console(o.console_socket)
            fds.append(console_fd)
        if o.console_size and cfg.process.console_size is None:
            cfg.process.console_size = o.console_size
        activated = _socket_activation()
        if activated:
            cfg.process.env.append(f"LISTEN_FDS={activated}")
        if fspath.getenv("NOTIFY_SOCKET") and cfg.ns("mount") is not None:
            from ocirun import sdnotify

            sdnotify.setup(cfg, d)  # /run/notify in the container, relayed by start (runc's notify socket)
        t = tr and tr.now()
        p = plan.compile_create(cfg, listen_fd=listen_fd, console_fd=console_fd,
                                preserve_fds=activated + o.preserve_fds,
                                no_pivot=o.no_pivot, no_new_keyring=o.no_new_keyring,
                                cgroup=mgr.to_state(), seccomp=sec)
        if tr:
            tr.step("plan.compile", t, f"{len(p.steps)} steps")
        if p.mount_sources:  # id-mapped bind sources, made with our privileges
            from ocirun import mountsrc

            t = tr and tr.now()
            fds += mountsrc.open_sources(p)
            if tr:
                tr.step("mount sources", t, f"{len(p.mount_sources)} id-mapped open_tree copies")
        data = {
            "ociVersion": cfg.oci_version, "id": o.cid, "status": "creating", "pid": 0,
            "bundle": cfg.bundle, "rootfs": cfg.root_path, "created": state.now_rfc3339(), "owner": "",
            "annotations": cfg.annotations, "start_time": 0, "cgroup": mgr.to_state(),
            "config": _kept_config(cfg), "notify": fspath.join(d, state.NOTIFY_SOCK),
        }
        cgroup_fd = mgr.clone_into_fd()
        if cgroup_fd is not None:
            fds.append(cgroup_fd)
        cgroups.prewarm_wait()
        child = executor.spawn(p, cgroup_fd=-1 if cgroup_fd is None else cgroup_fd)
        for fd in fds:
            posix.close(fd)
        fds = []
        _drive(child, cfg, mgr, data, sec_obj, cgroup_fd is not None)
        mgr.close()
        st = state.proc_stat(child.pid)
        data["pid"] = child.pid
        data["start_time"] = st[1] if st else 0
        data["status"] = "created"
        t = tr and tr.now()
        state.save(d, data)
        if o.pid_file:
            state.write_pid_file(o.pid_file, child.pid)
        child.close()
        if tr:
            tr.step("state.save", t, f"{d}/state.json: created, pid {child.pid}")
            tr.flush()
        return data, child
    except BaseException:
        for fd in fds:
            posix.close(fd)
        if child is not None:
            child.kill()
        if mgr is not None:
            mgr.close()
            try:
                mgr.destroy()
            except (OSError, OciError):
                pass  # the error that failed create is the one to report
        state.remove_dir(d)
        raise
    finally:
        lock.release()


def _drive(child: executor.Child, cfg: config_mod.Config, mgr, data: dict, sec_obj, placed: bool) -> None:  # noqa: ANN001
    """Answer the child's sync points until it reports ready (or an error)."""
    tr = ocirun.TRACER
    while True:
        t, v, payload = child.recv()
        if t == executor.MSG_SYNC and v == plan.SYNC_PLACED:
            if cfg.has_new_ns("user"):
                t0 = tr and tr.now()
                _write_id_maps(child.pid, cfg)
                if tr:
                    tr.step("id maps", t0, f"/proc/{child.pid}/uid_map, gid_map")
            if not placed:
                mgr.add_pid(child.pid)
            child.go()
        elif t == executor.MSG_SYNC and v == plan.SYNC_TIMENS:
            _write_time_offsets(child.pid, cfg)
            child.go()
        elif t == executor.MSG_PID:
            # The child forked into its new pid namespace; reap the intermediate, follow the new init.
            try:
                posix.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            child.pid = v
            if not placed:
                mgr.add_pid(v)
        elif t == executor.MSG_SYNC and v == plan.SYNC_HOOKS:
            from ocirun import hooks

            data["pid"] = child.pid
            # runtime-tools (hooks_stdin) and crun give prestart/createRuntime the status "created".
            st = state.hook_state(data, "created")
            hooks.run_hooks(cfg.hooks.get("prestart", []), "prestart", st, cfg.bundle)
            hooks.run_hooks(cfg.hooks.get("createRuntime", []), "createRuntime", st, cfg.bundle)
            in_container = cfg.hooks.get("createContainer") or cfg.hooks.get("startContainer")
            child.go(hooks.container_states(data, child.pid) if in_container else b"")
        elif t == executor.MSG_MOUNT:  # a bind source out of the init's reach (user namespace)
            from ocirun import mountsrc

            mountsrc.send_source(child, cfg, payload.decode(errors="replace"))
        elif t == executor.MSG_FD:
            fd = child.take_fd(v)
            data["pid"] = child.pid
            _send_listener(sec_obj, fd, state.hook_state(data, "creating"))
        elif t == executor.MSG_READY:
            return
        elif t == executor.MSG_ERROR:
            raise OciError("container init", payload.decode(errors="replace"))
        else:
            raise OciError("container init", child.died())


def _device_rules(cfg: config_mod.Config) -> list[dict]:
    """The rules after linux.resources.devices, in runc's order: its default allowed devices, less those a
    linux.devices entry of the same path replaces (runc's createDevices: the spec's entry takes priority).
    A linux.devices entry gets a node, not a rule: an explicit deny-all keeps denying it, as in runc; the
    config (or its client: podman, containerd) allows it in resources.devices."""
    listed = {d.path for d in cfg.linux.devices}
    replaced = {(ma, mi) for path, ma, mi in plan.DEFAULT_DEVICES if path in listed}
    if not replaced:
        return list(plan.DEFAULT_DEVICE_RULES)
    return [r for r in plan.DEFAULT_DEVICE_RULES if r["access"] != "rwm" or (r["major"], r["minor"]) not in replaced]


def _kept_config(cfg: config_mod.Config) -> dict:
    """What later commands need from config.json, copied so editing the bundle can't change them."""
    return {
        "hooks": {k: [h.to_json() for h in v] for k, v in cfg.hooks.items() if k in ("poststart", "poststop")},
        "process": cfg.process.raw if cfg.process else None,
        "namespaces": [{"type": n.type, "path": n.path} for n in cfg.linux.namespaces],
        "seccomp": cfg.linux.seccomp,
    }
