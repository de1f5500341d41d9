"""runc-compatible command line: a small table-driven parser (argparse costs ~10 ms per call) and dispatch.

Flags may be written --flag value, --flag=value or Go style -flag; global flags come before the command.
Every user-caused failure is one `ocirun: <what>: <why>` line on stderr (and one JSON line in --log).
"""

import posix
import sys

from ocirun import fspath
from ocirun.errors import OciError, one_line

# Global flags: name -> (key, takes a value: True, False, "*" repeatable, "?" only as --flag=value)
GLOBAL = {
    "root": ("root", True), "log": ("log", True), "log-format": ("log_format", True), "debug": ("debug", False),
    "systemd-cgroup": ("systemd_cgroup", False), "rootless": ("rootless", True),
    "cgroup-manager": ("cgroup_manager", True), "criu": ("criu", True), "trace": ("trace", "?"),
    "help": ("help", False), "h": ("help", False), "version": ("version", False), "v": ("version", False),
}
_COMMON_CREATE = {
    "bundle": ("bundle", True), "b": ("bundle", True), "pid-file": ("pid_file", True),
    "console-socket": ("console_socket", True), "no-pivot": ("no_pivot", False),
    "no-new-keyring": ("no_new_keyring", False), "preserve-fds": ("preserve_fds", True),
    "pidfd-socket": ("pidfd_socket", True), "config": ("config", True), "f": ("config", True),
}
# command -> (flags, min positionals, max positionals (-1: rest are args), usage)
COMMANDS: dict[str, tuple[dict, int, int, str]] = {
    "create": ({**_COMMON_CREATE, "dry-run": ("dry_run", False)}, 1, 1, "create [options] <id>"),
    "run": ({**_COMMON_CREATE, "detach": ("detach", False), "d": ("detach", False), "keep": ("keep", False),
             "no-subreaper": ("no_subreaper", False)}, 1, 1, "run [options] <id>"),
    "start": ({}, 1, 1, "start <id>"),
    "state": ({}, 1, 1, "state <id>"),
    "kill": ({"all": ("all", False), "a": ("all", False)}, 1, 2, "kill [--all] <id> [signal]"),
    "delete": ({"force": ("force", False), "f": ("force", False)}, 1, 1, "delete [--force] <id>"),
    "list": ({"format": ("format", True), "f": ("format", True), "quiet": ("quiet", False),
              "q": ("quiet", False)}, 0, 0, "list [--format table|json] [--quiet]"),
    "ps": ({"format": ("format", True), "f": ("format", True)}, 1, -1, "ps [--format table|json] <id> [ps args]"),
    "pause": ({}, 1, 1, "pause <id>"),
    "resume": ({}, 1, 1, "resume <id>"),
    "events": ({"stats": ("stats", False), "interval": ("interval", True)}, 1, 1,
               "events [--stats] [--interval 5s] <id>"),
    "update": ({"resources": ("resources", True), "r": ("resources", True), "memory": ("memory", True),
                "memory-swap": ("memory_swap", True), "memory-reservation": ("memory_reservation", True),
                "kernel-memory": ("kernel_memory", True), "kernel-memory-tcp": ("kernel_memory_tcp", True),
                "cpu-quota": ("cpu_quota", True), "cpu-period": ("cpu_period", True),
                "cpu-shares": ("cpu_shares", True), "cpu-share": ("cpu_shares", True),
                "cpu-rt-period": ("cpu_rt_period", True),
                "cpu-rt-runtime": ("cpu_rt_runtime", True), "cpuset-cpus": ("cpuset_cpus", True),
                "cpuset-mems": ("cpuset_mems", True), "pids-limit": ("pids_limit", True),
                "blkio-weight": ("blkio_weight", True), "l3-cache-schema": ("l3_cache_schema", True),
                "mem-bw-schema": ("mem_bw_schema", True), "cpu-idle": ("cpu_idle", True),
                "cpu-burst": ("cpu_burst", True)}, 1, 1, "update [options] <id>"),
    "exec": ({"process": ("process", True), "p": ("process", True), "detach": ("detach", False),
              "d": ("detach", False), "pid-file": ("pid_file", True), "tty": ("tty", False), "t": ("tty", False),
              "console-socket": ("console_socket", True), "cwd": ("cwd", True), "env": ("env", "*"),
              "e": ("env", "*"), "user": ("user", True), "u": ("user", True),
              "additional-gids": ("additional_gids", "*"), "g": ("additional_gids", "*"),
              "cap": ("cap", "*"), "c": ("cap", "*"), "no-new-privs": ("no_new_privs", False),
              "preserve-fds": ("preserve_fds", True), "process-label": ("process_label", True),
              "apparmor": ("apparmor", True), "ignore-paused": ("ignore_paused", False),
              "cgroup": ("cgroup", "*"), "pidfd-socket": ("pidfd_socket", True)}, 1, -1,
             "exec [options] <id> [command args...]"),
    "spec": ({"bundle": ("bundle", True), "b": ("bundle", True), "rootless": ("rootless", False)}, 0, 0,
             "spec [--bundle dir] [--rootless]"),
    "features": ({}, 0, 0, "features"),
    "validate": ({"bundle": ("bundle", True), "b": ("bundle", True)}, 0, 0, "validate [--bundle dir]"),
}
TRUE_VALUES = ("true", "1", "t", "yes")
WARM_COMMANDS = ("create", "run", "exec")  # cgroups.prewarm_attach first (tools/launcher.c reads this too)


