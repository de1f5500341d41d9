"""What `ocirun --help`, `ocirun COMMAND --help` and the ocirun(8) man page say: one source for all three.

The flags themselves come from cli.GLOBAL and cli.COMMANDS (what the parser accepts, passed in: this module
sits below the CLI and imports nothing of it); this module only adds the words. tests/test_helptext.py fails
when a flag has no description or a description names no flag, so the help can't drift from the parser.
Imported only for help and for `make install` (the man page).
"""

from ocirun.state import DEFAULT_ROOT

SUMMARY = "an OCI container runtime (runc-compatible command line)"

# command -> (one line, what its positionals are)
COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("create a container: its init waits for `start`", "<container-id>"),
    "run": ("create and start a container, wait for it and delete it (unless --detach or --keep)",
            "<container-id>"),
    "start": ("start the user's process in a created container", "<container-id>"),
    "state": ("print the container's state as runtime-spec JSON", "<container-id>"),
    "kill": ("send a signal (default SIGTERM) to the container's init", "<container-id> [signal]"),
    "delete": ("delete a stopped container and everything it holds", "<container-id>"),
    "list": ("list the containers under --root", ""),
    "ps": ("list the processes of a container", "<container-id> [ps options]"),
    "pause": ("freeze every process of the container", "<container-id>"),
    "resume": ("thaw a paused container", "<container-id>"),
    "events": ("print resource statistics and OOM events of a container", "<container-id>"),
    "update": ("change the resource limits of a running container", "<container-id>"),
    "exec": ("run one more process in a running container",
             "<container-id> <command> [args...]  |  --process process.json <container-id>"),
    "spec": ("write a default config.json (for a bundle with a rootfs/ directory)", ""),
    "features": ("print what this runtime supports (runtime-spec features.md JSON)", ""),
    "validate": ("check a bundle's config.json against the schema and the runtime's rules", ""),
}

# global key (cli.GLOBAL) -> (value name or "", description)
GLOBAL: dict[str, tuple[str, str]] = {
    "root": ("DIR", f"state directory for containers (default {DEFAULT_ROOT}, "
                    "$XDG_RUNTIME_DIR/ocirun when rootless)"),
    "log": ("FILE", "write the runtime's log to FILE (`file:FILE` accepted)"),
    "log_format": ("text|json", "format of the --log lines (json: one {\"level\",\"msg\",\"time\"} object a line)"),
    "debug": ("", "a level=debug line per runtime step in the --log file (else stderr), tracebacks of "
                  "internal errors"),
    "systemd_cgroup": ("", "manage cgroups through systemd (cgroupsPath slice:prefix:name)"),
    "rootless": ("auto|true|false", "run without root: ignore cgroup permission errors (as runc)"),
    "cgroup_manager": ("cgroupfs|systemd|disabled", "crun's name for the cgroup driver (systemd: as "
                       "--systemd-cgroup; disabled: no cgroup for the container)"),
    "criu": ("PATH", "the criu binary for checkpoint/restore"),
    "trace": ("[=json]", "time every step of the runtime and the container's init (also OCIRUN_TRACE=1|json)"),
    "help": ("", "show this help"),
    "version": ("", "print the version"),
}

