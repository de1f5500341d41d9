"""No process of ours is ever visible in a container's pid namespace while it can still reach the host's
filesystem (issue 11 follow-up). A container given CAP_SYS_PTRACE may read /proc/<pid>/root and
/proc/<pid>/ns/mnt of every process in its pid namespace, so a process the runtime puts there must already be
out of the host's mounts: an `exec` child joins the container's namespaces (and cgroup) first and only then
forks into its pid namespace; a container joining another one's pid namespace forks into it after
pivot_root (or, when hooks need the init's pid, before them, as runc does).

The container's process is a watcher (a small static C program) that records every new pid in its pid
namespace: its comm, whether its mount namespace is the watcher's own, the host's or another, and whether a
file that exists only on the host is reachable through its /proc/<pid>/root. strace stretches the setup
steps (each setns, setsid, pivot_root and keyctl waits) so that every state the setup passes through is seen.
Where runc is installed the same scenario runs under runc 1.1 beside ocirun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from ocitest import ROOT, proc_status
from test_sealed_init import ptrace_capable, userns_bundle

STRACE = shutil.which("strace")
DELAY_US = 150_000  # each delayed syscall waits this long: far longer than a scan of /proc takes

WATCHER_C = r"""
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* watcher MARKER HOST_MNT LOG: one line per new pid: "<pid> <comm> <mnt> <root>", mnt one of self (ours),
 * host (HOST_MNT), other, denied-<errno>; root "HOST" when MARKER (a host-only file) is reachable through
 * /proc/<pid>/root, "-" when not, denied-<errno> when /proc refuses. */
static unsigned char seen[1 << 22];

int main(int argc, char **argv) {
  char self[64] = "", link[64], path[4200], comm[64];
  if (argc != 4) return 2;
  ssize_t n = readlink("/proc/self/ns/mnt", self, sizeof self - 1);
  if (n <= 0) return 3;
  FILE *log = fopen(argv[3], "w");
  if (!log) return 4;
  setvbuf(log, NULL, _IOLBF, 0);
  seen[getpid()] = 1;
  fprintf(log, "ready\n");
  for (;;) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      char *end;
      long pid = strtol(e->d_name, &end, 10);
      if (*end || pid <= 0 || pid >= (1 << 22) || seen[pid]) continue;
      seen[pid] = 1;
      snprintf(path, sizeof path, "/proc/%ld/ns/mnt", pid);
      char mnt[32];
      ssize_t k = readlink(path, link, sizeof link - 1);
      if (k < 0) snprintf(mnt, sizeof mnt, "denied-%d", errno);
      else {
        link[k] = 0;
        snprintf(mnt, sizeof mnt, "%s", !strcmp(link, self) ? "self" : !strcmp(link, argv[2]) ? "host" : "other");
      }
      snprintf(path, sizeof path, "/proc/%ld/root%s", pid, argv[1]);
      char root[32];
      if (access(path, F_OK) == 0) snprintf(root, sizeof root, "HOST");
      else snprintf(root, sizeof root, errno == ENOENT || errno == ENOTDIR ? "-" : "denied-%d", errno);
      snprintf(path, sizeof path, "/proc/%ld/comm", pid);
      FILE *f = fopen(path, "r");
      if (!f || !fgets(comm, sizeof comm, f)) snprintf(comm, sizeof comm, "?");
      if (f) fclose(f);
      comm[strcspn(comm, "\n")] = 0;
      for (char *c = comm; *c; c++)
        if (*c == ' ') *c = '_';
      fprintf(log, "%ld %s %s %s\n", pid, comm, mnt, root);
    }
    if (d) closedir(d);
    usleep(1000); /* a scan a millisecond is plenty against stretched steps, and spares the machine */
  }
}
"""

# What each runtime's own setup processes call themselves: ocirun-init (or "ocirun" for the clone of the
# runtime before it execs that), runc:[0:PARENT], [1:CHILD], [2:INIT].
SETUP_COMM = {"ocirun": "ocirun", "runc": "runc:["}


@pytest.fixture(scope="module")
def watcher_exe(tmp_path_factory) -> str:  # noqa: ANN001
    d = tmp_path_factory.mktemp("watcher")
    (d / "watcher.c").write_text(WATCHER_C)
    exe = str(d / "watcher")
    r = subprocess.run(["cc", "-static", "-O2", "-o", exe, str(d / "watcher.c")], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no static C toolchain: {r.stderr.strip()[:200]}")
    return exe


def call(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    with tempfile.TemporaryFile() as out:  # a file: a detached container keeps its stdio
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=120,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        out.seek(0)
        p.out = out.read().decode(errors="replace")
    if check and p.returncode:
        raise AssertionError(f"{argv} failed ({p.returncode}): {p.out}")
    return p


def stretched(argv: list[str], syscalls: str) -> list[str]:
    """argv under strace -f, each of `syscalls` (comma-separated) delayed by DELAY_US on entry."""
    if not STRACE:
        pytest.skip("no strace to stretch the setup steps")
    return [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscalls}",
            "-e", f"inject={syscalls}:delay_enter={DELAY_US}", *argv]


def watcher_bundle(bundle, watcher_exe: str, marker: str, userns: bool = False):  # noqa: ANN001, ANN201
    """A CAP_SYS_PTRACE container running the watcher (in a user namespace of its own: root is host 100000)."""
    args = ["/watcher", marker, os.readlink("/proc/self/ns/mnt"), "/dev/shm/watch.log"]
    if userns:
        b = userns_bundle(bundle, [])
        ptrace_capable(b)
    else:
        b = bundle(args)
        ptrace_capable(b)
    b.spec["process"]["args"] = args
    b.write()
    shutil.copy(watcher_exe, os.path.join(b.rootfs, "watcher"))
    return b


def sightings(init: int, until_quiet: float = 0.5) -> list[list[str]]:
    """The watcher's lines (pid, comm, mnt, root), once it has written nothing new for `until_quiet` s."""
    log = f"/proc/{init}/root/dev/shm/watch.log"
    last, end = None, time.monotonic() + 20
    while time.monotonic() < end:
        try:
            with open(log) as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        if text.startswith("ready\n") and text == last:
            return [ln.split() for ln in text.splitlines()[1:]]
        last = text
        time.sleep(until_quiet)
    raise AssertionError(f"the watcher never settled: {last!r}")


