#!/usr/bin/env python3
"""Benchmark ocirun side by side with runc and crun on the same busybox bundle.

Each runtime is driven by a worker process (`bench.py --worker RT`) that does the timing itself, so crun can
live in a private mount namespace without /sys/fs/cgroup/unified (crun 1.8.1 refuses hybrid hosts) while
only crun's own commands are timed. The main process alternates the runtimes round by round (rotating the
order) so slow drifts of the machine hit every runtime alike, then prints medians, p10/p90 and ratios and
appends a JSON line to bench/results/results.jsonl. Nothing is asserted: this is measurement only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any, NoReturn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bundle import DEFAULT_OCI_VERSION, make_bundle, make_config, write_config  # noqa: E402

RESULTS_FILE = os.path.join(HERE, "results", "results.jsonl")
KNOWN_RUNTIMES = ("ocirun", "runc", "crun")
PHASES = ("run", "create", "series", "exec", "rss", "initmem", "memlimit")
CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"
LOCK_FILE = "/run/ocirun-bench.lock"
CMD_TIMEOUT = 30.0
SERIES_LEN = 100
MEM_LO, MEM_HI, MEM_STEP = 64 << 10, 64 << 20, 16 << 10
# crun 1.8.1 only knows runtime-spec up to 1.1.0 (and so does every runtime here), so one version fits all.
CRUN_OCI_VERSION = "1.1.0"
MAX_CONSECUTIVE_FAILURES = 3
ID_PREFIX = "ocbench-"  # container ids and so cgroup names: ocbench-<bench pid>-<runtime>-<n>


class BenchError(Exception):
    """A runtime command failed; the message carries its exit status and stderr tail."""


class CommandHang(BenchError):
    """A runtime command had to be killed: the runtime is dropped from the rest of the bench."""


class CommandTimeout(Exception):
    """A runtime command ran longer than CMD_TIMEOUT (raised from SIGALRM to interrupt wait4)."""


def _on_alarm(signum: int, frame: object) -> NoReturn:
    raise CommandTimeout()


def _on_term(signum: int, frame: object) -> NoReturn:
    """SIGTERM takes the same cleanup path as Ctrl-C."""
    raise KeyboardInterrupt()


# --------------------------------------------------------------------------------------------- spawning


class Spawner:
    """posix_spawn + wait4 so the timing covers exactly the runtime command and its reaped descendants.

    subprocess would add Python-side overhead (pipes, a preexec dance). Peak RSS is NOT taken from our own
    wait4: exec records the hiwater RSS of the mm it replaces in the process's maxrss, and a child spawned
    from this Python process starts on (a copy of, or with vfork the very) Python's mm, so ru_maxrss would
    read >= the worker's ~17 MiB. `rss()` goes through GNU time instead, whose own mm is ~1.3 MiB (the
    floor, measured and reported): its ru_maxrss of the runtime covers the runtime process and every
    descendant that process reaped (a forking Python runtime included), which is "the whole command".
    """

    def __init__(self, scratch: str) -> None:
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.err_fd = os.open(os.path.join(scratch, "stderr"), os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC)
        self.rss_path = os.path.join(scratch, "rss")
        self.out_fd = os.open(os.path.join(scratch, "stdout"), os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC)
        signal.signal(signal.SIGALRM, _on_alarm)

    def run(self, argv: list[str], capture: bool = False, timeout: float = CMD_TIMEOUT) -> tuple[int, float, int, str]:
        """Run argv; return (exit status, wall seconds, ru_maxrss KiB, stdout if captured else stderr)."""
        os.ftruncate(self.err_fd, 0)
        if capture:
            os.ftruncate(self.out_fd, 0)
        actions = [
            (os.POSIX_SPAWN_DUP2, self.devnull, 0),
            (os.POSIX_SPAWN_DUP2, self.out_fd if capture else self.devnull, 1),
            (os.POSIX_SPAWN_DUP2, self.err_fd, 2),
        ]
        pid = 0
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            t0 = time.perf_counter()
            pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
            _, status, usage = os.wait4(pid, 0)
            elapsed = time.perf_counter() - t0
        except CommandTimeout:
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.wait4(pid, 0)
            raise CommandHang(f"{' '.join(argv[-3:])}: killed after {timeout:.0f} s") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        fd = self.out_fd if capture else self.err_fd
        text = os.pread(fd, 1 << 16, 0).decode(errors="replace")
        return os.waitstatus_to_exitcode(status), elapsed, usage.ru_maxrss, text

    def rss(self, time_bin: str, argv: list[str]) -> tuple[int, int, str]:
        """Run argv under GNU time; return (exit status, peak RSS KiB of the command's tree, stderr)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.rss_path)
        status, _, _, err = self.run([time_bin, "-f", "%M", "-o", self.rss_path, *argv])
        try:
            with open(self.rss_path) as f:
                lines = f.read().split()
        except FileNotFoundError:
            lines = []
        if not lines or not lines[-1].isdigit():
            raise BenchError(f"{time_bin} gave no %M figure: {err_tail(err)}")
        return status, int(lines[-1]), err


def err_tail(err: str) -> str:
    """The last lines of a command's stderr, on one line, for an error message."""
    return " | ".join(err.strip().splitlines()[-3:])[-300:] or "(no stderr)"


# ---------------------------------------------------------------------------------------------- cgroups


def hierarchies() -> list[str]:
    """Every directory directly under /sys/fs/cgroup (v1 controllers, named hierarchies, unified)."""
    try:
        names = sorted(os.listdir(CGROUP_ROOT))
    except OSError:
        return []
    dirs = [os.path.join(CGROUP_ROOT, n) for n in names]
    if os.path.ismount(CGROUP_ROOT) and os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):
        dirs.append(CGROUP_ROOT)  # pure cgroup v2 host
    return [d for d in dirs if os.path.isdir(d) and not os.path.islink(d)]


