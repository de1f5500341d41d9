"""The C launcher (tools/launcher.c): it execs the interpreter, and for create/run/exec on a host with v1
hierarchies first forks the child that warms the cgroup attach lock; the runtime stops and reaps it."""

import os
import subprocess

import pytest
from ocitest import ocirun_cmd

PURE_V2 = os.path.exists("/sys/fs/cgroup/cgroup.procs")


def _is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def test_launcher_is_native_and_passes_arguments() -> None:
    launcher = ocirun_cmd()[0]
    if not _is_elf(launcher):
        pytest.skip("no C compiler: the launcher is the #! script")
    p = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("ocirun version "), p.stderr
    p = subprocess.run([launcher, "--root", "/nonexistent", "state", "no-such-id"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and 'container "no-such-id"' in p.stderr


@pytest.mark.skipif(PURE_V2, reason="pure cgroup v2: clone3 joins the cgroup, nothing to warm")
def test_run_and_exec_stop_the_warm_up_child(rt, bundle) -> None:  # noqa: ANN001
    if not _is_elf(ocirun_cmd()[0]):
        pytest.skip("no C compiler: the launcher is the #! script")
    b = bundle(["sleep", "1000"])
    p = rt("--trace", "run", "-d", "-b", b.path, b.id)
    try:
        assert p.returncode == 0, p.err
        warm = [ln for ln in p.err.splitlines() if "cgroup.prewarm" in ln]
        assert warm and "warm-up child" in warm[0], p.err
        runtime = [ln.split()[7] for ln in p.err.splitlines() if ln.startswith("ocirun trace:") and " runtime " in ln]
        assert runtime.index("cgroup.prewarm") < runtime.index("clone"), runtime  # stopped before the clone
        p = rt("--trace", "exec", b.id, "true")
        assert p.returncode == 0, p.err
        assert "warm-up child" in p.err
    finally:
        rt("delete", "--force", b.id, check=True)
