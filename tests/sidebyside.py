"""The same bundle under ocirun and, when it is installed, runc: a `runtime` fixture parametrised over both with
one call shape, and static helper programs built for tests to run on the host or inside a container.

Imported by name (`from sidebyside import runtime`), like ocitest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest
from ocitest import ocirun_cmd

RUNC = shutil.which("runc")
RUNTIMES = ["ocirun"] + (["runc"] if RUNC else [])


class Runner:
    """One runtime on a private --root: runner("run", "-b", path, id, env={...}) → CompletedProcess (.out, .err).

    `env` is the runtime's whole environment (default: this process's), passed as is: what a hook without `env`
    sees is exactly what was given here."""

    def __init__(self, name: str, root: str) -> None:
        self.name = name
        self.root = root
        self.argv = ocirun_cmd() if name == "ocirun" else [RUNC]

    def __call__(self, *args: str, env: dict[str, str] | None = None, check: bool = False, timeout: float = 30,
                 **kw: object) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:  # a created init keeps stdio open
            p = subprocess.run([*self.argv, "--root", self.root, *args], stdout=fo, stderr=fe, timeout=timeout,
                               env=dict(os.environ) if env is None else env, **kw)
            fo.seek(0)
            fe.seek(0)
            p.stdout, p.stderr = fo.read(), fe.read()
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} failed ({p.returncode}): {p.err}")
        return p

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """The runtime in the background (output discarded), for a command that blocks."""
        return subprocess.Popen([*self.argv, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ) if env is None else env)

    def containers(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        return [n for n in os.listdir(self.root) if not n.startswith(".")]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, tmp_path) -> Runner:  # noqa: ANN001
    """Each scenario once per runtime; afterwards nothing may be left under either runtime's root."""
    r = Runner(request.param, str(tmp_path / f"root-{request.param}"))
    yield r
    left = r.containers()
    for cid in left:
        r("delete", "--force", cid)
    assert not left, f"{r.name}: containers left behind: {left}"


_BUILT: dict[str, str] = {}


def static_program(name: str, source: str) -> str:
    """Compile a C program statically (it runs on the host and in a busybox rootfs alike); its path.

    Skips the test when there is no static C toolchain (gcc with libc.a, or musl-gcc)."""
    if name in _BUILT:
        return _BUILT[name]
    d = tempfile.mkdtemp(prefix="ocirun-prog-")
    src, exe = os.path.join(d, f"{name}.c"), os.path.join(d, name)
    with open(src, "w") as f:
        f.write(source)
    why = "no C compiler"
    for cc in ("musl-gcc", "gcc", "cc"):
        if not shutil.which(cc):
            continue
        p = subprocess.run([cc, "-static", "-O1", "-o", exe, src], capture_output=True, text=True)
        if p.returncode == 0:
            os.chmod(d, 0o755)
            _BUILT[name] = exe
            return exe
        why = p.stderr.strip()[-300:]
    pytest.skip(f"cannot build a static {name}: {why}")


def install(prog: str, rootfs: str, dest: str = "bin") -> str:
    """Copy a static program into a rootfs; its path inside the container."""
    shutil.copy2(prog, os.path.join(rootfs, dest, os.path.basename(prog)))
    return f"/{dest}/{os.path.basename(prog)}"


# Writes its cwd, then one line per environment entry, then its stdin (the state JSON), to argv[1].
PROBE_C = r"""
#include <stdio.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
  char cwd[4096], buf[65536];
  FILE *f = argc > 1 ? fopen(argv[1], "w") : NULL;
  if (!f) return 2;
  fprintf(f, "cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
  for (char **e = environ; *e; e++) fprintf(f, "env=%s\n", *e);
  size_t n = fread(buf, 1, sizeof buf - 1, stdin);
  buf[n] = 0;
  fprintf(f, "stdin=%s\n", buf);
  return fclose(f) ? 3 : 0;
}
"""


def read_probe(path: str) -> dict:
    """What PROBE_C wrote: {"cwd": str, "env": [entries], "stdin": str}."""
    with open(path) as f:
        text = f.read()
    out: dict = {"env": []}
    body, _, out["stdin"] = text.partition("stdin=")
    for ln in body.splitlines():
        k, _, v = ln.partition("=")
        if k == "env":
            out["env"].append(v)
        else:
            out[k] = v
    return out


# Sends argv[1] as one datagram to $NOTIFY_SOCKET ("@name": abstract), as sd_notify(3) does.
SDNOTIFY_C = r"""
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || argc < 2) { fprintf(stderr, "sdnotify: no NOTIFY_SOCKET\n"); return 2; }
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  socklen_t len = sizeof a;
  if (a.sun_path[0] == '@') {
    a.sun_path[0] = 0;
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
  }
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (s < 0 || sendto(s, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&a, len) < 0) {
    perror("sdnotify");
    return 1;
  }
  return 0;
}
"""