def host_marker(tmp_path) -> str:  # noqa: ANN001
    marker = tmp_path / "only-on-the-host"
    marker.write_text("host\n")
    return str(marker)


def test_exec_child_never_visible_in_the_host_mount_namespace(runtime, bundle, watcher_exe, tmp_path):
    """`exec` into a CAP_SYS_PTRACE container whose process watches its pid namespace, every setns and the
    setsid after them stretched: the watcher sees the runtime's setup process (the setsid wait is after the
    namespace joins), always in the container's mount namespace with the container's root, never a process in
    the host's mount namespace or with the host's root. runc 1.1 (nsexec: stage 1 joins, stage 2 forks into the
    pid namespace) shows the same."""
    name, cmd = runtime.name, runtime.argv
    b = watcher_bundle(bundle, watcher_exe, host_marker(tmp_path))
    call([*cmd, "run", "-d", "-b", b.path, b.id])
    try:
        init = runtime.pid(b.id)
        sightings(init)
        for _ in range(2):
            p = call(stretched([*cmd, "exec", b.id, "/bin/sh", "-c", "exit 3"], "setns,setsid"), check=False)
            assert p.returncode == 3, (name, p.out)
        seen = sightings(init)
    finally:
        call([*cmd, "delete", "-f", b.id], check=False)
    setup = [s for s in seen if s[1].startswith(SETUP_COMM[name])]
    assert setup, (name, seen)  # the stretch worked: the setup was caught while it ran
    assert all(s[2] == "self" and s[3] == "-" for s in seen), (name, seen)


PROC_PIDNS_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x20000) or libc.mount(None, b"/", None, (1 << 14) | (1 << 18), None):
    sys.exit(2)
