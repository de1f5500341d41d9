"""Helpers shared by the client scenarios: running a client command, polling, the podman and ctr wrappers."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

IMAGE = "localhost/ocirun-busybox:latest"
CTR_NAMESPACE = "ocirun-clients"


class Result:
    """A finished client command: returncode, out, err."""

    def __init__(self, argv: list[str], rc: int, out: str, err: str) -> None:
        self.argv, self.returncode, self.out, self.err = argv, rc, out, err

    def __repr__(self) -> str:
        return f"<{' '.join(self.argv)}: rc={self.returncode} out={self.out!r} err={self.err!r}>"


def run_cmd(argv: list[str], env: dict[str, str], timeout: float = 60, check: bool = False,
            stdin: bytes = b"") -> Result:
    """Files, not pipes, for output: a detached container or shim may inherit them and hold a pipe open."""
    import tempfile

    with tempfile.TemporaryFile() as fi, tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        fi.write(stdin)
        fi.seek(0)
        p = subprocess.run(argv, stdout=fo, stderr=fe, stdin=fi, env=env, timeout=timeout)
        fo.seek(0)
        fe.seek(0)
        r = Result(argv, p.returncode, fo.read().decode(errors="replace"), fe.read().decode(errors="replace"))
    if check and r.returncode != 0:
        raise AssertionError(f"command failed: {r!r}")
    return r


def wait_for(cond, timeout: float = 20, what: str = "condition") -> None:  # noqa: ANN001
    """Poll until cond() is true (not a timing assertion: the timeout only bounds a hang)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def runtime_list(path: str, root: str | None = None) -> list[str]:
    """Container ids the runtime knows under a root (its default root when None)."""
    argv = [path, *(["--root", root] if root else []), "list", "-q"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return p.stdout.split()


# ---------------------------------------------------------------- podman


class Podman:
    """podman on private state, with `--runtime <path>`; call it like the CLI: podman("run", "--rm", ...)."""

    def __init__(self, base: str, env: dict[str, str]) -> None:
        self.base = base
        self.env = env
        self.runtime_name = "ocirun"
        self.runtime = ""
        self.cgroup_manager = "cgroupfs"  # "systemd": podman passes --systemd-cgroup and slice:prefix:name paths

    def __call__(self, *args: str, timeout: float = 60, check: bool = False, stdin: bytes = b"") -> Result:
        argv = ["podman", "--root", f"{self.base}/storage", "--runroot", f"{self.base}/runroot",
                "--storage-driver", "vfs", "--tmpdir", f"{self.base}/tmp", "--cgroup-manager", self.cgroup_manager,
                "--events-backend", "file"]
        if self.runtime:
            argv += ["--runtime", self.runtime]
        return run_cmd([*argv, *args], self.env, timeout=timeout, check=check, stdin=stdin)

    def name(self) -> str:
        return f"c{uuid.uuid4().hex[:10]}"


class Ctr:
    """ctr against the private containerd; run() adds --runc-binary/--runc-root for the runtime under test."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.sock = f"{base}/containerd.sock"
        self.env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                    "CONTAINERD_SNAPSHOTTER": "native"}
        self.runtime = ""
        self.runtime_root = ""

    def __call__(self, *args: str, timeout: float = 60, check: bool = False) -> Result:
        return run_cmd(["ctr", "--address", self.sock, "--namespace", CTR_NAMESPACE, *args], self.env,
                       timeout=timeout, check=check)

    def run(self, *args: str, timeout: float = 60, check: bool = False) -> Result:
        """`ctr run` with the runtime under test; the caller passes flags, image, id and command."""
        return self(*["run", "--runc-binary", self.runtime, "--runc-root", self.runtime_root,
                      "--fifo-dir", f"{self.base}/fifo", *args], timeout=timeout, check=check)

    def exec(self, *args: str, timeout: float = 60, check: bool = False) -> Result:
        return self("task", "exec", "--fifo-dir", f"{self.base}/fifo", *args, timeout=timeout, check=check)

    def tasks(self) -> dict[str, tuple[int, str]]:
        """`ctr task ls` → {id: (pid, STATUS)}."""
        out = self("task", "ls", check=True).out.splitlines()[1:]
        return {f[0]: (int(f[1]), f[2]) for f in (ln.split() for ln in out) if len(f) >= 3}

    def name(self) -> str:
        return f"c{uuid.uuid4().hex[:10]}"
