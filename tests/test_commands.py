"""ps, events, kill --all, --systemd-cgroup: the commands that manage a running container."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from ocitest import ocirun_cmd, wait_stopped


def started(rt, b) -> int:  # noqa: ANN001
    b.write()
    rt("run", "-d", "-b", b.path, b.id, check=True)
    return rt.state(b.id)["pid"]


def test_ps_json_and_table(rt, bundle):
    b = bundle(["sh", "-c", "sleep 1000 & sleep 1000"])
    init = started(rt, b)
    time.sleep(0.2)
    pids = json.loads(rt("ps", "--format", "json", b.id, check=True).out)
    assert init in pids and len(pids) == 2
    table = rt("ps", b.id, check=True).out.splitlines()
    assert "PID" in table[0].split() and len(table) == 3
    rt("delete", "-f", b.id, check=True)
    p = rt("ps", b.id)
    assert p.returncode == 1 and "does not exist" in p.err


def test_kill_all_signals_every_process(rt, bundle):
    b = bundle(["sh", "-c", "sleep 1000 & sleep 1000"])
    started(rt, b)
    time.sleep(0.2)
    pids = json.loads(rt("ps", "--format", "json", b.id, check=True).out)
    assert len(pids) >= 2, pids  # (the shell and its background sleep at least)
    rt("kill", "--all", b.id, "KILL", check=True)
    wait_stopped(rt, b.id)
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{p}/cmdline") and open(f"/proc/{p}/cmdline").read() for p in pids):  # noqa: SIM115
        assert time.monotonic() < deadline, "processes survived kill --all"
        time.sleep(0.05)
    rt("delete", b.id, check=True)


def test_events_stats(rt, bundle):
    b = bundle(["sleep", "1000"])
    b.spec["linux"]["resources"]["pids"] = {"limit": 30}
    b.spec["linux"]["resources"]["memory"] = {"limit": 32 << 20}
    started(rt, b)
    ev = json.loads(rt("events", "--stats", b.id, check=True).out)
    assert ev["type"] == "stats" and ev["id"] == b.id
    data = ev["data"]
    assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 30
    assert data["memory"]["usage"]["limit"] == 32 << 20 and data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    rt("delete", "-f", b.id, check=True)


def test_events_stream_reports_oom_and_ends_with_the_container(rt, bundle):
    b = bundle(["sh", "-c", "sleep 1; tail /dev/zero"])
    b.spec["linux"]["resources"]["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    started(rt, b)
    p = subprocess.run([*ocirun_cmd(), "--root", rt.root, "events", "--interval", "300ms", b.id],
                       capture_output=True, text=True, timeout=30)
    events = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert events[0]["type"] == "stats"
    assert any(e["type"] == "oom" and e["id"] == b.id for e in events), events
    rt("delete", "-f", b.id, check=True)


def test_events_bad_interval(rt, bundle):
    b = bundle(["sleep", "1000"])
    started(rt, b)
    p = rt("events", "--interval", "soon", b.id)
    assert p.returncode == 1 and "invalid duration" in p.err
    rt("delete", "-f", b.id, check=True)


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
def test_systemd_cgroup_without_systemd(rt, bundle):
    b = bundle(["true"])
    b.spec["linux"]["cgroupsPath"] = "system.slice:ocirun:" + b.id
    b.write()
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1 and "systemd" in p.err and "Traceback" not in p.err
    p = subprocess.run([*ocirun_cmd(), "--root", rt.root, "--systemd-cgroup", "create", "-b", b.path, b.id],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.startswith("ocirun: --systemd-cgroup: systemd is not running")
    assert not os.path.exists(os.path.join(rt.root, b.id))