CGROUP_MANAGERS = ("cgroupfs", "systemd", "disabled")


class Args:
    """The flags of one table as attributes (None when not given) plus positionals.

    Every flag the table defines exists, and nothing else: reading a name no table defines (a misspelt flag)
    raises AttributeError instead of reading as "not given"."""

    def __init__(self, table: dict | None = None) -> None:
        self.pos: list[str] = []
        self.help: str | bool | None = None
        for key, _takes in (table or {}).values():
            setattr(self, key, None)


def _parse_flags(argv: list[str], table: dict, out: Args, stop_at_positional: bool, max_pos: int) -> list[str]:
    """Consume flags from argv into `out`; returns positionals (and, for exec/ps, the trailing args)."""
    pos: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            pos.extend(argv[i + 1 :])
            break
        if a.startswith("-") and len(a) > 1 and not (max_pos == -1 and pos):
            name, eq, val = a.lstrip("-").partition("=")
            if name not in table:
                if stop_at_positional:
                    break
                raise OciError(f"flag {a}", "flag provided but not defined")
            key, takes = table[name]
            if takes == "?":
                setattr(out, key, val if eq else True)
            elif takes:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise OciError(f"flag {a}", "needs an argument")
                    val = argv[i]
                if takes == "*":
                    getattr(out, key) or setattr(out, key, [])
                    out.__dict__[key].append(val)
                else:
                    setattr(out, key, val)
            else:
                setattr(out, key, val.lower() in TRUE_VALUES if eq else True)
        else:
            if stop_at_positional:
                break
            pos.append(a)
        i += 1
    else:
        i = len(argv)
    if stop_at_positional:
        out.pos = argv[i:]
    return pos


def parse(argv: list[str]) -> tuple[Args, str, Args]:
    g = Args(GLOBAL)
    _parse_flags(argv, GLOBAL, g, True, 0)
    _check_globals(g)
    rest = g.pos
    if not rest:
        return g, "", Args()
    cmd = rest[0]
    if cmd not in COMMANDS:
        raise OciError(f'command "{cmd}"', "no such command")
    table, lo, hi, usage = COMMANDS[cmd]
    a = Args(table)
    if "help" in rest[1:2] or "--help" in rest[1:] or "-h" in rest[1:2]:
        a.help = usage
        return g, cmd, a
    a.pos = _parse_flags(rest[1:], table, a, False, hi)
    if len(a.pos) < lo or (hi >= 0 and len(a.pos) > hi):
        raise OciError(cmd, f"wrong number of arguments; usage: ocirun {usage}")
    return g, cmd, a


def _check_globals(g: Args) -> None:
    """Global flags whose values are checked before any command runs (runc refuses them up front)."""
    if g.log_format not in (None, "text", "json"):
        raise OciError("--log-format", f'invalid log format "{g.log_format}" (text or json)')
    if g.cgroup_manager is not None:
        if g.cgroup_manager not in CGROUP_MANAGERS:
            raise OciError("--cgroup-manager", f'unknown cgroup manager "{g.cgroup_manager}" '
                           "(cgroupfs, systemd or disabled)")
        if g.cgroup_manager == "systemd":
            g.systemd_cgroup = True  # crun's spelling of --systemd-cgroup
        elif g.systemd_cgroup:
            raise OciError("--cgroup-manager", f"{g.cgroup_manager} conflicts with --systemd-cgroup")


