"""Plan compilation (pure logic) and the Python/C wire format."""

from __future__ import annotations

import os
import re

import pytest

from ocirun import config, plan
from ocirun.errors import OciError
from ocirun.specgen import default_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_opcodes_match_the_c_enum():
    with open(os.path.join(ROOT, "csrc/plan.h")) as f:
        body = f.read().split("enum ocirun_op {", 1)[1].split("OP_MAX", 1)[0]
    names = re.findall(r"\bOP_([A-Z0-9_]+)", body)
    assert tuple(names) == plan.OPS


def cfg_for(tmp_path, mutate=None) -> config.Config:  # noqa: ANN001
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = default_spec()
    if mutate:
        mutate(spec)
    return config.Config(spec, str(tmp_path))


def ops(p: plan.Plan) -> list[str]:
    return [s.op for s in p.steps]


def test_default_plan_shape(tmp_path):
    p = plan.compile_create(cfg_for(tmp_path), listen_fd=5)
    o = ops(p)
    assert p.clone_flags & plan.CLONE_NEWPID and not p.clone_flags & plan.CLONE_NEWUSER
    assert o[0] == "SYNC" and o[-1] == "EXEC"
    assert o.index("ROOTFS") < o.index("MOUNT") < o.index("PIVOT") < o.index("SYSCTL" if "SYSCTL" in o else "MASK")
    assert o.index("CAPS_BOUNDING") < o.index("SETUID") < o.index("CAPS") < o.index("WAIT_START") < o.index("EXEC")
    assert o.index("READONLY") < o.index("MASK")  # runc's order
    assert "SECCOMP" not in o


def test_join_paths_come_first(tmp_path):
    def m(s: dict) -> None:
        s["linux"]["namespaces"] = [{"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"},
                                    {"type": "user", "path": "/proc/1/ns/user"}, {"type": "pid"}, {"type": "uts"}]
    p = plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)
    assert [s.op for s in p.steps[:3]] == ["SETNS", "SETNS", "UNSHARE"]
    assert p.steps[0].args[0] == "/proc/1/ns/user"  # the user namespace first
    assert p.clone_flags == plan.CLONE_NEWPID


def test_new_user_namespace_clones_everything(tmp_path):
    def m(s: dict) -> None:
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
    p = plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)
    assert p.new_user and p.clone_flags & plan.CLONE_NEWUSER
    assert ops(p)[:2] == ["SYNC", "SETRESID0"] and "BIND_DEV" in ops(p) and "MKNOD" not in ops(p)


def test_mount_options():
    flags, prop, data, aset, aclr = plan.parse_mount_options(
        ["ro", "nosuid", "rslave", "size=1m", "mode=755", "rro", "noexec", "exec"], "m")
    assert flags == plan.MS_RDONLY | plan.MS_NOSUID
    assert prop == plan.MS_SLAVE | plan.MS_REC and data == "size=1m,mode=755" and aset == plan.A_RDONLY
    with pytest.raises(OciError, match="idmap"):
        plan.parse_mount_options(["idmap"], "mounts[0]")


def test_seccomp_placement(tmp_path):
    sec = plan.SeccompFilter(b"\0" * 8, 0, False)
    c = cfg_for(tmp_path)
    o = ops(plan.compile_create(c, listen_fd=5, seccomp=sec))
    assert o.index("WAIT_START") < o.index("SECCOMP") < o.index("EXEC")  # NNP: as late as possible
    c.process.no_new_privileges = False
    o = ops(plan.compile_create(c, listen_fd=5, seccomp=sec))
    assert o.index("SECCOMP") < o.index("SETUID")  # needs CAP_SYS_ADMIN: before the drop
    o = ops(plan.compile_create(c, listen_fd=5, seccomp=plan.SeccompFilter(b"\0" * 8, 0, True)))
    assert o.index("SECCOMP") < o.index("WAIT_START")  # notify: while the runtime is there for the fd


def test_encode_is_accepted_by_the_c_parser(tmp_path):
    from ocirun import executor

    allow = plan.SeccompFilter(b"\x06\0\0\0\0\0\xff\x7f", 0, False)
    p = plan.compile_create(cfg_for(tmp_path), listen_fd=5, seccomp=allow)
    executor.check(p)
    bad = plan.Plan()
    bad.steps.append(plan.Step("EXEC", "", 5))
    buf = bad.encode()
    from ocirun._native import ffi, lib

    err = ffi.new("int *")
    assert lib.ocirun_check_plan(buf[:-3], len(buf) - 3, err) == -1 and err[0] == 0


def test_describe_numbers_steps(tmp_path):
    text = plan.compile_create(cfg_for(tmp_path), listen_fd=5).describe().splitlines()
    assert text[0].startswith("0. clone flags=") and text[-1].split()[:2] == [f"{len(text) - 1}.", "exec"]


def test_proc_elsewhere_refused(tmp_path):
    def m(s: dict) -> None:
        s["mounts"].append({"destination": "/x", "type": "sysfs", "source": "sysfs"})
    with pytest.raises(OciError, match="sysfs may only be mounted at /sys"):
        plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)


def test_lsm_without_host_support(tmp_path):
    def m(s: dict) -> None:
        s["process"]["apparmorProfile"] = "docker-default"
    from ocirun.lsm import apparmor_enabled

    if apparmor_enabled():
        pytest.skip("host has AppArmor")
    with pytest.raises(OciError, match="AppArmor is not enabled on this host"):
        plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)
