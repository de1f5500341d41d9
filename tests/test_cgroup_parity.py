"""cgroup behaviour ocirun shares with runc (issue 12): each scenario runs under ocirun and, when installed,
runc (cgroupfs driver), and both must behave the same; checked from inside the container and in cgroupfs.

  * device rules: linux.devices entries get a node but no allow rule (an explicit deny-all keeps them
    denied), runc's default allowed devices come after the spec's rules;
  * a container's cgroup that already has processes: a warning, not a failure (runc 1.1);
  * v1 cpuset under a parent made by a plain mkdir (empty cpus/mems): filled from the nearest ancestor.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from cgrouptest import read
from ocitest import Runtime

from ocirun.cgroups import detect_mode

RUNC = shutil.which("runc")
RUNTIMES = ["ocirun", *(["runc"] if RUNC else [])]
CG = "/sys/fs/cgroup"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


class Runc:
    """runc with a private --root, called like ocitest.Runtime."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
            p = subprocess.run([RUNC, "--root", self.root, *args], stdout=fo, stderr=fe, timeout=timeout)
            fo.seek(0)
            fe.seek(0)
            p.stdout, p.stderr = fo.read(), fe.read()
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"runc {' '.join(args)} failed ({p.returncode}): {p.err}")
        return p


@pytest.fixture(params=RUNTIMES)
def any_rt(request: pytest.FixtureRequest, rt: Runtime, tmp_path) -> Runtime | Runc:  # noqa: ANN001
    """ocirun (the rt fixture, which also checks nothing is left) or runc on its own root."""
    if request.param == "ocirun":
        yield rt
        return
    r = Runc(str(tmp_path / "runc-root"))
    yield r
    for cid in json.loads(r("list", "--format", "json").out or "null") or []:
        r("delete", "--force", cid["id"])


def run_in(r: Runtime | Runc, b, timeout: float = 30) -> subprocess.CompletedProcess:  # noqa: ANN001
    return r("run", "--bundle", b.path, b.id, timeout=timeout)


# ------------------------------------------------------------------------------------------------ devices

PROBE = ("sh", "-c", "cat /dev/probe 2>&1 && echo opened || echo refused")


def probe_bundle(bundle, allow: bool):  # noqa: ANN001, ANN201
    """c 1:200 exists nowhere (the mem driver has no such minor): opening it is ENXIO when the device
    cgroup lets it through and EPERM when it does not, so the shell's message tells which."""
    b = bundle(args=list(PROBE))
    b.spec["linux"]["devices"] = [{"path": "/dev/probe", "type": "c", "major": 1, "minor": 200, "fileMode": 0o666}]
    rules = [{"allow": False, "access": "rwm"}]
    if allow:
        rules.append({"allow": True, "type": "c", "major": 1, "minor": 200, "access": "rw"})
    b.spec["linux"]["resources"] = {"devices": rules}
    return b.write()


def test_linux_devices_entry_stays_denied_by_deny_all(any_rt, bundle) -> None:  # noqa: ANN001
    p = run_in(any_rt, probe_bundle(bundle, allow=False))
    assert p.returncode == 0, p.err
    assert "refused" in p.out and "Operation not permitted" in p.out + p.err, p.out + p.err


def test_linux_devices_entry_allowed_by_an_explicit_rule(any_rt, bundle) -> None:  # noqa: ANN001
    p = run_in(any_rt, probe_bundle(bundle, allow=True))
    assert p.returncode == 0, p.err
    assert "refused" in p.out and "No such device or address" in p.out + p.err, p.out + p.err


def test_default_devices_still_allowed_after_deny_all(any_rt, bundle) -> None:  # noqa: ANN001
    b = bundle(args=["sh", "-c", "echo x >/dev/null && head -c 4 /dev/zero | wc -c"])
    b.spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    p = run_in(any_rt, b.write())
    assert p.returncode == 0, p.err
    assert p.out.split() == ["4"]