def sweep_cgroups(prefix: str, stale_only: bool = False) -> int:
    """Remove cgroups named <prefix>...; kill what is left inside first. Returns how many were removed.

    Runtimes remove their cgroups on delete, so this only catches leftovers (interrupted runs). A hierarchy
    directory that is not a mount point is plain tmpfs (crun writes a cgroup.procs *file* into
    /sys/fs/cgroup/unified when it is unmounted in its namespace), so it is removed as ordinary files.
    With stale_only, only names whose embedded bench pid is dead are touched (ocbench-<pid>-...).
    """
    removed = 0
    for h in hierarchies():
        try:
            entries = [e for e in os.listdir(h) if e.startswith(prefix)]
        except OSError:
            continue
        for name in entries:
            if stale_only and _tag_alive(name):
                continue
            path = os.path.join(h, name)
            if not os.path.ismount(h):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
                continue
            for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
                _kill_cgroup(dirpath)
                for _ in range(50):
                    try:
                        os.rmdir(dirpath)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)
            removed += 1
    return removed


def _tag_alive(name: str) -> bool:
    """ocbench-<pid>-<rt>-<n>: is the bench process that made it still running?"""
    parts = name.split("-")
    if len(parts) < 2 or not parts[1].isdigit():
        return True
    return os.path.exists(f"/proc/{parts[1]}")


