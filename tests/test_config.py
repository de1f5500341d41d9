"""config.json → model: each malformed value is one error naming its JSON path (pure, no containers)."""

from __future__ import annotations

import json

import pytest

from ocirun import capabilities, config
from ocirun.errors import OciError
from ocirun.specgen import default_spec


def load(tmp_path, mutate) -> config.Config:  # noqa: ANN001
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = default_spec()
    mutate(spec)
    (tmp_path / "config.json").write_text(json.dumps(spec))
    return config.load(str(tmp_path))


def fault(tmp_path, mutate) -> str:  # noqa: ANN001
    """The one error line (without "config.json: ") the mutated default spec gives."""
    with pytest.raises(OciError) as e:
        load(tmp_path, mutate)
    assert e.value.what == "config.json" and "\n" not in str(e.value), str(e.value)
    return e.value.why


def test_default_spec_loads(tmp_path):
    assert default_spec()["linux"]["namespaces"][0] == {"type": "pid"}  # (the tables below insert after it)
    c = load(tmp_path, lambda s: None)
    assert c.process.args == ["sh"] and c.root_readonly and c.root_path == str(tmp_path / "rootfs")
    assert {n.type for n in c.linux.namespaces} >= {"pid", "mount", "ipc", "uts", "network"}
    assert c.process.capabilities["bounding"] and c.process.no_new_privileges and c.warnings == []


