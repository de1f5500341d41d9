"""Global and create options from runc and crun: --log/--debug for every command, --config FILE,
--cgroup-manager cgroupfs|systemd|disabled. Side by side with runc where runc has the option."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from test_runc_parity import RUNTIMES, Cli


@pytest.fixture(params=RUNTIMES)
def cli(request, tmp_path, bundle):  # noqa: ANN001, ANN201
    c = Cli(request.param, str(tmp_path / f"root-{request.param}"))
    yield c
    for cid in os.listdir(c.root) if os.path.isdir(c.root) else []:
        c("delete", "--force", cid)


# --- --log and --debug --------------------------------------------------------------------------------------


def log_lines(path: str, fmt: str) -> list[tuple[str, str]]:
    """(level, msg) of each line, parsed the way clients parse them (logrus text, or one JSON object a line)."""
    out = []
    with open(path) as f:
        for ln in f.read().splitlines():
            if fmt == "json":
                obj = json.loads(ln)
                assert set(obj) >= {"level", "msg", "time"}, obj
                out.append((obj["level"], obj["msg"]))
            else:
                assert ln.startswith('time="') and " level=" in ln and " msg=" in ln, ln
                level = ln.split(" level=", 1)[1].split(" ", 1)[0]
                out.append((level, ln.split(" msg=", 1)[1]))
    return out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_file_is_created_by_every_command(cli, tmp_path, fmt):
    """As runc: the file is opened by every command; without --debug it holds only warnings and errors."""
    log = str(tmp_path / f"{cli.name}.log")
    for args in (["list"], ["list", "--format", "json"], ["state", "nosuch"], ["features"], ["ps", "nosuch"]):
        if os.path.exists(log):
            os.unlink(log)
        p = cli("--log", log, "--log-format", fmt, *args)
        assert os.path.exists(log), args
        lines = log_lines(log, fmt)
        if p.returncode == 0:
            assert lines == [], (args, lines)
        else:
            assert len(lines) == 1 and lines[0][0] == "error" and "does not exist" in lines[0][1], lines


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_writes_a_line_per_step(cli, bundle, tmp_path, fmt):
    b = bundle(["sleep", "1000"])
    log = str(tmp_path / f"{cli.name}.log")
    cli("--debug", "--log", log, "--log-format", fmt, "run", "-d", "-b", b.path, b.id, check=True)
    lines = log_lines(log, fmt)
    assert len(lines) >= 3 and {lv for lv, _ in lines} == {"debug"}, lines
    if cli.name == "ocirun":
        text = "\n".join(m for _, m in lines)
        for step in ("config.load", "clone", "state.save", "start"):
            assert step in text, (step, text)
    os.unlink(log)
    cli("--debug", "--log", log, "--log-format", fmt, "delete", "-f", b.id, check=True)
    assert all(lv == "debug" for lv, _ in log_lines(log, fmt))


def test_debug_without_log_goes_to_stderr(rt, bundle):
    b = bundle(["sleep", "1000"])
    p = rt("--debug", "create", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    lines = p.err.splitlines()
    assert lines and all(" level=debug msg=" in ln for ln in lines), p.err
    assert any("clone" in ln for ln in lines)
    p = rt("--debug", "state", "nosuch")
    assert p.returncode == 1 and p.err.splitlines()[-1] == 'ocirun: container "nosuch": does not exist', p.err
    rt("delete", "-f", b.id, check=True)


def test_log_that_cannot_be_opened(cli, tmp_path):
    p = cli("--log", str(tmp_path / "no" / "such" / "dir" / "log"), "list")
    assert p.returncode == 1 and "no such file or directory" in p.err
    if cli.name == "ocirun":
        assert p.err.strip() == f"ocirun: --log {tmp_path}/no/such/dir/log: no such file or directory"


def test_bad_log_format(cli):
    p = cli("--log-format", "yaml", "list")
    assert p.returncode == 1 and "yaml" in p.err


def test_log_without_debug_costs_no_tracer_import(rt, tmp_path):
    """--log alone (containerd passes it on every call) opens the file and imports nothing more: the tracer
    behind --debug is imported only with --debug."""
    import sys

    from ocitest import ROOT

    def imports(*flags: str) -> str:
        argv = ["--root", rt.root, "--log", str(tmp_path / "log"), *flags, "list"]
        code = (f"import sys\nimport ocirun.cli as c\nc.run({argv!r})\n"
                "print('ocirun.tracer' in sys.modules)\n")
        p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
        return p.stdout.splitlines()[-1]

    assert imports() == "False"
    assert imports("--debug") == "True"


# --- --config (crun) -----------------------------------------------------------------------------------------


def test_config_file_other_than_the_bundles(rt, bundle, tmp_path):
    """crun's `--config FILE`: the config from FILE (relative to the current directory), root.path still
    relative to the bundle."""
    b = bundle(["sh", "-c", "echo from-bundle-config"])
    alt = dict(b.spec, process=dict(b.spec["process"], args=["sh", "-c", "echo from-alt-config"]))
    (tmp_path / "alt.json").write_text(json.dumps(alt))
    for flag in (["--config", "alt.json"], ["-f", "alt.json"], [f"--config={tmp_path}/alt.json"]):
        p = rt("run", *flag, "-b", b.path, b.id, cwd=str(tmp_path))
        assert p.returncode == 0 and p.out == "from-alt-config\n", (flag, p.out, p.err)
    os.unlink(os.path.join(b.path, "config.json"))  # not read at all with --config
    p = rt("create", "--config", str(tmp_path / "alt.json"), "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert rt.state(b.id)["bundle"] == b.path
    rt("delete", "-f", b.id, check=True)
    p = rt("create", "--config", str(tmp_path / "missing.json"), "-b", b.path, b.id)
    assert p.returncode == 1 and p.err.strip() == f"ocirun: {tmp_path}/missing.json: no such file or directory"
    assert not os.path.exists(os.path.join(rt.root, b.id))


# --- --cgroup-manager (crun) ---------------------------------------------------------------------------------


def own_cgroups(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return sorted(f.read().splitlines())


def test_cgroup_manager_disabled(rt, bundle):
    """No cgroup of its own: the container stays in the runtime's cgroups (crun's disabled manager); what
    needs a cgroup is a clear error, the rest works."""
    b = bundle(["sh", "-c", "sleep 1000 & sleep 1000"])
    b.spec["linux"]["resources"]["pids"] = {"limit": 5}  # (unapplied, as crun: there is no cgroup)
    b.write()
    rt("--cgroup-manager", "disabled", "run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    assert own_cgroups(pid) == own_cgroups("self")  # we are the runtime's parent: the same cgroups
    assert b.cgroup not in "".join(own_cgroups(pid))
    assert not any(os.path.exists(f"/sys/fs/cgroup/{c}{b.cgroup}") for c in os.listdir("/sys/fs/cgroup"))
    assert rt.internal(b.id)["cgroup"] == {"mode": "disabled"}
    assert json.loads(rt("ps", "--format", "json", b.id, check=True).out) == [pid]
    rt("exec", b.id, "true", check=True)
    for cmd in (["pause", b.id], ["update", "--pids-limit", "10", b.id], ["events", "--stats", b.id],
                ["exec", "--cgroup", "sub", b.id, "true"]):
        p = rt(*cmd)
        assert p.returncode != 0 and "not using cgroups" in p.err and "Traceback" not in p.err, (cmd, p.err)
        assert len(p.err.splitlines()) == 1, p.err
    rt("kill", "--all", b.id, "KILL", check=True)  # the init (pid 1 of its namespace takes the rest along)
    deadline = time.monotonic() + 10
    while rt.state(b.id)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rt("delete", b.id, check=True)
    assert not os.path.exists(os.path.join(rt.root, b.id))


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
def test_cgroup_manager_systemd_is_systemd_cgroup(rt, bundle):
    b = bundle(["true"])
    a = rt("--cgroup-manager", "systemd", "create", "-b", b.path, b.id)
    c = rt("--systemd-cgroup", "create", "-b", b.path, b.id)
    assert a.returncode == c.returncode == 1 and a.err == c.err and "systemd" in a.err
    assert not os.path.exists(os.path.join(rt.root, b.id))


def test_cgroup_manager_cgroupfs_and_bad_values(rt, bundle):
    b = bundle(["true"])
    rt("--cgroup-manager", "cgroupfs", "run", "-b", b.path, b.id, check=True)
    p = rt("--cgroup-manager", "nope", "list")
    assert p.returncode == 1 and p.err.strip() == ('ocirun: --cgroup-manager: unknown cgroup manager "nope" '
                                                   "(cgroupfs, systemd or disabled)")


@pytest.mark.skipif(shutil.which("crun") is None, reason="crun not installed")
def test_crun_knows_the_same_cgroup_managers():
    """The values come from crun (runc has no --cgroup-manager): crun refuses others the same way."""
    p = subprocess.run(["crun", "--cgroup-manager", "nope", "list"], capture_output=True, text=True)
    assert p.returncode != 0 and "unknown cgroup manager" in p.stderr
    for v in ("cgroupfs", "systemd", "disabled"):
        p = subprocess.run(["crun", "--root", "/nonexistent-crun-root", "--cgroup-manager", v, "list"],
                           capture_output=True, text=True)
        assert "unknown cgroup manager" not in p.stderr, (v, p.stderr)


def _systemd_is_pid1() -> bool:
    try:
        with open("/proc/1/comm") as f:
            return f.read().strip() == "systemd" and os.path.isdir("/run/systemd/system")
    except OSError:
        return False


@pytest.mark.systemd
@pytest.mark.skipif(not _systemd_is_pid1(), reason="needs systemd as PID 1 (make test-systemd)")
def test_cgroup_manager_systemd_uses_the_systemd_driver(rt, bundle):
    """crun's `--cgroup-manager systemd` selects the systemd driver exactly as --systemd-cgroup: a transient
    scope in the slice the cgroupsPath names, the init inside it, gone after delete."""
    b = bundle(["sleep", "1000"])
    unit = f"ocitest-{b.id}.scope"
    b.spec["linux"]["cgroupsPath"] = f"ocitest.slice:ocitest:{b.id}"
    b.cgroup = f"/ocitest.slice/{unit}"
    b.write()
    rt("--cgroup-manager", "systemd", "run", "-d", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    show = subprocess.run(["systemctl", "show", unit, "--property=ActiveState"], capture_output=True, text=True)
    assert show.stdout.strip() == "ActiveState=active", show.stdout
    assert any(unit in ln for ln in own_cgroups(pid)), own_cgroups(pid)
    rt("--cgroup-manager", "systemd", "delete", "-f", b.id, check=True)
    show = subprocess.run(["systemctl", "show", unit, "--property=ActiveState"], capture_output=True, text=True)
    assert show.stdout.strip() != "ActiveState=active"
