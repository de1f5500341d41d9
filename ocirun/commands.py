"""One function per subcommand: turn parsed flags into option records and calls on the modules below, print
results. Data flows CLI → commands → operations: the operations (create, run, lifecycle, execute, update) get
option records and a `warn` callable, never the CLI's Args or Output."""

import posix
import sys

from ocirun import fspath, state
from ocirun.errors import OciError, out_of_range

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: commands never imports the CLI that calls it
    from ocirun.cli import Args, Output


def _root(g: "Args") -> str:
    return fspath.abspath(g.root or state.DEFAULT_ROOT)


def int_flag(v: str | None, name: str) -> int:
    if v is None:
        return 0
    try:
        n = int(v)
    except ValueError:
        raise OciError(f"--{name}", f'invalid number "{v}"') from None
    if n < 0:
        raise OciError(f"--{name}", "must not be negative")
    if n > 1 << 30:  # fs.nr_open's ceiling: no process has more fds (and the plan's ints are 64-bit)
        raise OciError(f"--{name}", out_of_range(n, 0, 1 << 30))
    return n


def flag_values(a: "Args", names: tuple[str, ...]) -> dict:
    """The named flags of `a` (each must be one the command's table defines) for an option record."""
    return {n: getattr(a, n) for n in names}


def _pretty(obj: object, ind: str = "") -> str:
    """Indented JSON like runc's MarshalIndent, without importing json on the state path."""
    from ocirun import jsonio

    if isinstance(obj, dict) and obj:
        inner = ind + "  "
        items = ",\n".join(f"{inner}{jsonio.dumps(k)}: {_pretty(v, inner)}" for k, v in obj.items())
        return "{\n" + items + "\n" + ind + "}"
    if isinstance(obj, list) and obj:
        inner = ind + "  "
        return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in obj) + "\n" + ind + "]"
    return jsonio.dumps(obj)


def _create_opts(g: "Args", a: "Args", dry_run: bool = False):  # noqa: ANN202
    from ocirun.create import CreateOpts

    return CreateOpts(
        _root(g), a.pos[0], bundle=a.bundle or ".", config=a.config, pid_file=a.pid_file,
        console_socket=a.console_socket, no_pivot=a.no_pivot, no_new_keyring=a.no_new_keyring,
        preserve_fds=int_flag(a.preserve_fds, "preserve-fds"), systemd_cgroup=g.systemd_cgroup,
        cgroup_manager=g.cgroup_manager, dry_run=dry_run,
    )