# command -> {flag key (cli.COMMANDS) -> (value name or "", description)}
_CREATE = {
    "bundle": ("DIR", "the bundle: config.json and its root filesystem (default: the current directory)"),
    "pid_file": ("FILE", "write the init's pid to FILE"),
    "console_socket": ("SOCKET", "AF_UNIX socket that receives the pty master when process.terminal is true"),
    "no_pivot": ("", "MS_MOVE and chroot instead of pivot_root (for a rootfs on a ramdisk)"),
    "no_new_keyring": ("", "keep the caller's session keyring instead of a new one"),
    "preserve_fds": ("N", "pass fds 3..3+N-1 to the container's process"),
    "pidfd_socket": ("SOCKET", "AF_UNIX socket that receives a pidfd of the init"),
    "config": ("FILE", "read the config from FILE instead of <bundle>/config.json (crun's --config)"),
}
FLAGS: dict[str, dict[str, tuple[str, str]]] = {
    "create": {**_CREATE, "dry_run": ("", "print the plan the init would carry out; create nothing")},
    "run": {**_CREATE, "detach": ("", "return once the container runs (it is not waited for or deleted)"),
            "keep": ("", "do not delete the container when it exits"),
            "no_subreaper": ("", "accepted for runc compatibility")},
    "start": {}, "state": {}, "pause": {}, "resume": {}, "features": {},
    "kill": {"all": ("", "signal every process of the container's cgroup")},
    "delete": {"force": ("", "kill a running container first; a missing container is not an error")},
    "list": {"format": ("table|json", "output format (default table)"), "quiet": ("", "print the ids only")},
    "ps": {"format": ("table|json", "json: the pids; table: ps(1) output limited to the container")},
    "events": {"stats": ("", "print the statistics once and exit"),
               "interval": ("DURATION", "time between statistics in the stream (default 5s)")},
    "update": {
        "resources": ("FILE", "a linux.resources JSON object (- for stdin)"),
        "memory": ("BYTES", "memory limit"), "memory_swap": ("BYTES", "memory plus swap limit"),
        "memory_reservation": ("BYTES", "memory soft limit"), "kernel_memory": ("BYTES", "kernel memory limit"),
        "kernel_memory_tcp": ("BYTES", "kernel TCP buffer limit"),
        "cpu_quota": ("USEC", "CPU time per period (CFS quota)"), "cpu_period": ("USEC", "CFS period"),
        "cpu_shares": ("N", "relative CPU weight"), "cpu_rt_period": ("USEC", "realtime period"),
        "cpu_rt_runtime": ("USEC", "realtime runtime per period"), "cpuset_cpus": ("LIST", "CPUs allowed"),
        "cpuset_mems": ("LIST", "memory nodes allowed"), "pids_limit": ("N", "maximum number of tasks"),
        "blkio_weight": ("N", "relative block IO weight (10-1000)"),
        "l3_cache_schema": ("SCHEMA", "Intel RDT L3 cache schema"), "mem_bw_schema": ("SCHEMA", "Intel RDT MB schema"),
        "cpu_idle": ("0|1", "SCHED_IDLE for the cgroup (cgroup v2)"), "cpu_burst": ("USEC", "CFS burst"),
    },
    "exec": {
        "process": ("FILE", "a runtime-spec process JSON object instead of the command line"),
        "detach": ("", "return once the process runs"), "pid_file": ("FILE", "write the process's pid to FILE"),
        "tty": ("", "give the process a pseudo-terminal"),
        "console_socket": ("SOCKET", "AF_UNIX socket that receives the pty master (with --tty --detach)"),
        "cwd": ("DIR", "working directory in the container"),
        "env": ("NAME=VALUE", "set an environment variable (repeatable)"),
        "user": ("UID[:GID]", "user and group to run as"),
        "additional_gids": ("GID", "an additional group (repeatable)"),
        "cap": ("CAP", "add a capability (repeatable)"), "no_new_privs": ("", "set no_new_privs"),
        "preserve_fds": ("N", "pass fds 3..3+N-1 to the process"),
        "process_label": ("LABEL", "SELinux label of the process"), "apparmor": ("PROFILE", "AppArmor profile"),
        "ignore_paused": ("", "exec even when the container is paused"),
        "cgroup": ("[CTRL:]PATH", "a sub-cgroup of the container's to run in (repeatable)"),
        "pidfd_socket": ("SOCKET", "AF_UNIX socket that receives a pidfd of the process"),
    },
    "spec": {"bundle": ("DIR", "where to write config.json (default: the current directory)"),
             "rootless": ("", "a config for an unprivileged user (user namespace, no cgroup limits)")},
    "validate": {"bundle": ("DIR", "the bundle to check (default: the current directory)")},
}


def _aliases(table: dict) -> dict[str, list[str]]:
    """flag key -> its spellings in the parser table, long ones first."""
    out: dict[str, list[str]] = {}
    for name, (key, _takes) in table.items():
        out.setdefault(key, []).append(name)
    return {k: sorted(v, key=lambda n: (len(n) == 1, n)) for k, v in out.items()}