def _kill_cgroup(path: str) -> None:
    """SIGKILL every process still in a cgroup so it can be removed."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def cgroup_mode() -> str:
    """unified (v2 only), hybrid (v1 + cgroup2 at /sys/fs/cgroup/unified) or legacy (v1 only)."""
    fstypes: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstypes[left.split()[4]] = right.split()[0]
    if fstypes.get(CGROUP_ROOT) == "cgroup2":
        return "unified"
    if fstypes.get(UNIFIED) == "cgroup2":
        return "hybrid"
    return "legacy"


# ----------------------------------------------------------------------------------------------- worker


class Worker:
    """Runs one runtime's side of every benchmark and answers the main process over stdin/stdout."""

    def __init__(self, name: str, binary: str, root: str, tag: str, oci_version: str) -> None:
        self.name = name
        self.binary = binary
        self.root = root
        self.tag = tag
        self.prefix = f"{ID_PREFIX}{tag}-{name}-"
        self.counter = 0
        self.live: set[str] = set()
        self.scratch = tempfile.mkdtemp(
            prefix=f"ocbench-scratch-{name}-", dir="/run" if os.access("/run", os.W_OK) else None
        )
        self.spawner = Spawner(self.scratch)
        self.oci_version = oci_version
        self.bundles: dict[str, str] = {}
        self.exec_id = ""
        self.time_bin = ""

    # -- helpers
    def rt(self, *args: str) -> list[str]:
        """argv for this runtime with our private --root."""
        return [self.binary, "--root", self.root, *args]

    def new_id(self) -> str:
        """Container ids embed the bench pid so leftovers of a crashed run can be told apart."""
        self.counter += 1
        cid = f"{self.prefix}{self.counter}"
        self.live.add(cid)
        return cid

    def check(self, argv: list[str], what: str) -> float:
        """Run a runtime command that must exit 0; return its wall time in seconds."""
        status, secs, _, err = self.spawner.run(argv)
        if status != 0:
            raise BenchError(f"{what} exited {status}: {err_tail(err)}")
        return secs

    def force_delete(self, cid: str) -> None:
        """Best effort: kill and delete a container; never raises."""
        with contextlib.suppress(BenchError):
            self.spawner.run(self.rt("kill", cid, "KILL"), timeout=10)
        with contextlib.suppress(BenchError):
            status, _, _, _ = self.spawner.run(self.rt("delete", "-f", cid), timeout=10)
            if status == 0 or not os.path.exists(os.path.join(self.root, cid)):
                self.live.discard(cid)

    def state_pid(self, cid: str) -> int:
        """The container init pid from `state`."""
        status, _, _, out = self.spawner.run(self.rt("state", cid), capture=True)
        if status != 0:
            raise BenchError(f"state exited {status}")
        return int(json.loads(out)["pid"])

    # -- ops
    def op_hello(self, req: dict[str, Any]) -> dict[str, Any]:
        """Prepare: unmount unified if asked, clear leftovers, build bundles, report the version."""
        if req.get("unmount_unified") and os.path.ismount(UNIFIED):
            subprocess.run(["umount", UNIFIED], check=True)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        stale = self.sweep(everything=True)
        bb = os.path.join(self.scratch, "bundle-")
        self.bundles = {
            "true": make_bundle(bb + "true", ["/bin/true"], self.oci_version),
            "sleep": make_bundle(bb + "sleep", ["/bin/sleep", "1000"], self.oci_version),
            "mem": make_bundle(bb + "mem", ["/bin/true"], self.oci_version),
        }
        busybox = os.path.join(self.bundles["true"], "rootfs", "bin", "busybox")
        floor, self.time_bin = self.find_gnu_time(busybox)
        status, _, _, out = self.spawner.run([self.binary, "--version"], capture=True, timeout=10)
        version = out.strip().splitlines()[0] if status == 0 and out.strip() else f"(--version exited {status})"
        # One untimed run so the first timed sample does not pay for cold caches (binary, libraries, rootfs).
        # A hang here (CommandHang) propagates: the main process then skips this runtime altogether.
        try:
            self.op_run({})
        except CommandHang:
            raise
        except BenchError:
            for cid in list(self.live):
                self.force_delete(cid)
        return {"version": version, "stale_removed": stale, "rss_floor": floor, "time": self.time_bin}

    def find_gnu_time(self, static_prog: str) -> tuple[int, str]:
        """GNU time for peak RSS, and its floor: the reading for a static busybox `true`."""
        for cand in ("/usr/bin/time", shutil.which("time")):
            if not cand or not os.access(cand, os.X_OK):
                continue
            with contextlib.suppress(BenchError, OSError):
                status, kib, _ = self.spawner.rss(cand, [static_prog, "true"])
                if status == 0:
                    return kib, cand
        return 0, ""

    def _pause(self, req: dict[str, Any]) -> None:
        """The idle case: let the machine settle so the next cgroup attach waits for an RCU grace period."""
        if req.get("idle"):
            time.sleep(float(req.get("idle_sleep", 1.0)))

    def op_run(self, req: dict[str, Any]) -> dict[str, Any]:
        """`run` of /bin/true in the foreground (create+start+wait+delete in one command)."""
        self._pause(req)
        cid = self.new_id()
        secs = self.check(self.rt("run", "--bundle", self.bundles["true"], cid), "run")
        self.live.discard(cid)
        return {"run": secs}

    def op_csd(self, req: dict[str, Any]) -> dict[str, Any]:
        """create, start, wait for exit, delete, each timed on its own."""
        self._pause(req)
        cid = self.new_id()
        create = self.check(self.rt("create", "--bundle", self.bundles["true"], cid), "create")
        pidfd = os.pidfd_open(self.state_pid(cid))
        try:
            start = self.check(self.rt("start", cid), "start")
            t0 = time.perf_counter()
            if not select.select([pidfd], [], [], CMD_TIMEOUT)[0]:
                raise BenchError("container did not exit")
            wait = time.perf_counter() - t0
        finally:
            os.close(pidfd)
        delete = self.check(self.rt("delete", cid), "delete")
        self.live.discard(cid)
        return {"create": create, "start": start, "wait": wait, "delete": delete}

    def op_rss(self, req: dict[str, Any]) -> dict[str, Any]:
        """Peak RSS of `create` (then deleted, untimed) and of a whole `run`, through GNU time."""
        if not self.time_bin:
            raise BenchError("GNU time not found (apt-get install time): peak RSS not measured")
        out: dict[str, Any] = {}
        for op in ("create", "run"):
            cid = self.new_id()
            argv = self.rt(op, "--bundle", self.bundles["true"], cid)
            status, out[f"{op}_rss"], err = self.spawner.rss(self.time_bin, argv)
            if status != 0:
                raise BenchError(f"{op} exited {status}: {err_tail(err)}")
            if op == "create":
                self.force_delete(cid)
            self.live.discard(cid)
        return out

    def op_initmem(self, req: dict[str, Any]) -> dict[str, Any]:
        """Memory of a created, not yet started init: what each waiting container costs (smaps_rollup, KiB).

        Private is the pages no other process maps (clean + dirty); Pss shares the rest out. A binary file every
        init maps (runc, crun) has its clean pages shared once several containers wait; a memfd copy made per
        runtime process (ocirun) is the init's own, so its size is reported too (0 when the exe is a file).
        """
        cid = self.new_id()
        self.check(self.rt("create", "--bundle", self.bundles["sleep"], cid), "create")
        try:
            pid = self.state_pid(cid)
            with open(f"/proc/{pid}/smaps_rollup") as f:
                vals = {ln.split()[0].rstrip(":"): int(ln.split()[1]) for ln in f if ln.rstrip().endswith("kB")}
            exe = os.readlink(f"/proc/{pid}/exe")
            memfd = os.stat(f"/proc/{pid}/exe").st_size / 1024 if exe.startswith("/memfd:") else 0
        finally:
            self.force_delete(cid)
            self.live.discard(cid)
        return {"rss": vals["Rss"], "pss": vals["Pss"], "private": vals["Private_Clean"] + vals["Private_Dirty"],
                "private_dirty": vals["Private_Dirty"], "exe_memfd": memfd, "exe": exe}

    def op_series(self, req: dict[str, Any]) -> dict[str, Any]:
        """N `run`s back to back; the total wall time."""
        total = 0.0
        for _ in range(int(req.get("n", SERIES_LEN))):
            cid = self.new_id()
            secs = self.check(self.rt("run", "--bundle", self.bundles["true"], cid), "run")
            self.live.discard(cid)
            total += secs
        return {"series": total}

    def op_exec_setup(self, req: dict[str, Any]) -> dict[str, Any]:
        """Start a `sleep 1000` container to exec into."""
        cid = self.new_id()
        self.check(self.rt("create", "--bundle", self.bundles["sleep"], cid), "create")
        self.check(self.rt("start", cid), "start")
        self.exec_id = cid
        return {}

    def op_exec(self, req: dict[str, Any]) -> dict[str, Any]:
        """`exec ID /bin/true` into the running container."""
        if not self.exec_id:
            raise BenchError("no exec container")
        self._pause(req)
        secs = self.check(self.rt("exec", self.exec_id, "/bin/true"), "exec")
        return {"exec": secs}

    def op_exec_teardown(self, req: dict[str, Any]) -> dict[str, Any]:
        """Stop and delete the exec container."""
        if self.exec_id:
            self.force_delete(self.exec_id)
            self.exec_id = ""
        return {}

    def op_memprobe(self, req: dict[str, Any]) -> dict[str, Any]:
        """Does `run` of /bin/true exit 0 under this memory limit (every one of `attempts` times)?"""
        limit = int(req["limit"])
        write_config(self.bundles["mem"], make_config(["/bin/true"], self.oci_version, memory_limit=limit))
        for _ in range(int(req.get("attempts", 1))):
            cid = self.new_id()
            status, _, _, _ = self.spawner.run(self.rt("run", "--bundle", self.bundles["mem"], cid))
            if status != 0:
                self.force_delete(cid)
                return {"success": False}
            self.live.discard(cid)
        return {"success": True}

    # -- cleanup
    def sweep(self, everything: bool = False) -> int:
        """Delete our containers (all in our --root when `everything`), their cgroups, and our state dirs."""
        ids = set(self.live)
        if everything:
            with contextlib.suppress(BenchError):
                status, _, _, out = self.spawner.run(self.rt("list", "-q"), capture=True, timeout=10)
                if status == 0:
                    ids.update(out.split())
            with contextlib.suppress(OSError):
                ids.update(e for e in os.listdir(self.root) if e.startswith(ID_PREFIX))
        for cid in sorted(ids):
            self.force_delete(cid)
            path = os.path.join(self.root, cid)
            if os.path.isdir(path):  # the runtime could not delete it: drop the state by hand
                shutil.rmtree(path, ignore_errors=True)
        sweep_cgroups(self.prefix)
        if everything:
            sweep_cgroups(ID_PREFIX, stale_only=True)
        return len(ids)

    def close(self) -> None:
        """Final cleanup: containers, cgroups, state root, scratch dir."""
        self.sweep(everything=True)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def serve(self) -> int:
        """Answer one JSON request per line until EOF or quit; always clean up on the way out."""
        ops = {
            "hello": self.op_hello,
            "run": self.op_run,
            "csd": self.op_csd,
            "series": self.op_series,
            "exec_setup": self.op_exec_setup,
            "exec": self.op_exec,
            "exec_teardown": self.op_exec_teardown,
            "memprobe": self.op_memprobe,
            "rss": self.op_rss,
            "initmem": self.op_initmem,
        }
        code = 0
        try:
            for line in sys.stdin:
                req = json.loads(line)
                if req["op"] == "quit":
                    break
                try:
                    reply: dict[str, Any] = {"ok": True, **ops[req["op"]](req)}
                except (BenchError, OSError, ValueError, KeyError) as e:
                    reply = {"ok": False, "error": str(e), "hung": isinstance(e, CommandHang)}
                    for cid in list(self.live):
                        if cid != self.exec_id:
                            self.force_delete(cid)
                sys.stdout.write(json.dumps(reply) + "\n")
                sys.stdout.flush()
        except (KeyboardInterrupt, BrokenPipeError):
            code = 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.close()
        return code


