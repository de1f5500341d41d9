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
    assert plan.parse_mount_options(["idmap", "ridmap", "tmpcopyup"], "m") == (0, 0, "", 0, 0)  # not mount(2)'s


def test_seccomp_placement(tmp_path):
    sec, notify = plan.SeccompFilter(b"\0" * 8, 0, False), plan.SeccompFilter(b"\0" * 8, 0, True)
    c = cfg_for(tmp_path, lambda s: s.update(hooks={"startContainer": [{"path": "/bin/true"}]}))
    o = ops(plan.compile_create(c, listen_fd=5, seccomp=sec))
    # NNP: as late as possible, but the startContainer hooks run under the filter (runc, crun)
    assert o.index("WAIT_START") < o.index("SECCOMP") < o.index("HOOK") < o.index("EXEC")
    o = ops(plan.compile_create(c, listen_fd=5, seccomp=notify))
    assert o.index("SETUID") < o.index("SECCOMP") < o.index("WAIT_START")  # notify: the runtime takes the fd
    c.process.no_new_privileges = False
    for s in (sec, notify):  # needs CAP_SYS_ADMIN: before the drop, a notify filter too
        o = ops(plan.compile_create(c, listen_fd=5, seccomp=s))
        assert o.count("SECCOMP") == 1 and o.index("SECCOMP") < o.index("SETUID") < o.index("HOOK")
        assert [st.args[2] for st in plan.compile_create(c, listen_fd=5, seccomp=s).steps
                if st.op == "SECCOMP"] == [int(s.notify)]


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


@pytest.mark.parametrize("prop, root, parent, newroot", [
    ("", plan.MS_SLAVE | plan.MS_REC, plan.MS_SLAVE, None),
    ("rshared", plan.MS_SHARED | plan.MS_REC, plan.MS_PRIVATE, plan.MS_SHARED | plan.MS_REC),
    ("shared", plan.MS_SHARED, plan.MS_PRIVATE, plan.MS_SHARED),
    ("rslave", plan.MS_SLAVE | plan.MS_REC, plan.MS_SLAVE, None),
    ("private", plan.MS_PRIVATE, plan.MS_PRIVATE, None),
    ("runbindable", plan.MS_UNBINDABLE | plan.MS_REC, plan.MS_PRIVATE, plan.MS_UNBINDABLE | plan.MS_REC),
])
def test_rootfs_propagation_steps(tmp_path, prop, root, parent, newroot):
    """runc's order: the flag on / first, the rootfs's own mount private (slave for slave), and shared or
    unbindable again on the new / after pivot_root."""
    def m(s: dict) -> None:
        if prop:
            s["linux"]["rootfsPropagation"] = prop
    p = plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)
    by_op = {s.op: s.args for s in p.steps}
    assert by_op["PROPAGATE_ROOT"] == (root,)
    assert by_op["ROOTFS"][1:] == (1, parent)
    assert by_op.get("PROPAGATE_NEWROOT") == (None if newroot is None else (newroot,))
    assert ops(p).index("PROPAGATE_ROOT") < ops(p).index("ROOTFS") < ops(p).index("PIVOT")


def test_private_rootfs_propagation_needs_pivot_root(tmp_path):
    c = cfg_for(tmp_path, lambda s: s["linux"].update(rootfsPropagation="rprivate"))
    with pytest.raises(OciError, match="not safe without pivot_root"):
        plan.compile_create(c, listen_fd=5, no_pivot=True)
    assert "PIVOT" in ops(plan.compile_create(c, listen_fd=5, no_pivot=False))