def cmd_create(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.create import create

    create(_create_opts(g, a, bool(a.dry_run)), out.warn)
    return 0


def cmd_start(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.lifecycle import start

    relay = start(_root(g), a.pos[0], out.warn)
    if relay is not None:  # NOTIFY_SOCKET: start returns once the container is ready (runc)
        relay.forward(relay.pid)
    return 0


def cmd_state(g: "Args", a: "Args", out: "Output") -> int:
    st = state.load(_root(g), a.pos[0])
    oci = st.oci()
    _step("state.load", f"{a.pos[0]}: {oci['status']}, init pid {oci['pid']}")
    sys.stdout.write(_pretty(oci) + "\n")
    return 0


def _step(name: str, detail: str) -> None:
    """A --trace/--debug line for what a command found (nothing is formatted unless one is on)."""
    import ocirun

    if ocirun.TRACER:
        ocirun.TRACER.point(name, detail)


def cmd_kill(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.lifecycle import kill, parse_signal

    sig = parse_signal(a.pos[1]) if len(a.pos) > 1 else 15
    kill(_root(g), a.pos[0], sig, bool(a.all))
    return 0


def cmd_delete(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.lifecycle import delete

    try:
        delete(_root(g), a.pos[0], bool(a.force), out.warn)
    except OciError as e:
        # As runc: --force on a missing container succeeds, so podman's cleanup after a failed create stays quiet.
        if not (a.force and e.why == "does not exist"):
            raise
    return 0


def cmd_run(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.run import run

    return run(_create_opts(g, a), bool(a.detach), bool(a.keep), out.warn)


def _owner(d: str) -> str:
    """The state directory's owner by name, as runc's list shows it ("#uid" when the name is unknown)."""
    try:
        uid = posix.stat(d).st_uid
    except OSError:
        return ""
    if uid == 0:
        return "root"
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"#{uid}"


def cmd_list(g: "Args", a: "Args", out: "Output") -> int:
    root = _root(g)
    fmt = a.format or "table"
    if fmt not in ("table", "json"):
        raise OciError("--format", f'invalid format "{fmt}"')
    try:
        ids = sorted(posix.listdir(root))
    except FileNotFoundError:
        ids = []
    rows = []
    for cid in ids:
        if cid.startswith("."):
            continue
        try:
            st, damaged = state.load_for_cleanup(root, cid)
        except OciError:
            continue  # removed meanwhile, or not a container's directory
        if damaged:
            # As runc ("load container X: ..."), but a container create recorded is still listed.
            shown = "listed from its create journal" if st else "not listed"
            out.warn(f'container "{cid}": {damaged} ({shown}; delete --force removes it)')
        if st is None:
            continue
        row = st.oci()
        row["owner"] = row["owner"] or _owner(fspath.join(root, cid))
        rows.append(row)
    _step("list", f"{root}: {len(rows)} containers")
    if a.quiet:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif fmt == "json":
        from ocirun import jsonio

        sys.stdout.write((jsonio.dumps(rows) if rows else "null") + "\n")
    else:
        table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(6)]
        for row in table:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return 0


def _pids(st: state.ContainerState, status: str) -> list[int]:
    """The container's processes: none once stopped (as runc's ps), the init alone without a cgroup."""
    if status == "stopped":
        return []
    mgr = st.manager()
    if mgr.mode == "disabled":
        return [st.pid] if st.alive() else []
    return mgr.pids()


def cmd_ps(g: "Args", a: "Args", out: "Output") -> int:
    fmt = a.format or "table"
    if fmt not in ("table", "json"):
        raise OciError("--format", f'invalid format "{fmt}"')
    st = state.load(_root(g), a.pos[0])
    pids = _pids(st, st.current_status())
    if fmt == "json":
        from ocirun import jsonio

        # (runc prints null, Go's empty list, for a stopped container)
        sys.stdout.write((jsonio.dumps(pids) if pids else "null") + "\n")
        return 0
    import subprocess

    ps_args = a.pos[1:] or ["-ef"]
    try:
        res = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise OciError("ps", str(e)) from None
    lines = res.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise OciError("ps", "output has no PID column")
    col = header.index("PID")
    sys.stdout.write(lines[0] + "\n")
    want = set(pids)
    for ln in lines[1:]:
        f = ln.split()
        if len(f) > col and f[col].isdigit() and int(f[col]) in want:
            sys.stdout.write(ln + "\n")
    return 0


def _set_paused(g: "Args", cid: str, paused: bool) -> int:
    """Freeze or thaw the container's cgroup; state.json remembers it so `state` can say "paused"."""
    root = _root(g)
    d = state.container_dir(root, cid)
    lock = state.Lock(d, cid)
    try:
        st = state.load(root, cid)
        cur = st.current_status()
        want = "running" if paused else "paused"
        if cur != want:
            raise OciError(f'container "{cid}"', f"container not {want}: {cur}")
        mgr = st.manager()
        st.paused = paused
        if paused:
            state.save(d, st)  # first: a pause that cannot be recorded is not made
            try:
                mgr.freeze()
            except BaseException:
                st.paused = False
                state.save(d, st)
                raise
        else:
            mgr.thaw()
            state.save(d, st)
    finally:
        lock.release()
    return 0


def cmd_pause(g: "Args", a: "Args", out: "Output") -> int:
    return _set_paused(g, a.pos[0], True)


def cmd_resume(g: "Args", a: "Args", out: "Output") -> int:
    return _set_paused(g, a.pos[0], False)


def _duration(s: str) -> float:
    """Go-style durations: 5s, 100ms, 1m, 1h30m, or a bare number of seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    try:
        return float(s)
    except ValueError:
        pass
    total, num, i = 0.0, "", 0
    while i < len(s):
        ch = s[i]
        if ch.isdigit() or ch == ".":
            num += ch
            i += 1
            continue
        u = s[i : i + 2] if s[i : i + 2] in units else ch
        if u not in units or not num:
            raise OciError(f'duration "{s}"', "invalid duration")
        total += float(num) * units[u]
        num = ""
        i += len(u)
    if num:
        raise OciError(f'duration "{s}"', "missing unit")
    return total


def _running(g: "Args", cid: str) -> state.ContainerState:
    """A container that runs (created, running or paused), else runc's "container not running"."""
    st = state.load(_root(g), cid)
    if st.current_status() in ("stopped", "creating"):
        raise OciError(f'container "{cid}"', "container not running")
    return st


def cmd_events(g: "Args", a: "Args", out: "Output") -> int:
    import time

    from ocirun import jsonio

    cid = a.pos[0]
    interval = _duration(a.interval or "5s")
    if interval <= 0:
        raise OciError("--interval", "duration interval must be greater than 0")
    st = _running(g, cid)
    mgr = st.manager()
    if a.stats:
        sys.stdout.write(jsonio.dumps({"type": "stats", "id": cid, "data": mgr.stats()}) + "\n")
        return 0
    ooms = mgr.oom_kill_count()
    next_stats = 0.0
    import gc

    gc.enable()  # a stream runs for as long as the container: collect cycles again (see install_launcher)

    def report_ooms() -> None:
        nonlocal ooms
        n = mgr.oom_kill_count()
        if n > ooms:
            ooms = n
            sys.stdout.write(jsonio.dumps({"type": "oom", "id": cid}) + "\n")
            sys.stdout.flush()

    while st.alive():
        now = time.monotonic()
        report_ooms()
        if now >= next_stats:
            sys.stdout.write(jsonio.dumps({"type": "stats", "id": cid, "data": mgr.stats()}) + "\n")
            sys.stdout.flush()
            next_stats = now + interval
        time.sleep(min(0.2, interval))
    report_ooms()  # the OOM kill that ended the container
    return 0


def cmd_update(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.update import UpdateOpts, resources_from_opts

    cid = a.pos[0]
    res = resources_from_opts(UpdateOpts(**flag_values(a, UpdateOpts.__slots__)))
    root = _root(g)
    lock = state.Lock(state.container_dir(root, cid), cid)
    try:
        st = _running(g, cid)
        mgr = st.manager()
        if mgr.mode == "disabled":
            raise mgr.refuse(f'container "{cid}": update')
        mgr.apply(res)
    finally:
        lock.release()
    return 0


def cmd_exec(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.execute import ExecOpts, exec_command

    flags = flag_values(a, ExecOpts.FLAGS)
    flags["preserve_fds"] = int_flag(a.preserve_fds, "preserve-fds")
    return exec_command(ExecOpts(_root(g), a.pos[0], a.pos[1:], **flags), out.warn)


def cmd_spec(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun import jsonio
    from ocirun.specgen import default_spec

    path = fspath.join(a.bundle or ".", "config.json")
    if fspath.exists(path):
        raise OciError(path, "file exists; remove it first")
    try:
        with open(path, "x") as f:
            f.write(jsonio.dumps_pretty(default_spec(rootless=bool(a.rootless))) + "\n")
    except OSError as e:
        raise OciError(path, (e.strerror or str(e)).lower()) from None
    return 0


def cmd_features(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun import jsonio
    from ocirun.features import features

    sys.stdout.write(jsonio.dumps_pretty(features()) + "\n")
    return 0


def cmd_validate(g: "Args", a: "Args", out: "Output") -> int:
    from ocirun.validate import main

    return main(a.bundle or ".")
