"""`create`: config → plan → a container init waiting for `start`, with nothing left behind on failure."""

import posix

import ocirun
from ocirun import config as config_mod
from ocirun import executor, fspath, plan, state
from ocirun.errors import OciError


class CreateOpts:
    """What create/run were asked for (built by commands from the command line)."""

    __slots__ = ("root", "cid", "bundle", "config", "pid_file", "console_socket", "no_pivot", "no_new_keyring",
                 "preserve_fds", "systemd_cgroup", "cgroup_manager", "dry_run", "console_fd", "console_size")

    def __init__(self, root: str, cid: str, bundle: str = ".", **kw: object) -> None:
        self.root = root
        self.cid = cid
        self.bundle = bundle
        self.config = kw.get("config") or ""  # crun's --config FILE instead of <bundle>/config.json
        self.pid_file = kw.get("pid_file") or ""
        self.console_socket = kw.get("console_socket") or ""
        self.no_pivot = bool(kw.get("no_pivot"))
        self.no_new_keyring = bool(kw.get("no_new_keyring"))
        self.preserve_fds = int(kw.get("preserve_fds") or 0)
        self.systemd_cgroup = bool(kw.get("systemd_cgroup"))
        self.cgroup_manager = kw.get("cgroup_manager") or ("systemd" if self.systemd_cgroup else "cgroupfs")
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


def _seccomp(cfg: config_mod.Config, root: str) -> tuple[plan.SeccompFilter | None, object]:
    """The filter for the plan, and the seccomp module's object (its listener path, for SCMP_ACT_NOTIFY)."""
    sec = cfg.linux.seccomp
    if not sec:
        return None, None
    from ocirun.seccomp import load_cached

    try:
        s = load_cached(sec, fspath.join(root, ".seccomp-cache"))
    except OciError as e:
        raise OciError("config.json", str(e)) from None
    return plan.SeccompFilter(s.bpf, s.flags, s.notify), s


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


def create(o: CreateOpts, warn=None, cfg: config_mod.Config | None = None  # noqa: ANN001
           ) -> tuple[state.ContainerState | None, executor.Child | None]:
    """Create the container; returns its state and (for `run`) the still-unreaped child (None, None for
    --dry-run).

    `cfg`: the bundle's config when the caller (`run`) already loaded it: parsed once per command."""
    state.check_id(o.cid)
    from ocirun import cgroups

    tr = ocirun.TRACER
    if cfg is None:
        t = tr and tr.now()
        cfg = config_mod.load(o.bundle, o.config)
        if tr:
            tr.step("config.load", t, o.config or fspath.join(o.bundle, "config.json"))
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
        return None, None
    if cfg.ns("mount") is None and cfg.mounts and warn:
        warn("no mount namespace: mounts are not applied (they would change the host's mounts)")
    d = state.make_dir(o.root, o.cid)
    lock = state.Lock(d, o.cid)
    mgr = child = journal = None
    made_cgroup = False
    fds: list[int] = []
    try:
        t = tr and tr.now()
        mgr = _open_manager(cfg, o)
        if tr:
            tr.step("cgroup.find", t, f"{mgr.mode}: {len(mgr.paths())} hierarchies")
        st = state.ContainerState(
            o.cid, oci_version=cfg.oci_version, bundle=cfg.bundle, rootfs=cfg.root_path,
            created=state.now_rfc3339(), annotations=cfg.annotations, cgroup=mgr.to_state(),
            config=_kept_config(cfg), notify=fspath.join(d, state.NOTIFY_SOCK))
        # Before anything of the container exists: a create killed from here on is found by delete --force.
        journal = state.Journal(d, st.journal_head())
        if mgr.is_frozen():
            # runc's check (libcontainer.Create): else the child freezes as it joins and create never returns.
            raise OciError(f'container "{o.cid}"', "container's cgroup unexpectedly frozen")
        if warn and (busy := mgr.pids()):  # runc 1.1 warns too (1.2 refuses)
            warn(f"container's cgroup is not empty: {len(busy)} process(es) found")
        made_cgroup = True
        mgr.create()
        try:
            mgr.apply(cfg.linux.resources, device_allow=_device_rules(cfg))
        except OciError as e:  # a linux.resources value (or the kernel's refusal of it): config.json's
            raise OciError("config.json", str(e)) if e.what.startswith("linux.resources") else e from None
        t = tr and tr.now()
        sec, sec_obj = _seccomp(cfg, o.root)
        if tr and sec:
            tr.step("seccomp.load", t, f"{len(sec.bpf) // 8} BPF instructions (cache {o.root}/.seccomp-cache)")
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
        cgroup_fd = mgr.clone_into_fd()
        if cgroup_fd is not None:
            fds.append(cgroup_fd)
        cgroups.prewarm_wait()
        child = executor.spawn(p, cgroup_fd=-1 if cgroup_fd is None else cgroup_fd)
        for fd in fds:
            posix.close(fd)
        fds = []
        _drive(child, cfg, mgr, st, sec_obj, cgroup_fd is not None, journal, _forks_into_pidns(p))
        mgr.close()
        st.status = "created"
        t = tr and tr.now()
        state.save(d, st)
        journal.close()
        if o.pid_file:
            state.write_pid_file(o.pid_file, child.pid)
        child.close()
        if tr:
            tr.step("state.save", t, f"{d}/state.json: created, pid {child.pid}")
            tr.flush()
        return st, child
    except BaseException:
        for fd in fds:
            posix.close(fd)
        if journal is not None:
            journal.close()
        if child is not None:
            child.kill()
        if mgr is not None:
            mgr.close()
            try:
                if made_cgroup:
                    mgr.destroy()
            except (OSError, OciError):
                pass  # the error that failed create is the one to report
        state.remove_dir(d)
        raise
    finally:
        lock.release()