def test_read_only_tmpfs_and_dev_are_remounted_after_setup(tmp_path):
    def m(s: dict) -> None:
        next(x for x in s["mounts"] if x["destination"] == "/dev")["options"].append("ro")
        s["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]})
    p = plan.compile_create(cfg_for(tmp_path, m), listen_fd=5, console_fd=7)
    mounts = {s.args[1]: s for s in p.steps if s.op == "MOUNT"}
    assert not mounts["/dev"].args[3] & plan.MS_RDONLY and not mounts["/data"].args[3] & plan.MS_RDONLY
    assert mounts["/sys"].args[3] & plan.MS_RDONLY  # only tmpfs and /dev wait
    remounts = [s.args[0] for s in p.steps if s.op == "REMOUNT_RO"]
    assert remounts == ["/dev", "/data"]
    o = ops(p)
    assert o.index("SYMLINK") < o.index("PIVOT") < o.index("CONSOLE") < o.index("REMOUNT_RO") < o.index("MASK")


def test_bound_dev_gets_no_device_steps(tmp_path):
    def m(s: dict) -> None:
        s["mounts"] = [x for x in s["mounts"] if not x["destination"].startswith("/dev")]
        s["mounts"].append({"destination": "/dev/", "type": "none", "source": "/dev", "options": ["rbind"]})
    o = ops(plan.compile_create(cfg_for(tmp_path, m), listen_fd=5))
    assert "MKNOD" not in o and "SYMLINK" not in o and "BIND_DEV" not in o


def test_cwd_steps(tmp_path):
    """runc's order: cwd created after pivot_root (before / turns read-only), entered before the user switch
    and again after it; no creation when the cwd is / and none for exec."""
    c = cfg_for(tmp_path, lambda s: s["process"].update(cwd="/work"))
    o = ops(plan.compile_create(c, listen_fd=5, seccomp=plan.SeccompFilter(b"\0" * 8, 0, False)))
    assert o.index("PIVOT") < o.index("MKDIR_CWD") < o.index("ROOT_READONLY")
    assert o.index("CHDIR_TRY") < o.index("SETUID") < o.index("CHDIR") < o.index("EXEC")
    assert "OPEN_CWD" not in o and "MKDIR_CWD" not in ops(plan.compile_create(cfg_for(tmp_path), listen_fd=5))
    c.process.no_new_privileges = False
    o = ops(plan.compile_create(c, listen_fd=5, seccomp=plan.SeccompFilter(b"\0" * 8, 0, False)))
    assert o.index("CHDIR_TRY") < o.index("SECCOMP") < o.index("SETUID")  # resolved before a filter is on
    o = ops(plan.compile_exec(c.process, []))
    assert "MKDIR_CWD" not in o and o.index("CHDIR_TRY") < o.index("SETUID") < o.index("CHDIR")


@pytest.mark.parametrize("env, lookup", [
    ([], True), (["HOME="], True), (["HOME=/a", "HOME="], True), (["HOME=/a"], False), (["HOME=", "HOME=/b"], False),
])
def test_home_lookup_when_env_has_none(tmp_path, env, lookup):
    c = cfg_for(tmp_path, lambda s: s["process"].update(env=["PATH=/bin", *env], user={"uid": 7, "gid": 7}))
    p = plan.compile_create(c, listen_fd=5)
    steps = {s.op: s.args for s in p.steps}
    exec_env = list(steps["EXEC"][steps["EXEC"][0] + 2:])
    if lookup:
        assert steps["LOOKUP_HOME"] == (7,) and exec_env == ["PATH=/bin"]  # the child appends HOME
        assert ops(p).index("PIVOT") < ops(p).index("LOOKUP_HOME") < ops(p).index("SETUID")
    else:
        assert "LOOKUP_HOME" not in steps and exec_env == ["PATH=/bin", *env]
    assert c.process.env == ["PATH=/bin", *env]  # compiling does not change the process


def test_stdio_is_chowned_before_the_user_switch(tmp_path):
    c = cfg_for(tmp_path, lambda s: s["process"].update(user={"uid": 1000, "gid": 1000}))
    for p in (plan.compile_create(c, listen_fd=5, console_fd=7), plan.compile_exec(c.process, [], console_fd=7)):
        o = ops(p)
        assert o.index("CONSOLE") < o.index("CHOWN_STDIO") < o.index("SETGROUPS") < o.index("SETUID")
        assert next(s.args for s in p.steps if s.op == "CHOWN_STDIO") == (1000,)


def test_bind_sources_for_user_namespaces_and_id_mappings(tmp_path):
    """A plain bind: 9 args. In a user namespace: mode 1 (ask the runtime when refused). Id-mapped: mode 2 and
    a MountSource the runtime fills before the clone, with the mount's own or the container's mapping."""
    src = str(tmp_path)

    def m(s: dict) -> None:
        s["mounts"] += [
            {"destination": "/a", "type": "bind", "source": src, "options": ["rbind"]},
            {"destination": "/b", "type": "bind", "source": src, "options": ["bind"],
             "uidMappings": [{"containerID": 0, "hostID": 5, "size": 2}],
             "gidMappings": [{"containerID": 1, "hostID": 7, "size": 3}]},
            {"destination": "/c", "type": "bind", "source": src, "options": ["rbind", "ridmap"]},
        ]
    mounts = lambda p: {s.args[1]: s.args for s in p.steps if s.op == "MOUNT"}  # noqa: E731
    with pytest.raises(OciError, match=r"mounts\[9\]: .*\(or a user namespace\)"):
        plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)

    def plain(s: dict) -> None:
        m(s)
        s["mounts"].pop()
    p = plan.compile_create(cfg_for(tmp_path, plain), listen_fd=5)
    assert len(mounts(p)["/a"]) == 9 and mounts(p)["/b"][9:] == (-1, 2)
    assert [(ms.path, ms.recursive, ms.idmap, ms.idmap_recursive) for ms in p.mount_sources] == [
        (src, False, ("0 5 2\n", "1 7 3\n"), False)]

    def userns(s: dict) -> None:
        m(s)
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
    p = plan.compile_create(cfg_for(tmp_path, userns), listen_fd=5)
    assert mounts(p)["/a"][9:] == (-1, 1) and mounts(p)["/c"][9:] == (-1, 2)
    assert [(ms.step.args[1], ms.recursive, ms.idmap, ms.idmap_recursive) for ms in p.mount_sources] == [
        ("/b", False, ("0 5 2\n", "1 7 3\n"), False), ("/c", True, ("0 1000 10\n", "0 1000 10\n"), True)]
    executor_check(p)


