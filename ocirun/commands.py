"""One function per subcommand: turn parsed flags into calls on the lifecycle modules, print results."""

import posix
import sys

from ocirun import fspath, state
from ocirun.cli import Args, Output
from ocirun.errors import OciError, out_of_range


def _root(g: Args) -> str:
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


def _create_opts(g: Args, a: Args):  # noqa: ANN202
    from ocirun.create import CreateOpts

    return CreateOpts(
        _root(g), a.pos[0], bundle=a.bundle or ".", pid_file=a.pid_file, console_socket=a.console_socket,
        no_pivot=a.no_pivot, no_new_keyring=a.no_new_keyring,
        preserve_fds=int_flag(a.preserve_fds, "preserve-fds"), systemd_cgroup=g.systemd_cgroup,
        dry_run=a.dry_run,
    )


def cmd_create(g: Args, a: Args, out: Output) -> int:
    from ocirun.create import create

    create(_create_opts(g, a), out.warn)
    return 0


def cmd_start(g: Args, a: Args, out: Output) -> int:
    from ocirun.lifecycle import start

    relay = start(_root(g), a.pos[0], out.warn)
    if relay is not None:  # NOTIFY_SOCKET: start returns once the container is ready (runc)
        relay.forward(relay.pid)
    return 0


def cmd_state(g: Args, a: Args, out: Output) -> int:
    data = state.load(_root(g), a.pos[0])
    sys.stdout.write(_pretty(state.oci_state(data)) + "\n")
    return 0


def cmd_kill(g: Args, a: Args, out: Output) -> int:
    from ocirun.lifecycle import kill, parse_signal

    sig = parse_signal(a.pos[1]) if len(a.pos) > 1 else 15
    kill(_root(g), a.pos[0], sig, bool(a.all))
    return 0


def cmd_delete(g: Args, a: Args, out: Output) -> int:
    from ocirun.lifecycle import delete

    try:
        delete(_root(g), a.pos[0], bool(a.force), out.warn)
    except OciError as e:
        # As runc: --force on a missing container succeeds, so podman's cleanup after a failed create stays quiet.
        if not (a.force and e.why == "does not exist"):
            raise
    return 0


def cmd_run(g: Args, a: Args, out: Output) -> int:
    from ocirun.run import run

    return run(_create_opts(g, a), bool(a.detach), bool(a.keep), out)


def cmd_list(g: Args, a: Args, out: Output) -> int:
    root = _root(g)
    try:
        ids = sorted(posix.listdir(root))
    except FileNotFoundError:
        ids = []
    rows = []
    for cid in ids:
        if cid.startswith("."):
            continue
        try:
            data = state.load(root, cid)
        except OciError:
            continue
        rows.append(state.oci_state(data))
    fmt = a.format or "table"
    if a.quiet:
        sys.stdout.write("".join(r["id"] + "\n" for r in rows))
    elif fmt == "json":
        from ocirun import jsonio

        sys.stdout.write((jsonio.dumps(rows) if rows else "null") + "\n")
    elif fmt == "table":
        table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        table += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"] or "root")
                  for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(6)]
        for row in table:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    else:
        raise OciError("--format", f'invalid format "{fmt}"')
    return 0


def _manager(data: dict):  # noqa: ANN202
    from ocirun import cgroups

    return cgroups.from_state(data["cgroup"])


def cmd_ps(g: Args, a: Args, out: Output) -> int:
    data = state.load(_root(g), a.pos[0])
    if state.status(data) == "stopped":
        raise OciError(f'container "{a.pos[0]}"', "container not running")
    pids = _manager(data).pids()
    fmt = a.format or "table"
    if fmt == "json":
        from ocirun import jsonio

        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return 0
    if fmt != "table":
        raise OciError("--format", f'invalid format "{fmt}"')
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


def _running(g: Args, cid: str) -> tuple[str, dict, str]:
    root = _root(g)
    data = state.load(root, cid)
    return root, data, state.status(data)


def _set_paused(g: Args, cid: str, paused: bool) -> int:
    """Freeze or thaw the container's cgroup; state.json remembers it so `state` can say "paused"."""
    root, data, st = _running(g, cid)
    want = "running" if paused else "paused"
    if st != want:
        raise OciError(f'container "{cid}"', f"container not {want}: {st}")
    d = state.container_dir(root, cid)
    lock = state.Lock(d, cid)
    try:
        mgr = _manager(data)
        mgr.freeze() if paused else mgr.thaw()
        data["paused"] = paused
        state.save(d, data)
    finally:
        lock.release()
    return 0


def cmd_pause(g: Args, a: Args, out: Output) -> int:
    return _set_paused(g, a.pos[0], True)


def cmd_resume(g: Args, a: Args, out: Output) -> int:
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


def cmd_events(g: Args, a: Args, out: Output) -> int:
    import time

    from ocirun import jsonio

    root, data, st = _running(g, a.pos[0])
    if st == "stopped":
        raise OciError(f'container "{a.pos[0]}"', "container not running")
    mgr = _manager(data)
    cid = a.pos[0]
    if a.stats:
        sys.stdout.write(jsonio.dumps({"type": "stats", "id": cid, "data": mgr.stats()}) + "\n")
        return 0
    interval = _duration(a.interval or "5s")
    if interval <= 0:
        raise OciError("--interval", "duration interval must be greater than 0")
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

    while state.init_alive(data):
        now = time.monotonic()
        report_ooms()
        if now >= next_stats:
            sys.stdout.write(jsonio.dumps({"type": "stats", "id": cid, "data": mgr.stats()}) + "\n")
            sys.stdout.flush()
            next_stats = now + interval
        time.sleep(min(0.2, interval))
    report_ooms()  # the OOM kill that ended the container
    return 0


def cmd_update(g: Args, a: Args, out: Output) -> int:
    from ocirun.update import resources_from_args

    root, data, st = _running(g, a.pos[0])
    if st == "stopped":
        raise OciError(f'container "{a.pos[0]}"', "container not running")
    res = resources_from_args(a)
    lock = state.Lock(state.container_dir(root, a.pos[0]), a.pos[0])
    try:
        _manager(data).apply(res)
    finally:
        lock.release()
    return 0


def cmd_exec(g: Args, a: Args, out: Output) -> int:
    from ocirun.execute import exec_command

    return exec_command(_root(g), a, out)


def cmd_spec(g: Args, a: Args, out: Output) -> int:
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


def cmd_features(g: Args, a: Args, out: Output) -> int:
    from ocirun import jsonio
    from ocirun.features import features

    sys.stdout.write(jsonio.dumps_pretty(features()) + "\n")
    return 0


def cmd_validate(g: Args, a: Args, out: Output) -> int:
    from ocirun.validate import main

    return main(a.bundle or ".")
