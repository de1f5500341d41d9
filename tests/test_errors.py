"""Every failure path: one `ocirun: <what>: <why>` line, exit 1, no traceback, and nothing left behind."""

from __future__ import annotations

import json
import os

import pytest


def processes_in(path: str) -> list[int]:
    """Processes whose root directory is inside `path` (a leaked container init)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/root").startswith(path):
                    out.append(int(p))
            except OSError:
                pass
    return out


def fails(rt, b, *extra: str, msg: str) -> str:  # noqa: ANN001
    """create must fail with `msg` and leave no state dir, process (the fixtures check cgroups and mounts)."""
    b.write()
    p = rt("create", *extra, "-b", b.path, b.id)
    assert p.returncode == 1, p.err
    lines = p.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocirun: "), p.err
    assert msg in lines[0], lines[0]
    assert "Traceback" not in p.err
    assert not os.path.exists(os.path.join(rt.root, b.id))
    assert processes_in(b.path) == []
    return lines[0]


def test_unknown_namespace(rt, bundle):
    b = bundle()
    b.spec["linux"]["namespaces"].insert(2, {"type": "foo"})
    line = fails(rt, b, msg="")
    assert line == ('ocirun: config.json: linux.namespaces[2].type: invalid value "foo": must be one of pid, network, '
                    "mount, ipc, uts, user, cgroup, time")


def test_invalid_json(rt, bundle):
    b = bundle()
    b.write()
    with open(os.path.join(b.path, "config.json"), "a") as f:
        f.write("{")
    p = rt("create", "-b", b.path, b.id)
    with open(os.path.join(b.path, "config.json")) as f:
        text = f.read()
    line, col = text.count("\n") + 1, len(text) - text.rfind("\n") - 1  # the "{" after the document
    assert p.returncode == 1 and p.err == f"ocirun: config.json: line {line} column {col}: Extra data\n", p.err


def test_missing_config(rt, tmp_path):
    p = rt("create", "-b", str(tmp_path), "x1")
    assert p.returncode == 1 and "config.json: no such file or directory" in p.err
    assert not os.path.exists(os.path.join(rt.root, "x1"))


def test_missing_rootfs(rt, bundle):
    b = bundle()
    b.spec["root"]["path"] = "nosuchroot"
    fails(rt, b, msg="root.path")


@pytest.mark.parametrize("cid", ["../evil", "a/b", "..", ".", "x y", ""])
def test_bad_container_id(rt, bundle, cid):
    b = bundle()
    p = rt("create", "-b", b.path, cid)
    assert p.returncode == 1 and "container id" in p.err, p.err
    assert not os.path.exists(os.path.join(os.path.dirname(rt.root), "evil"))


def test_bad_mount_source(rt, bundle):
    b = bundle()
    b.spec["mounts"].append({"destination": "/x", "type": "bind", "source": "/no/such/dir", "options": ["bind"]})
    fails(rt, b, msg="mounts[7].source: /no/such/dir: no such file or directory")


def test_bad_mount_fs_fails_in_child(rt, bundle):
    """A mount the kernel refuses fails inside the child: still cleaned up completely."""
    b = bundle()
    b.spec["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "none"})
    fails(rt, b, msg="mounts[7]: mount none (nosuchfs) on /x: No such device")


def test_proc_only_at_proc(rt, bundle):
    b = bundle()
    b.spec["mounts"].append({"destination": "/elsewhere", "type": "proc", "source": "proc"})
    fails(rt, b, msg="may only be mounted at /proc")


def test_missing_executable(rt, bundle):
    b = bundle(["nosuchcmd"])
    line = fails(rt, b, msg='exec: "nosuchcmd": executable file not found in $PATH')
    assert "no such file or directory" in line.lower()


def test_not_executable(rt, bundle):
    b = bundle(["/etc/passwd"])
    line = fails(rt, b, msg='exec: "/etc/passwd"')
    assert "permission denied" in line.lower()


def test_bad_cwd(rt, bundle):
    b = bundle()
    b.spec["process"]["cwd"] = "/etc/passwd/dir"  # a missing cwd is created (as runc), one under a file can't be
    fails(rt, b, msg="process.cwd: create cwd /etc/passwd/dir: Not a directory")


def test_failing_prestart_hook(rt, bundle):
    b = bundle()
    b.spec["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    fails(rt, b, msg="hooks.prestart[0]: /bin/false: exited with status 1")


def test_failing_create_container_hook(rt, bundle):
    b = bundle()
    b.spec["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]}
    fails(rt, b, msg="hook /bin/sh exited with status 4")


def test_hook_timeout(rt, bundle):
    b = bundle()
    b.spec["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]}
    fails(rt, b, msg="timed out after 1s")


def test_bad_rlimit(rt, bundle):
    b = bundle()
    b.spec["process"]["rlimits"] = [{"type": "RLIMIT_TEST", "soft": 1, "hard": 1}]
    fails(rt, b, msg='unknown rlimit "RLIMIT_TEST"')


def test_resource_refused_by_kernel(rt, bundle):
    b = bundle()
    b.spec["linux"]["resources"]["cpu"] = {"cpus": "999"}
    fails(rt, b, msg="linux.resources.cpu.cpus")


def test_json_log_has_one_error_line(rt, bundle, tmp_path):
    b = bundle(["nosuchcmd"])
    log = tmp_path / "log.json"
    import subprocess

    from ocitest import ocirun_cmd

    # --log-format=json before the command, as conmon passes it
    p = subprocess.run([*ocirun_cmd(), "--root", rt.root, "--log", str(log), "--log-format=json", "create",
                        "-b", b.path, b.id], capture_output=True, text=True)
    assert p.returncode == 1
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and "executable file not found" in entry["msg"] and entry["time"]


def test_unknown_flag_and_missing_args(rt):
    p = rt("create", "--nosuchflag", "x")
    assert p.returncode == 1 and "flag provided but not defined" in p.err
    p = rt("start")
    assert p.returncode == 1 and "usage" in p.err


def test_apparmor_profile_without_apparmor(rt, bundle):
    from ocirun.lsm import apparmor_enabled

    if apparmor_enabled():
        pytest.skip("host has AppArmor")
    b = bundle()
    b.spec["process"]["apparmorProfile"] = "docker-default"
    fails(rt, b, msg='process.apparmorProfile: "docker-default": AppArmor is not enabled on this host')


def test_selinux_labels_without_selinux(rt, bundle):
    from ocirun.lsm import selinux_enabled

    if selinux_enabled():
        pytest.skip("host has SELinux")
    b = bundle()
    b.spec["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    fails(rt, b, msg="process.selinuxLabel")
    b.spec["process"]["selinuxLabel"] = ""
    b.spec["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0"
    fails(rt, b, msg="linux.mountLabel")


def test_id_mappings_refused_by_the_kernel(rt, bundle):
    b = bundle()
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10},
                                      {"containerID": 5, "hostID": 200000, "size": 10}]  # overlapping ids
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10}]
    fails(rt, b, msg="linux.uidMappings: writing uid_map: Invalid argument")


# --- failure paths that used to end as "internal error" or leave the state directory ---------------------


def test_pid_file_in_a_missing_directory(rt, bundle):
    b = bundle()
    fails(rt, b, "--pid-file", os.path.join(b.path, "missing", "pid"), msg="ocirun: --pid-file ")


def test_state_root_that_is_a_file(bundle, tmp_path):
    from ocitest import Runtime

    root = tmp_path / "not-a-dir"
    root.write_text("")
    b = bundle()
    p = Runtime(str(root))("create", "-b", b.path, b.id)
    assert p.returncode == 1 and p.err.strip() == f"ocirun: state directory {root}: file exists", p.err
    assert "internal error" not in p.err and processes_in(b.path) == []


def test_throttle_entry_that_is_not_an_object(rt, bundle):
    b = bundle()
    b.spec["linux"]["resources"]["blockIO"] = {"throttleReadBpsDevice": [5]}
    fails(rt, b, msg="linux.resources.blockIO.throttleReadBpsDevice[0]: must be an object")


def test_hook_posix_spawn_refuses(rt, bundle):
    b = bundle()
    b.spec["hooks"] = {"prestart": [{"path": "/bin/true", "args": []}]}
    line = fails(rt, b, msg="hooks.prestart[0]: /bin/true: ")
    assert "internal error" not in line


def test_config_nested_too_deeply(rt, bundle):
    b = bundle()
    b.write()
    with open(os.path.join(b.path, "config.json"), "w") as f:
        f.write("[" * 100000 + "]" * 100000)
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1 and p.err.strip() == "ocirun: config.json: invalid JSON: nested too deeply", p.err
    assert not os.path.exists(os.path.join(rt.root, b.id))


def test_bind_source_with_a_nul_byte(rt, bundle):
    b = bundle()
    b.spec["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/tmp\u0000x", "options": ["bind"]})
    fails(rt, b, msg="contains a NUL byte")


def test_cgroup_removal_failing_in_cleanup_still_removes_the_state_dir(rt, bundle, monkeypatch):
    """create's cleanup reports the error that failed it, not a cgroup removal error, and removes its
    state directory whatever the removal says (run in process, to make the removal fail)."""
    from ocirun import create as create_mod
    from ocirun.cgroups.v1 import V1Manager
    from ocirun.cgroups.v2 import V2Manager
    from ocirun.errors import OciError

    for cls in (V1Manager, V2Manager):
        real = cls.destroy

        def failing(self, real=real) -> None:  # noqa: ANN001
            real(self)  # (the fixtures check that no cgroup is left)
            raise OciError("cgroup", "pretend it is still busy")

        monkeypatch.setattr(cls, "destroy", failing)
    b = bundle(["/no/such/program"])
    with pytest.raises(OciError) as e:
        create_mod.create(create_mod.CreateOpts(rt.root, b.id, b.path))
    assert "/no/such/program" in str(e.value) and "busy" not in str(e.value)
    assert not os.path.exists(os.path.join(rt.root, b.id)) and processes_in(b.path) == []


def test_hook_timeout_longer_than_poll_can_wait(rt, bundle):
    """A timeout beyond poll()'s int milliseconds is as good as none (it used to raise OverflowError)."""
    b = bundle()
    b.spec["hooks"] = {"prestart": [{"path": "/bin/true", "timeout": 10**10}]}
    b.write()
    rt("create", "-b", b.path, b.id, check=True)
    rt("delete", "--force", b.id, check=True)