def executor_check(p: plan.Plan) -> None:
    from ocirun import executor

    executor.check(p)


def pid_joined(s: dict) -> None:
    for n in s["linux"]["namespaces"]:
        if n["type"] == "pid":
            n["path"] = "/proc/1/ns/pid"


def test_joined_pid_namespace_is_entered_by_a_fork_after_pivot_root(tmp_path):
    """A pid namespace to join is set first (setns names our children's) and entered by PIDNS_FORK once the
    root is the container's, so nobody in that namespace sees a process with the host's root."""
    p = plan.compile_create(cfg_for(tmp_path, pid_joined), listen_fd=5)
    o = ops(p)
    assert p.steps[0].op == "SETNS" and p.steps[0].args == ("/proc/1/ns/pid", plan.CLONE_NEWPID)
    assert p.clone_flags == 0 and o[1] == "UNSHARE" and not p.steps[1].args[0] & plan.CLONE_NEWPID
    assert o.count("PIDNS_FORK") == 1 and o.index("PIVOT") + 1 == o.index("PIDNS_FORK") < o.index("EXEC")
    assert o.count("SETSID") == 1 and o.index("PIDNS_FORK") + 1 == o.index("SETSID")  # the new one leads
    assert "PIDNS_FORK" not in ops(plan.compile_create(cfg_for(tmp_path), listen_fd=5))


def test_joined_pid_namespace_with_a_new_user_namespace(tmp_path):
    """The pid setns comes before the user namespace is made: the capabilities it needs over the owner of
    the joined namespace are the host's."""
    def m(s: dict) -> None:
        pid_joined(s)
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = s["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 10}]
    p = plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)
    assert ops(p)[:3] == ["SETNS", "UNSHARE", "SYNC"] and p.steps[1].args[0] & plan.CLONE_NEWUSER
    assert p.clone_flags == 0 and ops(p).index("PIVOT") + 1 == ops(p).index("PIDNS_FORK")


def test_joined_pid_namespace_with_hooks_forks_before_them(tmp_path):
    """The hooks are given the init's pid: the fork comes before the hooks' sync point."""
    def m(s: dict) -> None:
        pid_joined(s)
        s["hooks"] = {"prestart": [{"path": "/bin/true"}]}
    p = plan.compile_create(cfg_for(tmp_path, m), listen_fd=5)
    o = ops(p)
    hooks = next(i for i, st in enumerate(p.steps) if st.op == "SYNC" and st.args == (plan.SYNC_HOOKS,))
    assert o.count("PIDNS_FORK") == 1 and o.index("PIDNS_FORK") + 2 == hooks < o.index("PIVOT")
    assert o[hooks - 1] == "SETSID" and o.count("SETSID") == 1


def test_exec_joins_pid_first_and_forks_once_placed():
    p = plan.compile_exec(config.Process({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
                          [("pid", 7, plan.CLONE_NEWPID), ("user", 8, plan.CLONE_NEWUSER),
                           ("mount", 9, config.NAMESPACES["mount"])])
    assert [(s.op, s.args[:1]) for s in p.steps[:6]] == [
        ("SETNS", (7,)), ("SETNS", (8,)), ("SETNS", (9,)), ("SYNC", (plan.SYNC_PLACED,)), ("PIDNS_FORK", ()),
        ("SETSID", ())]
    p = plan.compile_exec(config.Process({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}), [])
    assert p.clone_flags == 0 and "PIDNS_FORK" not in ops(p)
