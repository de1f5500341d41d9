"""containerd (shim runc v2 through go-runc) driving the runtime with `ctr run --runc-binary`, per runtime."""

from __future__ import annotations

import pytest

from .clientlib import IMAGE, Ctr, wait_for

pytestmark = pytest.mark.clients


def detached(ctr: Ctr, *cmd: str) -> tuple[str, int]:
    """A running detached task: (id, init pid)."""
    cid = ctr.name()
    ctr.run("--detach", IMAGE, cid, *(cmd or ("sleep", "1000")), check=True)
    return cid, ctr.tasks()[cid][0]


def task_status(ctr: Ctr, cid: str) -> str:
    return ctr.tasks()[cid][1]


def test_run_rm(ctr: Ctr) -> None:
    """Output and exit code of a foreground task; the container is gone afterwards."""
    cid = ctr.name()
    r = ctr.run("--rm", IMAGE, cid, "sh", "-c", "echo hello; exit 3")
    assert r.returncode == 3 and r.out == "hello\n", r
    assert cid not in ctr("containers", "ls", "--quiet").out.split()


def test_exec(ctr: Ctr) -> None:
    """`ctr task exec`: output and exit code, --cwd, a detached exec seen by ps, a missing command refused."""
    cid, _ = detached(ctr)
    r = ctr.exec("--exec-id", "e1", cid, "sh", "-c", "echo in; exit 4")
    assert r.returncode == 4 and r.out == "in\n", r
    r = ctr.exec("--exec-id", "e2", "--cwd", "/tmp", cid, "pwd")
    assert r.returncode == 0 and r.out == "/tmp\n", r
    r = ctr.exec("--exec-id", "e3", cid, "no-such-command")
    assert r.returncode != 0 and "not found" in r.err, r


def test_ps(ctr: Ctr) -> None:
    """`ctr task ps` (the runtime's `ps --format json`) lists the init and a detached exec."""
    cid, pid = detached(ctr)
    ctr.exec("--detach", "--exec-id", "bg", cid, "sleep", "999", check=True)
    pids = [int(ln.split()[0]) for ln in ctr("task", "ps", cid, check=True).out.splitlines()[1:]]
    assert pid in pids and len(pids) == 2, pids


def test_kill(ctr: Ctr) -> None:
    """kill with a signal, and kill --all; the task ends STOPPED with the signal's status."""
    cid, _ = detached(ctr, "sh", "-c", "trap 'exit 9' USR1; while :; do sleep 0.1; done")
    ctr("task", "kill", "--signal", "SIGUSR1", cid, check=True)
    wait_for(lambda: task_status(ctr, cid) == "STOPPED", what=f"{cid} to stop")
    r = ctr("task", "delete", cid)
    assert r.returncode == 0, r
    cid, _ = detached(ctr)
    ctr.exec("--detach", "--exec-id", "bg", cid, "sleep", "999", check=True)
    ctr("task", "kill", "--all", "--signal", "SIGKILL", cid, check=True)
    wait_for(lambda: task_status(ctr, cid) == "STOPPED", what=f"{cid} to stop")


def test_pause_resume(ctr: Ctr) -> None:
    cid, _ = detached(ctr)
    ctr("task", "pause", cid, check=True)
    assert task_status(ctr, cid) == "PAUSED"
    ctr("task", "resume", cid, check=True)
    assert task_status(ctr, cid) == "RUNNING"
    assert ctr.exec("--exec-id", "e1", cid, "true").returncode == 0


def test_metrics(ctr: Ctr) -> None:
    """The shim reads the init's cgroups: memory and pids are reported for the container."""
    cid, _ = detached(ctr)
    r = ctr("task", "metrics", cid, check=True)
    rows = dict(ln.split(None, 1) for ln in r.out.splitlines() if len(ln.split()) >= 2)
    assert rows.get("pids.current", "").strip() == "1", r.out
    assert any(k.startswith("memory.") for k in rows), r.out


def test_delete(ctr: Ctr) -> None:
    """delete of a running task needs --force; then the container goes and the runtime forgets it."""
    cid, _ = detached(ctr)
    r = ctr("task", "delete", cid)
    assert r.returncode != 0, r
    ctr("task", "delete", "--force", cid, check=True)
    assert cid not in ctr.tasks()
    ctr("containers", "delete", cid, check=True)