def test_device_rules_unit() -> None:
    """The rules after the spec's: runc's defaults; a linux.devices entry of the same path drops the default's
    rule (runc's createDevices), and adds none of its own."""
    from ocirun import config, plan
    from ocirun.create import _device_rules

    spec = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["true"], "cwd": "/"},
            "linux": {"devices": [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}]}}
    d = tempfile.mkdtemp()
    try:
        os.mkdir(os.path.join(d, "rootfs"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(spec, f)
        rules = _device_rules(config.load(d))
        assert rules == list(plan.DEFAULT_DEVICE_RULES)
        spec["linux"]["devices"].append({"path": "/dev/null", "type": "c", "major": 1, "minor": 3})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(spec, f)
        rules = _device_rules(config.load(d))
    finally:
        shutil.rmtree(d)
    keys = [(r["type"], r["major"], r["minor"], r["access"]) for r in rules]
    assert ("c", 1, 3, "rwm") not in keys and ("c", 1, 11, "rwm") not in keys
    assert ("c", -1, -1, "m") in keys and ("c", 1, 5, "rwm") in keys
    assert len(keys) == len(plan.DEFAULT_DEVICE_RULES) - 1


# ------------------------------------------------------------------------------------------------ busy cgroup


def _hierarchy_dirs(rel: str) -> list[str]:
    """The directory of `rel` in every hierarchy this host has (v2: one; v1/hybrid: each mount but cpuset)."""
    if detect_mode() == "v2":
        return [CG + rel]
    out = []
    for name in sorted(os.listdir(CG)):
        mnt = os.path.join(CG, name)
        if os.path.islink(mnt) or not os.path.isdir(mnt) or name.startswith("cpuset"):
            continue
        out.append(mnt + rel)
    return out


def test_busy_cgroup_is_a_warning(any_rt, bundle) -> None:  # noqa: ANN001
    b = bundle(args=["true"])
    b.write()
    dirs = _hierarchy_dirs(b.cgroup)
    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        for d in dirs:
            os.makedirs(d, exist_ok=True)
            with open(d + "/cgroup.procs", "w") as f:
                f.write(str(sleeper.pid))
        p = any_rt("create", "--bundle", b.path, b.id)
        assert p.returncode == 0, p.err
        assert "cgroup is not empty: 1 process(es) found" in p.err, p.err
        any_rt("delete", "--force", b.id)
    finally:
        sleeper.kill()
        sleeper.wait()
        for d in reversed(dirs):
            for sub in (d, os.path.dirname(d)):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


def test_empty_cgroup_gives_no_warning(any_rt, bundle) -> None:  # noqa: ANN001
    b = bundle(args=["true"]).write()
    p = any_rt("create", "--bundle", b.path, b.id)
    assert p.returncode == 0, p.err
    assert "not empty" not in p.err
    any_rt("delete", "--force", b.id)


# ------------------------------------------------------------------------------------------------ v1 cpuset

V1_CPUSET = CG + "/cpuset"


@pytest.mark.skipif(detect_mode() == "v2" or not os.path.exists(V1_CPUSET + "/cpuset.cpus"),
                    reason="needs a v1 cpuset hierarchy")
def test_v1_cpuset_under_a_plain_mkdir_parent(any_rt, bundle) -> None:  # noqa: ANN001
    parent = f"/ocirun-test-mkdir-{uuid.uuid4().hex[:8]}"
    os.mkdir(V1_CPUSET + parent)  # as a plain mkdir leaves it: empty cpus and mems
    try:
        assert read(V1_CPUSET + parent + "/cpuset.cpus") == ""
        b = bundle(args=["sh", "-c", "cat /proc/self/status | grep Cpus_allowed_list"])
        b.cgroup = f"{parent}/mid/{b.id}"
        b.spec["linux"]["cgroupsPath"] = b.cgroup
        p = run_in(any_rt, b.write())
        assert p.returncode == 0, p.err
        root_cpus = read(V1_CPUSET + "/cpuset.cpus")
        for level in (parent, f"{parent}/mid"):
            assert read(V1_CPUSET + level + "/cpuset.cpus") == root_cpus, level
            assert read(V1_CPUSET + level + "/cpuset.mems") != "", level
    finally:
        for d in (f"{parent}/mid", parent):
            for ctrl in os.listdir(CG):
                try:
                    os.rmdir(f"{CG}/{ctrl}{d}")
                except OSError:
                    pass