class Output:
    """Where errors, warnings and (with --debug) debug lines go: the --log file in text or JSON, else stderr.

    As runc: the --log file is opened (created) by every command; without --debug it gets only warnings and
    errors (podman reads a failed command's log as one JSON object); errors are also printed on stderr as one
    `ocirun: <what>: <why>` line. With --debug and no --log, debug lines go to stderr."""

    def __init__(self, g: Args | None = None) -> None:
        self.log = (g and g.log) or ""
        if self.log.startswith("file:"):
            self.log = self.log[5:]
        self.json = bool(g and g.log_format == "json")
        self.debug_on = bool(g and g.debug)
        self.fd = -1
        if self.log:
            try:
                self.fd = posix.open(self.log, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC,
                                     0o644)
            except OSError as e:
                self.log = ""
                raise OciError(f"--log {g.log}", (e.strerror or str(e)).lower()) from None

    def _line(self, level: str, msg: str) -> bytes:
        from ocirun import jsonio, state

        t = state.now_rfc3339()
        if self.json:
            return (jsonio.dumps({"level": level, "msg": msg, "time": t}) + "\n").encode()
        return f'time="{t}" level={level} msg={jsonio.dumps(msg)}\n'.encode()

    def _write_log(self, level: str, msg: str) -> None:
        if self.fd >= 0:
            try:
                posix.write(self.fd, self._line(level, msg))
            except OSError:
                pass

    def error(self, msg: str) -> None:
        msg = one_line(msg)  # whatever a value in it holds, an error is one line
        self._write_log("error", msg)
        try:
            posix.write(2, f"ocirun: {msg}\n".encode())
        except OSError:
            pass

    def warn(self, msg: str) -> None:
        msg = one_line(msg)
        self._write_log("warning", msg)
        try:
            posix.write(2, f"ocirun: warning: {msg}\n".encode())
        except OSError:
            pass

    def debug(self, msg: str) -> None:
        """One `level=debug` line (callers check debug_on first: nothing is formatted otherwise)."""
        if self.fd >= 0:
            self._write_log("debug", msg)
        else:
            try:
                posix.write(2, self._line("debug", msg))
            except OSError:
                pass


def _version() -> str:
    from ocirun import SPEC_VERSION, __version__

    return f"ocirun version {__version__}\ncommit: none\nspec: {SPEC_VERSION}\n"


def _usage(cmd: str = "") -> str:
    from ocirun import helptext

    return helptext.command_usage(cmd, COMMANDS[cmd][0]) if cmd else helptext.usage(GLOBAL, COMMANDS)


def _trace_mode(g: Args) -> str:
    """"text", "json" or "" (off), from --trace[=json] or OCIRUN_TRACE=1|json."""
    v = g.trace
    if v is None:
        v = fspath.getenv("OCIRUN_TRACE")
    if v is True:
        return "text"
    v = str(v).lower()
    if v == "json":
        return "json"
    return "" if v in ("", "0", "false", "no", "off") else "text"


def run(argv: list[str]) -> int:
    try:
        return _run(argv)
    finally:
        import ocirun

        if ocirun.TRACER is not None:
            ocirun.TRACER.flush(final=True)
            ocirun.TRACER = None


def _run(argv: list[str]) -> int:
    out = Output()
    try:
        g, cmd, a = parse(argv)
        out = Output(g)
        mode = _trace_mode(g)
        if mode or out.debug_on:
            import ocirun
            from ocirun.tracer import Tracer

            # --debug: the same steps as --trace, one level=debug line each (the tracer is imported only then).
            ocirun.TRACER = Tracer(mode, ocirun.T0, out.debug if out.debug_on else None)
            ocirun.TRACER.step("start-up", ocirun.T0, f"ocirun {' '.join(argv)}"[:160])
        if g.version:
            sys.stdout.write(_version())
            return 0
        if not cmd or g.help:
            sys.stdout.write(_usage())
            return 0 if g.help else 1
        if a.help:
            sys.stdout.write(_usage(cmd))
            return 0
        if g.systemd_cgroup and not fspath.isdir("/run/systemd/system"):
            raise OciError("--systemd-cgroup", "systemd is not running on this host (no /run/systemd/system)")
        if cmd in WARM_COMMANDS and not (cmd == "create" and a.dry_run):
            from ocirun import cgroups

            # First thing (and only here): the longer it runs beside our work, the less we wait.
            cgroups.prewarm_attach()
        from ocirun import commands

        return getattr(commands, "cmd_" + cmd)(g, a, out)
    except OciError as e:
        _fail(out, str(e))
        return e.status
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: still one line, the traceback only with --debug
        if out.debug_on:
            import traceback

            traceback.print_exc()
        _fail(out, f"internal error: {type(e).__name__}: {e}")
        return 1


def _fail(out: Output, msg: str) -> None:
    """The error line, after the steps that led to it (--trace, --debug)."""
    import ocirun

    if ocirun.TRACER is not None:
        ocirun.TRACER.flush(final=True)
    out.error(msg)


def main(warm_pid: int = 0) -> None:
    """Entry point; `warm_pid`: the C launcher's child that started the first cgroup attach's grace period."""
    if warm_pid > 0:
        import ocirun

        ocirun.WARM_PID = warm_pid
    status = run(sys.argv[1:])
    # Interpreter teardown (freeing every module and object) costs several ms and does nothing for us:
    # flush what we printed and leave. A failed flush exits 120, as the interpreter's own exit would.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        status = 120
    posix._exit(status & 0xFF)


if __name__ == "__main__":
    main()