def _spell(names: list[str], value: str) -> str:
    flags = ", ".join(("-" if len(n) == 1 else "--") + n for n in names)
    return flags + value if value.startswith("[=") else f"{flags} {value}".rstrip()


def _rows(table: dict, words: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    return [(_spell(names, words[key][0]), words[key][1]) for key, names in _aliases(table).items()]


def _columns(rows: list[tuple[str, str]], indent: str = "   ") -> str:
    width = max((len(a) for a, _ in rows), default=0)
    return "".join(f"{indent}{a.ljust(width)}  {b}\n" for a, b in rows)


def usage(parser_globals: dict, parser_commands: dict) -> str:
    """`ocirun --help`, for the parser tables cli.GLOBAL and cli.COMMANDS."""
    cmds = [(name, COMMANDS[name][0]) for name in parser_commands]
    return (f"ocirun: {SUMMARY}\n\nusage: ocirun [global options] command [options] [arguments]\n\n"
            f"commands:\n{_columns(cmds)}\nglobal options:\n{_columns(_rows(parser_globals, GLOBAL))}\n"
            "`ocirun COMMAND --help` shows a command's options; man 8 ocirun has the whole reference.\n")


def command_usage(cmd: str, flags: dict) -> str:
    """`ocirun COMMAND --help`, for the command's parser table (cli.COMMANDS[cmd][0])."""
    line, args = COMMANDS[cmd]
    opts = _rows(flags, FLAGS[cmd])
    text = f"usage: ocirun {cmd}{' [options]' if opts else ''}{' ' + args if args else ''}\n\n{line}\n"
    return text + (f"\noptions:\n{_columns(opts)}" if opts else "")


def _roff(s: str) -> str:
    """Escape text for roff: backslashes, leading dots/quotes, and hyphens in flags."""
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + s if s[:1] in (".", "'") else s


def manpage(parser_globals: dict, parser_commands: dict, version: str, date: str) -> str:
    """ocirun(8) in man(7) macros, for the parser tables cli.GLOBAL and cli.COMMANDS."""
    out = [f'.TH OCIRUN 8 "{date}" "ocirun {version}" "System Administration"', ".SH NAME",
           f"ocirun \\- {_roff(SUMMARY)}", ".SH SYNOPSIS",
           ".B ocirun\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]",
           ".SH DESCRIPTION",
           "ocirun runs containers from OCI bundles (a config.json and a root filesystem) following the OCI "
           "runtime specification. Its command line is runc's, so containerd, podman, CRI-O and conmon drive it "
           "unchanged. Errors are one line, \\fBocirun: \\fIwhat\\fB: \\fIwhy\\fR, on standard error.",
           ".SH GLOBAL OPTIONS"]
    for flags, text in _rows(parser_globals, GLOBAL):
        out += [".TP", f"\\fB{_roff(flags)}\\fR", _roff(text)]
    out.append(".SH COMMANDS")
    for cmd, (table, *_rest) in parser_commands.items():
        line, args = COMMANDS[cmd]
        out += [".SS " + cmd, f"\\fBocirun {cmd}\\fR [\\fIoptions\\fR] {_roff(args)}".rstrip(), ".br", _roff(line)]
        for flags, text in _rows(table, FLAGS[cmd]):
            out += [".TP", f"\\fB{_roff(flags)}\\fR", _roff(text)]
    out += [".SH EXIT STATUS",
            "0 on success; 1 when the runtime fails; \\fBrun\\fR and \\fBexec\\fR in the foreground exit with the "
            "container process's status (128 + signal when it was killed); \\fBexec\\fR exits 255 when it could not "
            "start the process.",
            ".SH FILES", ".TP", f"\\fI{DEFAULT_ROOT}/\\fRID\\fI/state.json\\fR", "a container's state (see --root).",
            ".SH SEE ALSO", "runc(8), crun(1), podman(1), containerd(8)"]
    return "\n".join(out) + "\n"
