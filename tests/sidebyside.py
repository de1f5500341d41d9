"""Run one scenario under ocirun and under runc with the same bundle (runc parity): the `runtime` fixture is
parametrized over both and skips runc where it is not installed. Also static helper programs built for tests
to run on the host or inside a busybox container (a hook probe, an sd_notify sender).

Imported by name (`from sidebyside import …`), like ocitest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from ocitest import ocirun_cmd

RUNC = shutil.which("runc")
RUNTIMES = ["ocirun", "runc"]


class Runner:
    """One runtime on a private --root: runtime(args...) → CompletedProcess with .out/.err, like the rt fixture.

    `env` is the runtime's whole environment (default: this process's), passed as is: what a hook without `env`
    sees is exactly what was given here."""

    def __init__(self, name: str, root: str) -> None:
        if name == "runc" and not RUNC:
            pytest.skip("runc is not installed: no side-by-side run")
        self.name = name
        self.root = root
        self.base = ocirun_cmd() if name == "ocirun" else [RUNC]

    @property
    def argv(self) -> list[str]:
        return [*self.base, "--root", self.root]

    def __call__(self, *args: str, timeout: float = 30, env: dict[str, str] | None = None, check: bool = False,
                 **kw: object) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:  # a created init keeps stdio open
            p = subprocess.run([*self.argv, *args], stdout=fo, stderr=fe, timeout=timeout, stdin=subprocess.DEVNULL,
                               env=dict(os.environ) if env is None else env, **kw)
            fo.seek(0)
            fe.seek(0)
            p.out, p.err = fo.read().decode(errors="replace"), fe.read().decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} failed ({p.returncode}): {p.err}")
        return p

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, env=dict(os.environ) if env is None else env)

    def cleanup(self, cid: str) -> None:
        self("delete", "--force", cid)

    def pid(self, cid: str) -> int:
        p = self("state", cid)
        assert p.returncode == 0, p.err
        return json.loads(p.out)["pid"]

    def containers(self) -> list[str]:
        """The ids this runtime still has state for."""
        if not os.path.isdir(self.root):
            return []
        return [n for n in os.listdir(self.root) if not n.startswith(".")]


@pytest.fixture(params=RUNTIMES)
def runtime(request, tmp_path, bundle):  # noqa: ANN001, ANN201
    """Set up after `bundle`, so its containers are gone before bundle checks that nothing is left."""
    r = Runner(request.param, str(tmp_path / f"root-{request.param}"))
    yield r
    for cid in r.containers():
        r.cleanup(cid)


def runc_version() -> tuple[int, ...]:
    """runc's version as numbers ((0,) when unknown): some behaviour is newer than the runc installed."""
    out = subprocess.run([RUNC, "--version"], capture_output=True, text=True).stdout.split()
    return tuple(int(x) for x in out[2].split("+")[0].split("-")[0].split(".")) if len(out) > 2 else (0,)


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