def worker_main(args: argparse.Namespace) -> int:
    """Entry point of `bench.py --worker RT` (possibly inside `unshare -m`)."""
    signal.signal(signal.SIGTERM, _on_term)
    worker = Worker(args.worker, args.binary, args.state_root, args.tag, args.oci_version)
    if args.cleanup_only:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        worker.close()
        return 0
    return worker.serve()


# ------------------------------------------------------------------------------------------ main side


class Runtime:
    """Main-side handle on one runtime's worker process."""

    def __init__(self, name: str, binary: str, tag: str) -> None:
        self.name = name
        self.binary = binary
        self.root = f"/run/bench-{name}"
        self.tag = tag
        # crun 1.8.1 refuses a hybrid host: give it a private mount namespace without the cgroup2 mount.
        self.isolate = os.path.basename(binary).startswith("crun") and cgroup_mode() == "hybrid"
        self.oci_version = CRUN_OCI_VERSION if name == "crun" else DEFAULT_OCI_VERSION
        self.proc: subprocess.Popen[str] | None = None
        self.version = ""
        self.rss_floor = 0
        self.disabled: dict[str, str] = {}  # phase -> why
        self.failures: dict[str, int] = {}

    def worker_argv(self, cleanup_only: bool = False) -> list[str]:
        """How to start this runtime's worker (under unshare -m for crun on a hybrid host)."""
        argv = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            self.name,
            "--binary",
            self.binary,
            "--state-root",
            self.root,
            "--tag",
            self.tag,
            "--oci-version",
            self.oci_version,
        ]
        if cleanup_only:
            argv.append("--cleanup-only")
        if self.isolate:
            argv = ["unshare", "-m", "--propagation", "private", "--", *argv]
        return argv

    def start(self) -> None:
        """Spawn the worker and have it prepare its bundles."""
        self.proc = subprocess.Popen(self.worker_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        reply = self.request({"op": "hello", "unmount_unified": self.isolate})
        if not reply.get("ok"):
            raise BenchError(f"{self.name}: worker setup failed: {reply.get('error')}")
        self.version = reply["version"]
        self.rss_floor = reply["rss_floor"]

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request/reply round trip; a dead worker reads as a failed request."""
        if self.proc is None or self.proc.poll() is not None:
            return {"ok": False, "error": "worker not running"}
        assert self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return {"ok": False, "error": "worker exited"}
        line = self.proc.stdout.readline()
        if not line:
            return {"ok": False, "error": "worker exited"}
        return json.loads(line)

    def stop(self) -> None:
        """Ask the worker to clean up and exit; fall back to a cleanup-only worker if it misbehaves."""
        if self.proc is not None:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                assert self.proc.stdin
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if os.path.exists(self.root):
            subprocess.run(self.worker_argv(cleanup_only=True), timeout=120, check=False)
            shutil.rmtree(self.root, ignore_errors=True)


class Bench:
    """Drives the phases, alternating runtimes round by round, and collects samples."""

    def __init__(self, runtimes: list[Runtime], args: argparse.Namespace) -> None:
        self.runtimes = runtimes
        self.args = args
        # metric -> runtime -> samples
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.errors: list[str] = []
        self.init_exe: dict[str, str] = {}  # runtime -> what /proc/<waiting init>/exe points at

    def add(self, metric: str, rt: str, value: float) -> None:
        """Record one sample."""
        self.samples.setdefault(metric, {}).setdefault(rt, []).append(value)

    def rounds(self, n: int, phase: str) -> Iterator[tuple[int, list[Runtime]]]:
        """Yield (round, runtimes in this round's order): the order rotates so nobody is always first."""
        for r in range(n):
            k = r % len(self.runtimes)
            order = self.runtimes[k:] + self.runtimes[:k]
            yield r, [rt for rt in order if rt in self.active(phase)]

    def ask(self, rt: Runtime, phase: str, req: dict[str, Any]) -> dict[str, Any] | None:
        """Send a request; on failure, report once and give up on the phase after repeated failures."""
        reply = rt.request(req)
        if reply.get("ok"):
            rt.failures[phase] = 0
            return reply
        n = rt.failures[phase] = rt.failures.get(phase, 0) + 1
        msg = f"{rt.name}: {phase}: {reply.get('error')}"
        if n == 1:
            log(f"warning: {msg}")
            self.errors.append(msg)
        if reply.get("hung") or reply.get("error", "").startswith("worker"):
            rt.disabled["*"] = str(reply.get("error"))
            log(f"warning: {rt.name}: dropped from the remaining benchmarks")
        elif n >= MAX_CONSECUTIVE_FAILURES:
            rt.disabled[phase] = str(reply.get("error"))
            log(f"warning: {rt.name}: giving up on {phase}")
        return None

    def active(self, phase: str) -> list[Runtime]:
        """Runtimes not given up on, for this phase or for good."""
        return [rt for rt in self.runtimes if phase not in rt.disabled and "*" not in rt.disabled]

    def phase_run(self) -> None:
        """Benchmark 1: the `run` lifecycle, back to back and idle."""
        for mode, n, idle in (("b2b", self.args.rounds, False), ("idle", self.args.idle_rounds, True)):
            log(f"run ({mode}): {n} rounds")
            for _, order in self.rounds(n, "run"):
                for rt in order:
                    reply = self.ask(rt, "run", {"op": "run", "idle": idle, "idle_sleep": self.args.idle_sleep})
                    if reply:
                        self.add(f"run.{mode}", rt.name, reply["run"])

    def phase_create(self) -> None:
        """Benchmark 2: create / start / delete timed apart (and the wait for the container's exit)."""
        for mode, n, idle in (("b2b", self.args.rounds, False), ("idle", self.args.idle_rounds, True)):
            log(f"create/start/delete ({mode}): {n} rounds")
            for _, order in self.rounds(n, "create"):
                for rt in order:
                    reply = self.ask(rt, "create", {"op": "csd", "idle": idle, "idle_sleep": self.args.idle_sleep})
                    if reply:
                        for key in ("create", "start", "wait", "delete"):
                            self.add(f"{key}.{mode}", rt.name, reply[key])

    def phase_rss(self) -> None:
        """Benchmark 5: peak RSS of `create` (and of `run`), via GNU time."""
        n = self.args.rss_rounds
        log(f"peak RSS: {n} rounds")
        for _, order in self.rounds(n, "rss"):
            for rt in order:
                reply = self.ask(rt, "rss", {"op": "rss"})
                if reply:
                    self.add("create.rss", rt.name, reply["create_rss"])
                    self.add("run.rss", rt.name, reply["run_rss"])

    def phase_initmem(self) -> None:
        """Benchmark 5b: memory of a waiting (created, not started) init."""
        n = self.args.rss_rounds
        log(f"waiting init memory: {n} rounds")
        for _, order in self.rounds(n, "initmem"):
            for rt in order:
                reply = self.ask(rt, "initmem", {"op": "initmem"})
                if reply:
                    for key in ("rss", "pss", "private", "private_dirty", "exe_memfd"):
                        self.add(f"initmem.{key}", rt.name, reply[key])
                    self.init_exe[rt.name] = reply["exe"]

    def phase_series(self) -> None:
        """Benchmark 3: SERIES_LEN containers run one after another."""
        n = self.args.series_rounds
        log(f"series of {self.args.series_len} runs: {n} rounds")
        for _, order in self.rounds(n, "series"):
            for rt in order:
                reply = self.ask(rt, "series", {"op": "series", "n": self.args.series_len})
                if reply:
                    self.add("series", rt.name, reply["series"])

    def phase_exec(self) -> None:
        """Benchmark 4: exec /bin/true into a running `sleep 1000` container."""
        for rt in self.active("exec"):
            self.ask(rt, "exec", {"op": "exec_setup"})
        try:
            for mode, n, idle in (("b2b", self.args.rounds, False), ("idle", self.args.idle_rounds, True)):
                log(f"exec ({mode}): {n} rounds")
                for _, order in self.rounds(n, "exec"):
                    for rt in order:
                        req = {"op": "exec", "idle": idle, "idle_sleep": self.args.idle_sleep}
                        reply = self.ask(rt, "exec", req)
                        if reply:
                            self.add(f"exec.{mode}", rt.name, reply["exec"])
        finally:
            for rt in self.runtimes:
                rt.request({"op": "exec_teardown"})

    def phase_memlimit(self) -> None:
        """Benchmark 6: bisect the smallest memory limit under which `run` /bin/true exits 0.

        Works in MEM_STEP units with the invariant lo fails, hi succeeds; runtimes advance in lockstep so a
        probe of one runtime is never separated from the others' by a long stretch of time.
        """
        log(f"memory limit bisection {MEM_LO >> 10} KiB .. {MEM_HI >> 20} MiB, {MEM_STEP >> 10} KiB steps")
        attempts = self.args.mem_attempts
        lo: dict[str, int] = {}
        hi: dict[str, int] = {}
        active: list[Runtime] = []
        for rt in self.active("memlimit"):
            r_hi = self.ask(rt, "memlimit", {"op": "memprobe", "limit": MEM_HI, "attempts": attempts})
            if not r_hi:
                continue
            if not r_hi["success"]:
                log(f"warning: {rt.name}: run fails even with a {MEM_HI >> 20} MiB limit")
                self.errors.append(f"{rt.name}: memlimit: fails at {MEM_HI >> 20} MiB")
                continue
            r_lo = self.ask(rt, "memlimit", {"op": "memprobe", "limit": MEM_LO, "attempts": attempts})
            if r_lo and r_lo["success"]:
                self.add("memlimit", rt.name, MEM_LO / 1024)
                continue
            lo[rt.name], hi[rt.name] = MEM_LO // MEM_STEP, MEM_HI // MEM_STEP
            active.append(rt)
        while active:
            for rt in list(active):
                if hi[rt.name] - lo[rt.name] <= 1:
                    self.add("memlimit", rt.name, hi[rt.name] * MEM_STEP / 1024)
                    active.remove(rt)
                    continue
                mid = (lo[rt.name] + hi[rt.name]) // 2
                reply = self.ask(rt, "memlimit", {"op": "memprobe", "limit": mid * MEM_STEP, "attempts": attempts})
                if reply is None:
                    active.remove(rt)
                elif reply["success"]:
                    hi[rt.name] = mid
                else:
                    lo[rt.name] = mid


# ------------------------------------------------------------------------------------------ reporting


def log(msg: str) -> None:
    """Progress goes to stderr so stdout holds only the results."""
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1), as numpy's default."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    i = int(pos)
    frac = pos - i
    return s[i] + (s[min(i + 1, len(s) - 1)] - s[i]) * frac


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, p10, p90, min and count of one sample list."""
    return {
        "median": percentile(samples, 0.5),
        "p10": percentile(samples, 0.1),
        "p90": percentile(samples, 0.9),
        "min": min(samples),
        "n": len(samples),
    }


# metric key, label, unit scale (from seconds or KiB), unit name
METRICS: list[tuple[str, str, float, str]] = [
    ("run.b2b", "run /bin/true, back to back", 1e3, "ms"),
    ("run.idle", "run /bin/true, idle", 1e3, "ms"),
    ("create.b2b", "create, back to back", 1e3, "ms"),
    ("start.b2b", "start, back to back", 1e3, "ms"),
    ("wait.b2b", "  (container exit wait)", 1e3, "ms"),
    ("delete.b2b", "delete, back to back", 1e3, "ms"),
    ("create.idle", "create, idle", 1e3, "ms"),
    ("start.idle", "start, idle", 1e3, "ms"),
    ("delete.idle", "delete, idle", 1e3, "ms"),
    ("series", f"{SERIES_LEN} runs in a row (total)", 1.0, "s"),
    ("exec.b2b", "exec /bin/true, back to back", 1e3, "ms"),
    ("exec.idle", "exec /bin/true, idle", 1e3, "ms"),
    ("create.rss", "create peak RSS", 1 / 1024, "MiB"),
    ("run.rss", "run peak RSS", 1 / 1024, "MiB"),
    ("initmem.rss", "waiting init RSS", 1.0, "KiB"),
    ("initmem.pss", "waiting init Pss", 1.0, "KiB"),
    ("initmem.private", "waiting init private (clean+dirty)", 1.0, "KiB"),
    ("initmem.private_dirty", "  of which dirty", 1.0, "KiB"),
    ("initmem.exe_memfd", "waiting init exe memfd size", 1.0, "KiB"),
    ("memlimit", "smallest memory limit for run", 1.0, "KiB"),
]


def fmt(value: float, unit: str) -> str:
    """Compact number: more decimals for small values."""
    if unit == "KiB":
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def report(summary: dict[str, dict[str, dict[str, float]]], names: list[str], series_len: int) -> list[str]:
    """The results table: one row per metric, median [p10..p90] per runtime, ocirun ratios."""
    others = [n for n in names if n != "ocirun"] if "ocirun" in names else []
    header = ["metric", "unit", *names, *(f"ocirun/{o}" for o in others)]
    rows = [header]
    for key, label, scale, unit in METRICS:
        if key not in summary:
            continue
        if key == "series":
            label = f"{series_len} runs in a row (total)"
        row = [label, unit]
        for name in names:
            s = summary[key].get(name)
            if s is None:
                row.append("-")
            elif s["n"] == 1:
                row.append(fmt(s["median"] * scale, unit))
            else:
                med, p10, p90 = (fmt(s[k] * scale, unit) for k in ("median", "p10", "p90"))
                row.append(f"{med} [{p10}..{p90}]")
        for o in others:
            if key.startswith("wait."):  # the container's own exit: not the runtime's doing
                row.append("")
                continue
            a, b = summary[key].get("ocirun"), summary[key].get(o)
            row.append(f"{a['median'] / b['median']:.2f}x" if a and b and b["median"] else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in rows
    ]


def ratios(summary: dict[str, dict[str, dict[str, float]]], names: list[str]) -> dict[str, dict[str, float]]:
    """ocirun/<other> median ratios per metric, for the JSON record."""
    out: dict[str, dict[str, float]] = {}
    if "ocirun" not in names:
        return out
    for key, per_rt in summary.items():
        a = per_rt.get("ocirun")
        for o in names:
            b = per_rt.get(o)
            if o != "ocirun" and a and b and b["median"]:
                out.setdefault(key, {})[f"ocirun/{o}"] = a["median"] / b["median"]
    return out


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPUs, kernel, cgroup layout, CPU model, memory."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "nproc_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "cgroup_mode": cgroup_mode(),
        "cpu_model": model,
        "mem_total_mib": mem_kib // 1024,
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg()[0],
    }


def resolve_runtimes(spec: str) -> tuple[list[tuple[str, str]], list[str]]:
    """`name` or `name=/path` entries -> (found (name, path) list, skip messages)."""
    found: list[tuple[str, str]] = []
    skipped: list[str] = []
    for entry in [e.strip() for e in spec.split(",") if e.strip()]:
        name, _, path = entry.partition("=")
        binary = shutil.which(path or name)
        if binary is None:
            where = path or "PATH"
            note = (
                "; install it or pass --runtimes ocirun=/path/to/ocirun (no ratios without it)"
                if name == "ocirun"
                else ""
            )
            skipped.append(f"{name}: not found on {where}, skipped{note}")
        else:
            found.append((name, os.path.abspath(binary)))
    return found, skipped


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options; the defaults keep a full run (ocirun, runc, crun) within about three minutes."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--runtimes",
        default=",".join(KNOWN_RUNTIMES),
        help="comma-separated runtimes, each NAME or NAME=/path/to/binary (default: %(default)s)",
    )
    p.add_argument("--rounds", type=int, help="back-to-back rounds per benchmark (default 20, --quick 5)")
    p.add_argument("--idle-rounds", type=int, help="idle rounds (~1 s pause each; default 5, --quick 2)")
    p.add_argument("--series-rounds", type=int, help="rounds of the 100-run series (default 3, --quick 1)")
    p.add_argument("--rss-rounds", type=int, help="peak RSS rounds (default 5, --quick 2)")
    p.add_argument("--series-len", type=int, default=SERIES_LEN, help="containers per series (%(default)s)")
    p.add_argument("--idle-sleep", type=float, default=1.0, help="pause before an idle sample, s (%(default)s)")
    p.add_argument("--mem-attempts", type=int, help="runs that must all succeed per memory probe (2, --quick 1)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(PHASES)}")
    p.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke test")
    p.add_argument("--no-save", action="store_true", help="do not append to bench/results/results.jsonl")
    # internal: worker mode
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--binary", help=argparse.SUPPRESS)
    p.add_argument("--state-root", help=argparse.SUPPRESS)
    p.add_argument("--tag", help=argparse.SUPPRESS)
    p.add_argument("--oci-version", default=DEFAULT_OCI_VERSION, help=argparse.SUPPRESS)
    p.add_argument("--cleanup-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    for attr, full, short in (
        ("rounds", 20, 5),
        ("idle_rounds", 5, 2),
        ("series_rounds", 3, 1),
        ("rss_rounds", 5, 2),
        ("mem_attempts", 2, 1),
    ):
        if getattr(args, attr) is None:
            setattr(args, attr, short if quick else full)
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    bad = only - set(PHASES)
    if bad:
        p.error(f"--only: unknown {', '.join(sorted(bad))} (choose from {', '.join(PHASES)})")
    args.phases = [ph for ph in PHASES if not only or ph in only]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks on every runtime found, print the table, append the JSON line."""
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    if os.geteuid() != 0:
        log("must run as root (containers, cgroups)")
        return 2
    signal.signal(signal.SIGTERM, _on_term)
    # Two bench runs would share /run/bench-<rt> and sweep each other's containers.
    with open(LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another bench run holds {LOCK_FILE}")
            return 2
        try:
            return run_bench(args)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(LOCK_FILE)


def run_bench(args: argparse.Namespace) -> int:
    """Start the workers, run the phases, clean up, report."""
    found, skipped = resolve_runtimes(args.runtimes)
    for msg in skipped:
        log(msg)
    if not found:
        log("no runtime to benchmark")
        return 2
    tag = str(os.getpid())
    sweep_cgroups(ID_PREFIX, stale_only=True)
    runtimes = [Runtime(name, binary, tag) for name, binary in found]
    machine = machine_info()
    bench = Bench([], args)
    started = time.time()
    interrupted = False
    try:
        for rt in runtimes:
            try:
                rt.start()
                bench.runtimes.append(rt)
            except BenchError as e:
                log(f"{e}; skipped")
                skipped.append(str(e))
        if not bench.runtimes:
            return 1
        phase_fns = {
            "run": bench.phase_run,
            "create": bench.phase_create,
            "series": bench.phase_series,
            "exec": bench.phase_exec,
            "rss": bench.phase_rss,
            "initmem": bench.phase_initmem,
            "memlimit": bench.phase_memlimit,
        }
        for ph in args.phases:
            phase_fns[ph]()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for rt in runtimes:
            rt.stop()
        sweep_cgroups(f"{ID_PREFIX}{tag}-")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    names = [rt.name for rt in bench.runtimes]
    summary = {key: {rt: summarize(v) for rt, v in per_rt.items() if v} for key, per_rt in bench.samples.items()}
    versions = {rt.name: rt.version for rt in bench.runtimes}
    print(
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), kernel {machine['kernel']}, "
        f"cgroup {machine['cgroup_mode']}, {machine['mem_total_mib']} MiB"
    )
    for rt in bench.runtimes:
        ns = " (private mount ns without cgroup2)" if rt.isolate else ""
        print(f"{rt.name}: {rt.version} [{rt.binary}]{ns}")
    floors = {rt.rss_floor for rt in bench.runtimes if rt.rss_floor}
    if floors and "rss" in args.phases:
        print(f"peak RSS floor (GNU time running a static busybox true): {max(floors) / 1024:.1f} MiB")
    machine["loadavg_end"] = os.getloadavg()[0]
    if max(machine["loadavg_start"], machine["loadavg_end"]) > 0.7:
        print(
            f"note: the machine was busy (1-min load {machine['loadavg_start']:.2f} at start, "
            f"{machine['loadavg_end']:.2f} at end): absolute times are inflated; ratios suffer less"
        )
    if bench.init_exe:
        print("waiting init exe: " + ", ".join(f"{k} {v}" for k, v in bench.init_exe.items()))
    for msg in skipped:
        print(f"skipped: {msg}")
    print(
        f"rounds: {args.rounds} back to back, {args.idle_rounds} idle ({args.idle_sleep:g} s pause), "
        f"{args.series_rounds} x {args.series_len}-run series; cells: median [p10..p90]"
    )
    print()
    for line in report(summary, names, args.series_len):
        print(line)
    if bench.errors:
        print()
        for msg in bench.errors:
            print(f"error: {msg}")
    print(f"\n({time.time() - started:.0f} s{', interrupted' if interrupted else ''})")

    if not args.no_save and summary:
        record = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "unix_time": started,
            "interrupted": interrupted,
            "machine": machine,
            "versions": versions,
            "rss_floor_kib": {rt.name: rt.rss_floor for rt in bench.runtimes},
            "options": {
                k: getattr(args, k)
                for k in (
                    "rounds",
                    "idle_rounds",
                    "series_rounds",
                    "rss_rounds",
                    "series_len",
                    "idle_sleep",
                    "mem_attempts",
                    "phases",
                    "quick",
                )
            },
            "units": {key: "KiB" if key.endswith("rss") or key == "memlimit" or key.startswith("initmem.") else "s"
                      for key in summary},
            "init_exe": bench.init_exe,
            "summary": summary,
            "ratios": ratios(summary, names),
            "samples": bench.samples,
            "errors": bench.errors,
            "skipped": skipped,
        }
        os.makedirs(os.path.dirname(RESULTS_FILE), exist_ok=True)
        with open(RESULTS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"appended to {os.path.relpath(RESULTS_FILE)}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
