"""runc's command-line behaviour, side by side: each scenario runs under ocirun and, when installed, runc, on
the same bundle, and both must answer alike (exit status, output shape, the words clients match)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from ocitest import ocirun_cmd

from ocirun import cgroups

RUNC = shutil.which("runc")
RUNTIMES = ["ocirun"] + (["runc"] if RUNC else [])


class Cli:
    """One runtime on a private --root, called like the tests' `rt`."""

    def __init__(self, name: str, root: str) -> None:
        self.name = name
        self.root = root
        self.argv = ocirun_cmd() if name == "ocirun" else [RUNC]

    def __call__(self, *args: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:  # (a created init holds stdio)
            p = subprocess.run([*self.argv, "--root", self.root, *args], stdout=fo, stderr=fe, timeout=timeout)
            fo.seek(0)
            fe.seek(0)
            p.out, p.err = fo.read().decode(), fe.read().decode()
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)}: {p.returncode}: {p.err}")
        return p

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).out)

    def wait_stopped(self, cid: str) -> None:
        deadline = time.monotonic() + 10
        while self.state(cid)["status"] != "stopped":
            assert time.monotonic() < deadline, f"{cid} did not stop"
            time.sleep(0.02)


@pytest.fixture(params=RUNTIMES)
def cli(request, tmp_path, bundle):  # noqa: ANN001, ANN201
    """(after `bundle`, so that its containers are deleted before the bundle fixture checks for leftovers)"""
    c = Cli(request.param, str(tmp_path / f"root-{request.param}"))
    yield c
    for cid in os.listdir(c.root) if os.path.isdir(c.root) else []:
        c("delete", "--force", cid)


def test_version_is_shaped_as_runcs(cli):
    p = cli("--version", check=True)
    lines = p.out.splitlines()
    name = "ocirun" if cli.name == "ocirun" else "runc"
    assert lines[0].startswith(f"{name} version ") and len(lines[0].split()) == 3, lines
    assert lines[1].startswith("commit: ") and lines[2].startswith("spec: 1."), lines  # go-runc parses these


def test_kill_signal_0(cli, bundle):
    """0 asks whether the container runs: 0 while it does, "container not running" after; --all succeeds."""
    b = bundle(["sleep", "1000"])
    cli("run", "-d", "-b", b.path, b.id, check=True)
    assert cli("kill", b.id, "0").returncode == 0
    assert cli("kill", "-a", b.id, "0").returncode == 0
    assert cli.state(b.id)["status"] == "running"  # signal 0 did nothing
    cli("kill", b.id, "KILL", check=True)
    cli.wait_stopped(b.id)
    p = cli("kill", b.id, "0")
    assert p.returncode == 1 and "container not running" in p.err
    assert cli("kill", "-a", b.id, "0").returncode == 0
    cli("delete", b.id, check=True)


def test_ps_of_a_stopped_container(cli, bundle):
    b = bundle(["true"])
    cli("create", "-b", b.path, b.id, check=True)
    cli("start", b.id, check=True)
    cli.wait_stopped(b.id)
    p = cli("ps", "--format", "json", b.id)
    assert p.returncode == 0 and p.out.strip() == "null", (p.out, p.err)  # Go's empty list
    p = cli("ps", b.id)
    assert p.returncode == 0 and len(p.out.splitlines()) == 1 and "PID" in p.out, (p.out, p.err)  # the header
    cli("delete", b.id, check=True)


def test_list_and_state_keys_in_runcs_order(cli, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["annotations"] = {"org.example.k": "v"}
    b.write()
    cli("run", "-d", "-b", b.path, b.id, check=True)
    row = json.loads(cli("list", "--format", "json", check=True).out)[0]
    keys = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "annotations", "owner"]
    assert list(row) == keys and row["owner"] == "root" and row["annotations"] == {"org.example.k": "v"}
    st = json.loads(cli("state", b.id, check=True).out)
    assert list(st) == keys and st["owner"] == ""
    cli("delete", "-f", b.id, check=True)


@pytest.mark.skipif(cgroups.detect_mode() == "v2", reason="checks the v1 cpu.shares file")
def test_update_cpu_share_alias(cli, bundle):
    b = bundle(["sleep", "1000"])
    cli("run", "-d", "-b", b.path, b.id, check=True)
    cli("update", "--cpu-share", "333", b.id, check=True)
    with open(f"/sys/fs/cgroup/cpu{b.cgroup}/cpu.shares") as f:
        assert f.read().strip() == "333"
    cli("delete", "-f", b.id, check=True)


# The words clients and scripts match (containerd maps "container not running", "does not exist", "no such
# process" to NotFound), for the same situation under both runtimes: (setup, command, status, words).
ERRORS = [
    ("none", ["state", "{id}"], 1, "does not exist"),
    ("none", ["kill", "{id}", "9"], 1, "does not exist"),
    ("none", ["delete", "{id}"], 1, "does not exist"),
    ("none", ["start", "{id}"], 1, "does not exist"),
    ("none", ["pause", "{id}"], 1, "does not exist"),
    ("none", ["ps", "{id}"], 1, "does not exist"),
    ("running", ["start", "{id}"], 1, "cannot start an already running container"),
    ("running", ["delete", "{id}"], 1, "not stopped"),
    ("running", ["resume", "{id}"], 1, "container not paused"),
    ("running", ["create", "-b", "{bundle}", "{id}"], 1, "exists"),
    ("running", ["kill", "{id}", "FOO"], 1, "unknown signal"),
    ("paused", ["pause", "{id}"], 1, "container not running"),
    ("paused", ["exec", "{id}", "true"], 255, "cannot exec in a paused container"),
    ("stopped", ["kill", "{id}", "TERM"], 1, "container not running"),
    ("stopped", ["start", "{id}"], 1, "cannot start a container that has stopped"),
    ("stopped", ["pause", "{id}"], 1, "container not running"),
    ("stopped", ["update", "--pids-limit", "10", "{id}"], 1, "not running"),
    ("stopped", ["exec", "{id}", "true"], 255, "cannot exec in a stopped container"),
    ("stopped", ["events", "--stats", "{id}"], 1, "not running"),
]


@pytest.mark.parametrize("setup,cmd,status,words", ERRORS, ids=[" ".join(e[1][:1]) + "-" + e[0] for e in ERRORS])
def test_error_words(cli, bundle, setup, cmd, status, words):
    b = bundle(["sleep", "1000"])
    if setup != "none":
        cli("run", "-d", "-b", b.path, b.id, check=True)
    if setup == "paused":
        cli("pause", b.id, check=True)
    if setup == "stopped":
        cli("kill", b.id, "KILL", check=True)
        cli.wait_stopped(b.id)
    p = cli(*[a.format(id=b.id, bundle=b.path) for a in cmd])
    assert p.returncode == status, (p.returncode, p.err)
    assert words in p.err, p.err
    if cli.name == "ocirun":
        lines = p.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ocirun: "), p.err  # our one-line shape
    cli("delete", "-f", b.id)


def test_delete_force_of_a_missing_container_succeeds(cli):
    p = cli("delete", "--force", "nosuch")
    assert p.returncode == 0 and p.err == "", p.err