def _open_manager(cfg: config_mod.Config, o: CreateOpts):  # noqa: ANN202
    """The cgroup manager --cgroup-manager (or --systemd-cgroup) asks for; nothing is created yet."""
    if o.cgroup_manager == "disabled":
        from ocirun.cgroups.null import NullManager

        return NullManager()
    from ocirun import cgroups

    return cgroups.open_manager(cfg.linux.cgroups_path, o.cid, systemd=o.systemd_cgroup,
                                annotations=cfg.annotations)


def _forks_into_pidns(p: plan.Plan) -> bool:
    """The child forks the init into a new pid namespace before its first sync point (UNSHARE), so MSG_PID may
    come after SYNC_PLACED and the answer waits for it. (A joined one is entered by PIDNS_FORK after that
    point: nothing waits.)"""
    return any(s.op == "UNSHARE" and s.args[0] & plan.CLONE_NEWPID for s in p.steps)


def _record_init(st: state.ContainerState, journal: state.Journal, pid: int) -> None:
    """The init's pid and start time, in the journal before the init can outlive us (delete --force finds it)."""
    ps = state.proc_stat(pid)
    st.pid = pid
    st.start_time = ps[1] if ps else 0
    journal.add({"pid": pid, "start_time": st.start_time})


def _drive(child: executor.Child, cfg: config_mod.Config, mgr, st: state.ContainerState, sec_obj,  # noqa: ANN001
           placed: bool, journal: state.Journal, forks: bool) -> None:
    """Answer the child's sync points until it reports ready (or an error).

    The first sync point (SYNC_PLACED) comes before any step that lets the init outlive us, so the init's pid
    is recorded there; when the child forks into a new pid namespace the init's pid (MSG_PID, sent by the
    intermediate process) may arrive after it: the answer then waits for it."""
    tr = ocirun.TRACER
    attached = 0 if not placed else -1  # the pid put in the cgroup by add_pid (-1: clone placed it)
    waiting_placed = recorded = False
    while True:
        t, v, payload = child.recv()
        if t == executor.MSG_SYNC and v == plan.SYNC_PLACED:
            waiting_placed = True
        elif t == executor.MSG_SYNC and v == plan.SYNC_TIMENS:
            _write_time_offsets(child.pid, cfg)
            child.go()
        elif t == executor.MSG_PID:
            # The child forked into its pid namespace. Before SYNC_PLACED (a new one, UNSHARE) the new process
            # is placed there; after it (a joined one, PIDNS_FORK) it was born in the cgroup and is the init
            # to record now.
            child.follow(v)
            forks = False
            if attached > 0:
                attached = v
            if recorded:
                _record_init(st, journal, v)
        elif t == executor.MSG_SYNC and v == plan.SYNC_HOOKS:
            from ocirun import hooks

            # runtime-tools (hooks_stdin) and crun give prestart/createRuntime the status "created".
            hs = st.hook_json("created")
            hooks.run_hooks(cfg.hooks.get("prestart", []), "prestart", hs, cfg.bundle)
            hooks.run_hooks(cfg.hooks.get("createRuntime", []), "createRuntime", hs, cfg.bundle)
            in_container = cfg.hooks.get("createContainer") or cfg.hooks.get("startContainer")
            child.go(hooks.container_states(st, child.pid) if in_container else b"")
        elif t == executor.MSG_MOUNT:  # a bind source out of the init's reach (user namespace)
            from ocirun import mountsrc

            mountsrc.send_source(child, cfg, payload.decode(errors="replace"))
        elif t == executor.MSG_FD:
            fd = child.take_fd(v)
            _send_listener(sec_obj, fd, st.hook_json("creating"))
        elif t == executor.MSG_READY:
            return
        elif t == executor.MSG_ERROR:
            raise OciError("container init", payload.decode(errors="replace"))
        else:
            raise OciError("container init", child.died())
        if waiting_placed and not forks:
            waiting_placed = False
            _record_init(st, journal, child.pid)
            recorded = True
            if cfg.has_new_ns("user"):
                t0 = tr and tr.now()
                _write_id_maps(child.pid, cfg)
                if tr:
                    tr.step("id maps", t0, f"/proc/{child.pid}/uid_map, gid_map")
            if attached >= 0 and attached != child.pid:
                mgr.add_pid(child.pid)
                attached = child.pid
            child.go()


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


def _kept_config(cfg: config_mod.Config) -> state.KeptConfig:
    """What later commands need from config.json, copied so editing the bundle can't change them."""
    return state.KeptConfig(
        {k: [h.to_json() for h in v] for k, v in cfg.hooks.items() if k in ("poststart", "poststop")},
        cfg.process.raw if cfg.process else None,
        [{"type": n.type, "path": n.path} for n in cfg.linux.namespaces],
        cfg.linux.seccomp,
    )