def sets(path: str, value: object):  # noqa: ANN201
    """A mutation setting a dotted path of the spec (digits index arrays)."""
    def change(spec: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = spec
        for p in parents:
            node = node[p] if isinstance(p, int) else node.setdefault(p, {})
        node[last] = value
    return change


NS = "must be one of pid, network, mount, ipc, uts, user, cgroup, time"


@pytest.mark.parametrize(("mutate", "msg"), [
    (lambda s: s["linux"]["namespaces"].insert(2, {"type": "foo"}),
     f'linux.namespaces[2].type: invalid value "foo": {NS}'),
    (lambda s: s["linux"]["namespaces"].insert(1, {"type": "pid"}),  # (the default spec starts with pid)
     'linux.namespaces[1].type: namespace "pid" repeated (first at linux.namespaces[0])'),
    (sets("process.cwd", "tmp"), 'process.cwd: must be an absolute path, got "tmp"'),
    (sets("process.args", []), "process.args: must name the program to run"),
    (sets("process.args", "sh"), 'process.args: must be an array, got string "sh"'),
    (sets("process.args", ["sh", 1]), "process.args[1]: must be a string, got integer 1"),
    (sets("process.env", ["PATH=/bin", "JUSTNAME"]), 'process.env[1]: must be KEY=VALUE, got "JUSTNAME"'),
    (sets("process.env", ["=x"]), 'process.env[0]: must be KEY=VALUE, got "=x"'),
    (sets("process.user.uid", -1), "process.user.uid: -1 is out of range: must be between 0 and 2147483647"),
    (sets("process.oomScoreAdj", 5000), "process.oomScoreAdj: 5000 is out of range: must be between -1000 and 1000"),
    (sets("ociVersion", "2.0.0"), 'ociVersion: unsupported version "2.0.0": ocirun implements runtime-spec 1.x'),
    (sets("ociVersion", None), "ociVersion: must be a string, got null"),
    (sets("root.readonly", "yes"), 'root.readonly: must be a boolean, got string "yes"'),
    (lambda s: s["mounts"].append({"destination": "rel"}),
     'mounts[7].destination: must be an absolute path, got "rel"'),
    (lambda s: s["mounts"].append({"destination": "/x", "uidMappings": []}),
     "mounts[7]: id-mapped mounts must have both uidMappings and gidMappings"),
    (sets("hooks", {"prestart": [{"path": "rel"}]}), 'hooks.prestart[0].path: must be an absolute path, got "rel"'),
    (sets("hooks", {"poststop": [{"path": "/x", "timeout": 0}]}),
     "hooks.poststop[0].timeout: 0 is out of range: must be between 1 and 18446744073709551615"),
    (sets("linux.devices", [{"path": "/dev/x", "type": "q"}]),
     'linux.devices[0].type: invalid device type "q": must be one of c, b, u, p'),
    (sets("linux.devices", [{"path": "dev/x", "type": "c", "major": 1, "minor": 1}]),
     'linux.devices[0].path: must be an absolute path, got "dev/x"'),
    (sets("linux.devices", [{"path": "/dev/../x", "type": "c", "major": 1, "minor": 1}]),
     'linux.devices[0].path: "/dev/../x" does not name a file (no "..", not "/", no trailing "/")'),
    (sets("linux.devices", [{"path": "/dev/", "type": "c", "major": 1, "minor": 1}]),
     'linux.devices[0].path: "/dev/" does not name a file (no "..", not "/", no trailing "/")'),
    (sets("linux.devices", [{"path": "/dev/x", "type": "c", "minor": 1}]),
     'linux.devices[0].major: is required for device type "c"'),
    (sets("linux.sysctl", {"../x": "1"}), 'linux.sysctl["../x"]: invalid sysctl name "../x"'),
    (sets("linux.sysctl", {"kernel.shmmax": 1}), 'linux.sysctl["kernel.shmmax"]: must be a string, got integer 1'),
    (sets("linux.rootfsPropagation", "weird"),
     'linux.rootfsPropagation: invalid value "weird": must be one of shared, slave, private, unbindable, rshared, '
     "rslave, rprivate, runbindable"),
    (sets("linux.uidMappings", [{"containerID": 0, "hostID": 1, "size": 1}]),
     "linux.uidMappings: is set but linux.namespaces has no user namespace"),
    (lambda s: s["linux"]["namespaces"].insert(1, {"type": "user"}),
     "linux.uidMappings: is required by the new user namespace (linux.namespaces[1])"),
    (sets("linux.namespaces", [{"type": "mount"}]), "hostname: setting a hostname needs a uts namespace"),
    (lambda s: s["linux"]["namespaces"].insert(1, {"type": "user", "path": "relative"}),
     'linux.namespaces[1].path: must be an absolute path, got "relative"'),
    (sets("linux.cgroupsPath", "/" + "x" * 256),
     "linux.cgroupsPath: is too long (257 bytes; a cgroup's name takes at most 255, the whole path 3072)"),
    (sets("linux.resources.devices", [{"allow": True, "access": ""}]),
     'linux.resources.devices[0].access: must not be empty (say "rwm" for every access)'),
    (sets("linux.resources.devices", [{"allow": True, "access": "rwx"}]),
     'linux.resources.devices[0].access: invalid value "rwx": must combine r, w and m'),
    (sets("annotations", {"a.b": 1}), 'annotations["a.b"]: must be a string, got integer 1'),
    (sets("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 2, "hard": 1}]),
     "process.rlimits[0]: soft limit 2 is greater than hard limit 1"),
    (sets("process.capabilities.bounding", ["CAP_KILL", None]),
     "process.capabilities.bounding[1]: must be a string, got null"),
])
def test_errors_name_the_json_path(tmp_path, mutate, msg):
    assert fault(tmp_path, mutate) == msg


@pytest.mark.parametrize("value", [2**31, 2**32 - 1, 2**32 + 5])
@pytest.mark.parametrize("path", ["process.user.uid", "process.user.gid", "process.user.additionalGids"])
def test_ids_above_2_31_are_refused(tmp_path, path, value):
    """4294967295 is -1 to setresuid(2), "leave unchanged": the process would stay root. runc refuses every
    id above 2^31-1 ("uids and gids must be in range 0-2147483647"); so do we, in every place an id comes in."""
    where = path + ("[1]" if path.endswith("Gids") else "")
    msg = fault(tmp_path, sets(path, [5, value] if path.endswith("Gids") else value))
    assert msg == f"{where}: {value} is out of range: must be between 0 and 2147483647"


def test_largest_id_is_fine(tmp_path):
    u = load(tmp_path, sets("process.user", {"uid": 2**31 - 1, "gid": 2**31 - 1, "additionalGids": [2**31 - 1]}))
    assert (u.process.user.uid, u.process.user.gid, u.process.user.additional_gids) == (2**31 - 1, 2**31 - 1,
                                                                                          [2**31 - 1])


def test_more_groups_or_arguments_than_the_plan_carries(tmp_path):
    """They used to fail at clone with a misleading "invalid argument" (the C parser's argument limit)."""
    n = config.PLAN_MAX_ARGS
    assert fault(tmp_path, sets("process.user.additionalGids", list(range(n)))) == (
        f"process.user.additionalGids: {n} groups: at most {n - 1} are supported")
    load(tmp_path, sets("process.user.additionalGids", list(range(n - 1))))
    # (argv and env: the plan checks the final vectors, tests/test_c_boundary.py)


def test_plan_max_args_matches_the_c_parser():
    """config.py states the init's limit (importing the C helper there would load it on every command)."""
    from ocirun._native import lib

    assert config.PLAN_MAX_ARGS == lib.OCIRUN_MAX_ARGS


def test_unknown_capabilities_are_warnings(tmp_path):
    """runtime-spec 1.1: unknown or unavailable capabilities MUST be warned about and SHOULD NOT fail."""
    c = load(tmp_path, lambda s: s["process"]["capabilities"]["bounding"].extend(["CAP_BOGUS", "CAP_SYS_ADMIN"]))
    assert c.warnings == ['config.json: process.capabilities.bounding[3]: unknown capability "CAP_BOGUS": ignored']
    assert capabilities.mask_to_caps(c.process.capabilities["bounding"]) == [
        "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN", "CAP_AUDIT_WRITE"]


def test_capabilities_the_kernel_lacks_are_warnings(tmp_path, monkeypatch):
    monkeypatch.setattr(capabilities, "last_cap", lambda: 37)  # a 5.6 kernel: no CAP_PERFMON (38) yet
    c = load(tmp_path, lambda s: s["process"]["capabilities"]["effective"].append("CAP_PERFMON"))
    assert c.warnings == ['config.json: process.capabilities.effective[3]: capability "CAP_PERFMON" is not '
                          "supported by this kernel (cap_last_cap is 37): ignored"]
    assert not c.process.capabilities["effective"] >> 38


def test_device_paths_may_be_anywhere(tmp_path):
    """runtime-spec 1.1: a device path MAY be anywhere in the container (the C side keeps it in the rootfs)."""
    c = load(tmp_path, sets("linux.devices", [{"path": "/opt/fuse", "type": "c", "major": 10, "minor": 229}]))
    assert c.linux.devices[0].path == "/opt/fuse"


def test_sysctl_names_take_slash_separators(tmp_path):
    """sysctl.d(5): "/" may separate; a "." in the slash form is part of a name (eth0.100)."""
    c = load(tmp_path, sets("linux.sysctl", {"net/ipv4/conf/eth0.100/rp_filter": "1", "net.core.somaxconn": "9"}))
    assert c.linux.sysctl == {"net.ipv4.conf.eth0/100.rp_filter": "1", "net.core.somaxconn": "9"}


def test_values_are_quoted_in_errors(tmp_path):
    """A newline in a value must not make the error two lines (nor forge a log-looking line)."""
    msg = fault(tmp_path, sets("process.cwd", "x\nocirun: all good"))
    assert msg == 'process.cwd: must be an absolute path, got "x\\nocirun: all good"'
    msg = fault(tmp_path, sets("linux.namespaces", [{"type": "pid\u2028"}]))
    assert msg == f'linux.namespaces[0].type: invalid value "pid\\u2028": {NS}'


@pytest.mark.parametrize(("text", "msg"), [
    ('{"ociVersion": "1.0.0", "process": {"args": ["/bin/busybox\\u0000x"]}}',
     'process.args[0]: string "/bin/busybox\\u0000x" contains a NUL byte'),
    ('{"linux": {"cgroupsPath": "/a\\u0000b"}}', 'linux.cgroupsPath: string "/a\\u0000b" contains a NUL byte'),
    ('{"process": {"env": ["A=\\ud800"]}}', 'process.env[0]: string "A=\\ud800" contains a lone surrogate: not text'),
    ('{"linux": {"sysctl": {"kernel.shm\\u0000max": "1"}}}',
     'linux.sysctl["kernel.shm\\u0000max"]: key "kernel.shm\\u0000max" contains a NUL byte'),
    ('{"hooks": {"prestart": [{"path": "/bin/true", "args": ["\\udfff"]}]}}',
     'hooks.prestart[0].args[0]: string "\\udfff" contains a lone surrogate: not text'),
])
def test_nul_and_lone_surrogates_are_refused_with_their_path(tmp_path, text, msg):
    """A NUL would cut the C string short ("/bin/busybox\\0x" ran busybox); a lone surrogate cannot be
    written as UTF-8 (it used to end in a UnicodeEncodeError)."""
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(OciError) as e:
        config.load(str(tmp_path))
    assert str(e.value) == f"config.json: {msg}"


def test_collecting_report_finds_every_independent_fault(tmp_path):
    """`ocirun validate` collects: one fault does not hide the others."""
    (tmp_path / "rootfs").mkdir()
    spec = default_spec()
    spec["process"]["cwd"] = "rel"
    spec["process"]["user"]["uid"] = "root"
    spec["linux"]["namespaces"][1:1] = [{"type": "pid"}, {"type": "bogus"}]
    spec["mounts"][1]["destination"] = 5
    spec["linux"]["sysctl"] = {"vm.swappiness": "1"}
    spec["process"]["capabilities"]["ambient"] = ["CAP_NOPE"]
    (tmp_path / "config.json").write_text(json.dumps(spec))
    r = config.Report(collect=True)
    config.load(str(tmp_path), report=r)
    assert sorted(r.faults) == [
        ("linux.namespaces[1].type", 'namespace "pid" repeated (first at linux.namespaces[0])'),
        ("linux.namespaces[2].type", f'invalid value "bogus": {NS}'),
        ('linux.sysctl["vm.swappiness"]',
         "is not in a separate kernel namespace: setting it would change the host's value"),
        ("mounts[1].destination", "must be a string, got integer 5"),
        ("process.cwd", 'must be an absolute path, got "rel"'),
        ("process.user.uid", 'must be an integer, got string "root"'),
    ]
    assert r.warnings == ['config.json: process.capabilities.ambient[0]: unknown capability "CAP_NOPE": ignored']


def test_unknown_hook_kinds_and_properties_are_ignored(tmp_path):
    c = load(tmp_path, lambda s: s.update(hooks={"futureHook": [{"path": "rel"}]}, extra={"x": 1}))
    assert c.hooks == {}


def test_missing_rootfs_and_config(tmp_path):
    with pytest.raises(OciError, match="config.json"):
        config.load(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    with pytest.raises(OciError, match=r'root.path: "rootfs" does not exist \(looked at .*/rootfs\)$'):
        config.load(str(tmp_path))
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(OciError, match=r"^config.json: \(top level\): must be an object, got array \[\]$"):
        config.load(str(tmp_path))


def test_device_file_mode_may_carry_its_file_type(tmp_path):
    """podman passes the host's st_mode (S_IFCHR|0666 = 8630): accepted as runc does, type bits dropped."""
    dev = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o20666}
    c = load(tmp_path, lambda s: s["linux"].update(devices=[dev]))
    assert c.linux.devices[0].file_mode == 0o666
    with pytest.raises(OciError, match=r"linux.devices\[0\].fileMode: file type bits 0o60000 do not match"):
        load(tmp_path, lambda s: s["linux"].update(devices=[{**dev, "fileMode": 0o60666}]))


def test_time_offsets_need_a_time_namespace(tmp_path):
    with pytest.raises(OciError, match="linux.timeOffsets: needs a new time namespace"):
        load(tmp_path, lambda s: s["linux"].update(timeOffsets={"monotonic": {"secs": 1}}))
    assert fault(tmp_path, lambda s: s["linux"].update(timeOffsets={"realtime": {"secs": 1}})) == (
        'linux.timeOffsets: invalid key "realtime": must be one of monotonic, boottime')


def test_personality_domain(tmp_path):
    assert load(tmp_path, lambda s: s["linux"].update(personality={"domain": "LINUX32"})).linux.personality == 8
    assert fault(tmp_path, lambda s: s["linux"].update(personality={"domain": "WIN"})) == (
        'linux.personality.domain: invalid value "WIN": must be one of LINUX, LINUX32')


@pytest.mark.parametrize(("key", "value", "msg"), [
    ("ioPriority", {"class": "IOPRIO_CLASS_NOPE"}, 'process.ioPriority.class: invalid value "IOPRIO_CLASS_NOPE": '
     "must be one of IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE"),
    ("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 9},
     "process.ioPriority.priority: 9 is out of range: must be between 0 and 7"),
    ("scheduler", {"policy": "SCHED_NOPE"}, 'process.scheduler.policy: invalid value "SCHED_NOPE": must be one of '
     "SCHED_OTHER, SCHED_FIFO"),
    ("scheduler", {"policy": "SCHED_OTHER", "flags": ["X"]},
     'process.scheduler.flags[0]: invalid value "X": must be one of SCHED_FLAG_RESET_ON_FORK'),
    ("execCPUAffinity", {"final": "a-b"}, 'process.execCPUAffinity.final: invalid cpu list "a-b"'),
])
def test_process_scheduling_errors(tmp_path, key, value, msg):
    assert fault(tmp_path, lambda s: s["process"].update({key: value})).startswith(msg)


def test_sysctls_without_a_mount_namespace_are_a_warning(tmp_path):
    """Without a mount namespace the plan only chroots: there is no /proc/sys of the container's own to write."""
    c = load(tmp_path, lambda s: (s["linux"].update(sysctl={"kernel.shmmni": "1024"}),
                                  s["linux"].update(namespaces=[n for n in s["linux"]["namespaces"]
                                                                if n["type"] != "mount"])))
    assert c.warnings == ["config.json: linux.sysctl: not applied: the container has no mount namespace "
                          "(and so no /proc of its own)"]