sys.exit(0 if libc.mount(b"proc", sys.argv[1].encode(), b"proc", 0, b"pidns=/proc/self/ns/pid") == 0 else 1)
"""


def proc_has_pidns_option(tmp_path) -> bool:  # noqa: ANN001
    """procfs' pidns= mount option (2025; this host's 6.18 has it, Debian 12's 6.1 not), tried in a private
    mount namespace."""
    d = tmp_path / "proc-probe"
    d.mkdir()
    return subprocess.run([sys.executable, "-c", PROC_PIDNS_PROBE, str(d)]).returncode == 0


def test_init_joining_a_pid_namespace_is_never_visible_with_the_host_root(runtime, bundle, watcher_exe, tmp_path):
    """A container B created into container A's pid namespace (linux.namespaces pid with a path), pivot_root
    and the keyring join after it stretched: A's watcher sees B's init only once it is in B's own mount
    namespace with B's root, never with the host's root. runc 1.1 forks into the pid namespace before it
    sets up the root, so A can reach the host's filesystem through B's init there (shown, not asserted)."""
    name, cmd = runtime.name, runtime.argv
    if name == "ocirun" and not proc_has_pidns_option(tmp_path):
        pytest.skip("kernel without procfs' pidns= option: the init enters the pid namespace at its proc mount "
                    "(what follows until pivot_root is visible there, as with runc)")
    marker = host_marker(tmp_path)
    a = watcher_bundle(bundle, watcher_exe, marker)
    call([*cmd, "run", "-d", "-b", a.path, a.id])
    b = bundle(["true"])
    try:
        init = runtime.pid(a.id)
        sightings(init)
        for n in b.spec["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = f"/proc/{init}/ns/pid"
        b.write()
        call(stretched([*cmd, "run", "-d", "-b", b.path, b.id], "pivot_root,keyctl"))
        seen = sightings(init)
    finally:
        call([*cmd, "delete", "-f", b.id], check=False)
        call([*cmd, "delete", "-f", a.id], check=False)
    setup = [s for s in seen if s[1].startswith(SETUP_COMM[name])]
    assert setup, (name, seen)
    assert not any(s[2] in ("host", "self") for s in setup), (name, seen)  # B's own mount namespace
    leaked = [s for s in seen if s[3] == "HOST"]
    if name == "runc":
        print(f"runc: {len(leaked)} of {len(setup)} sightings of its init reach the host's root: {leaked}")
        return
    assert not leaked and all(s[3] == "-" for s in seen), (name, seen)


def test_exec_child_stays_undumpable_until_its_execve(runtime, bundle, watcher_exe, tmp_path):
    """In a container with a user namespace of its own, CAP_SYS_PTRACE there lets the watcher read /proc of
    the container's dumpable processes (the command, or its child), but not of the runtime's setup process:
    that one is not dumpable (and its memory belongs to the host's user namespace) until its final execve, so
    /proc refuses its ns/mnt and root (EACCES) even while the setsid wait holds it in the container's pid
    namespace. runc 1.1 shows the same."""
    name, cmd = runtime.name, runtime.argv
    b = watcher_bundle(bundle, watcher_exe, host_marker(tmp_path), userns=True)
    call([*cmd, "run", "-d", "-b", b.path, b.id])
    try:
        init = runtime.pid(b.id)
        sightings(init)
        p = call(stretched([*cmd, "exec", b.id, "/bin/sh", "-c", "sleep 0.3; exit 3"], "setns,setsid"),
                 check=False)
        assert p.returncode == 3, (name, p.out)
        seen = sightings(init)
    finally:
        call([*cmd, "delete", "-f", b.id], check=False)
    setup = [s for s in seen if s[1].startswith(SETUP_COMM[name])]
    assert setup and all(s[2] == s[3] == "denied-13" for s in setup), (name, seen)
    assert any(s[2:] == ["self", "-"] for s in seen if s not in setup), (name, seen)  # the command's: readable


def join_pid_of(b, pid: int):  # noqa: ANN001, ANN201
    for n in b.spec["linux"]["namespaces"]:
        if n["type"] == "pid":
            n["path"] = f"/proc/{pid}/ns/pid"
    return b.write()


def test_hooks_of_an_init_joining_a_pid_namespace_get_its_final_pid(rt, bundle, tmp_path):
    """With hooks the init forks into the joined pid namespace before them (they are given its pid): the
    prestart hook's state names the init that runs, in that namespace, with a root that is still the host's
    (createRuntime hooks run before pivot_root), and createContainer runs inside as the spec says."""
    a = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", a.path, a.id, check=True)
    b = bundle(["sleep", "1000"])
    try:
        first = rt.state(a.id)["pid"]
        join_pid_of(b, first)
        b.spec["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {tmp_path}/state"]}]}
        b.write()
        rt("create", "-b", b.path, b.id, check=True)
        pid = rt.state(b.id)["pid"]
        assert json.loads((tmp_path / "state").read_text())["pid"] == pid
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{first}/ns/pid")
        rt("start", b.id, check=True)
        assert rt.state(b.id)["status"] == "running"
    finally:
        rt("delete", "-f", b.id)
        rt("delete", "-f", a.id, check=True)


def test_init_with_its_own_user_namespace_joins_a_host_owned_pid_namespace(rt, bundle):
    """B makes a user namespace of its own but joins A's pid namespace, which the host's user namespace owns:
    the pid setns comes before B's user namespace exists (it needs CAP_SYS_ADMIN over that owner)."""
    a = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", a.path, a.id, check=True)
    b = userns_bundle(bundle, ["CAP_KILL"])
    # No proc of its own (only the owner of a pid namespace's user namespace may mount one for it), so no
    # masked or read-only paths either (they are mounted through /proc/self/fd).
    b.spec["mounts"] = [m for m in b.spec["mounts"] if m["type"] != "proc"]
    b.spec["linux"]["maskedPaths"] = b.spec["linux"]["readonlyPaths"] = []
    try:
        first = rt.state(a.id)["pid"]
        join_pid_of(b, first)
        rt("run", "-d", "-b", b.path, b.id, check=True)
        pid = rt.state(b.id)["pid"]
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{first}/ns/pid")
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read() == b"sleep\x001000\x00"
        assert os.stat(f"/proc/{pid}").st_uid == 100000
    finally:
        rt("delete", "-f", b.id)
        rt("delete", "-f", a.id, check=True)


def nspid(pid: int) -> list[str]:
    return proc_status(pid)["NSpid"].split()


def test_proc_of_an_init_joining_a_pid_namespace_shows_that_namespace(rt, bundle):
    """B's /proc is mounted before B's init enters A's pid namespace (with procfs' pidns= option, or, on a
    kernel without it, by entering the namespace right then): it lists A's pid namespace, not the host's
    (a proc mounted by a process outside that namespace would show the runtime's)."""
    a = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", a.path, a.id, check=True)
    b = bundle(["sleep", "1001"])
    try:
        first = rt.state(a.id)["pid"]
        join_pid_of(b, first)
        rt("run", "-d", "-b", b.path, b.id, check=True)
        pid = rt.state(b.id)["pid"]
        listed = sorted(int(n) for n in os.listdir(f"/proc/{pid}/root/proc") if n.isdigit())
        assert listed == sorted(int(nspid(p)[-1]) for p in (first, pid)), (listed, nspid(first), nspid(pid))
        with open(f"/proc/{pid}/root/proc/1/cmdline", "rb") as f:
            assert f.read() == b"sleep\x001000\x00"
    finally:
        rt("delete", "-f", b.id)
        rt("delete", "-f", a.id, check=True)


def test_killing_a_failed_child_kills_the_process_it_forked_too():
    """A child killed after it forked into its pid namespace but before the runtime read its report
    (MSG_PID) leaves no process: Child.kill reads what is pending and kills the one it names."""
    import socket

    from ocirun import executor

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    first, second = (subprocess.Popen(["sleep", "1000"]) for _ in range(2))
    try:
        theirs.send(executor.MSG_PID.to_bytes(4, "little") + second.pid.to_bytes(4, "little") + bytes(4))
        executor.Child(first.pid, ours.detach(), None, None).kill()
        assert not os.path.exists(f"/proc/{first.pid}") and not os.path.exists(f"/proc/{second.pid}")
    finally:
        theirs.close()
        for p in (first, second):
            if os.path.exists(f"/proc/{p.pid}"):
                p.kill()
                p.wait()


def test_joining_a_pid_namespace_that_is_not_there_is_one_clear_error(rt, bundle, tmp_path):
    """A pid namespace path that does not exist, or names another namespace type, fails create with one line
    naming the path (the child opens it, as every namespace path), and leaves nothing behind (the fixtures
    check)."""
    b = bundle(["true"])
    for path, why in ((str(tmp_path / "nope"), "No such file or directory"), ("/proc/self/ns/net", "Invalid argument")):
        for n in b.spec["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = path
        b.write()
        p = rt("run", "-b", b.path, b.id)
        assert p.returncode == 1 and p.err.count("\n") == 1, p.err
        assert p.err.startswith("ocirun: container init: linux.namespaces.pid: ") and path in p.err, p.err
        assert p.err.rstrip().endswith(why), p.err
        assert not os.path.exists(os.path.join(rt.root, b.id))
