"""config.json → model: each malformed value is one error naming its JSON path (pure, no containers)."""

from __future__ import annotations

import json

import pytest

from ocirun import config
from ocirun.errors import OciError
from ocirun.specgen import default_spec


def load(tmp_path, mutate) -> config.Config:  # noqa: ANN001
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = default_spec()
    mutate(spec)
    (tmp_path / "config.json").write_text(json.dumps(spec))
    return config.load(str(tmp_path))


def test_default_spec_loads(tmp_path):
    c = load(tmp_path, lambda s: None)
    assert c.process.args == ["sh"] and c.root_readonly and c.root_path == str(tmp_path / "rootfs")
    assert {n.type for n in c.linux.namespaces} >= {"pid", "mount", "ipc", "uts", "network"}
    assert c.process.capabilities["bounding"] and c.process.no_new_privileges


@pytest.mark.parametrize(("mutate", "msg"), [
    (lambda s: s["linux"]["namespaces"].insert(2, {"type": "foo"}),
     'linux.namespaces[2].type: unknown namespace "foo"'),
    (lambda s: s["linux"]["namespaces"].append({"type": "pid"}), 'namespace "pid" given twice'),
    (lambda s: s["process"].update(cwd="tmp"), 'process.cwd: "tmp" is not absolute'),
    (lambda s: s["process"].update(args=[]), "process.args: must name the program to run"),
    (lambda s: s["process"].update(args="sh"), "process.args: must be an array"),
    (lambda s: s["process"]["user"].update(uid=-1), "process.user.uid: -1 out of range"),
    (lambda s: s["process"].update(oomScoreAdj=5000), "process.oomScoreAdj: 5000 out of range"),
    (lambda s: s.update(ociVersion="2.0.0"), 'ociVersion: unsupported version "2.0.0"'),
    (lambda s: s["root"].update(readonly="yes"), "root.readonly: must be a boolean"),
    (lambda s: s["mounts"].append({"destination": "rel"}), 'mounts[7].destination: "rel" is not absolute'),
    (lambda s: s.update(hooks={"prestart": [{"path": "rel"}]}), 'hooks.prestart[0].path: "rel" is not absolute'),
    (lambda s: s.update(hooks={"poststop": [{"path": "/x", "timeout": 0}]}), "hooks.poststop[0].timeout"),
    (lambda s: s["linux"].update(devices=[{"path": "/dev/x", "type": "q"}]), 'unknown device type "q"'),
    (lambda s: s["linux"].update(devices=[{"path": "/etc/x", "type": "c", "major": 1, "minor": 1}]),
     'linux.devices[0].path: "/etc/x" is not under /dev'),
    (lambda s: s["linux"].update(devices=[{"path": "/dev/x", "type": "c"}]), "linux.devices[0].major"),
    (lambda s: s["linux"].update(sysctl={"../x": "1"}), 'invalid sysctl name "../x"'),
    (lambda s: s["linux"].update(rootfsPropagation="weird"), 'unknown propagation "weird"'),
    (lambda s: s["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1, "size": 1}]),
     "id mappings need a user namespace"),
    (lambda s: s["linux"]["namespaces"].append({"type": "user"}), "needs uidMappings and gidMappings"),
    (lambda s: s["linux"]["namespaces"].__setitem__(slice(None), [{"type": "mount"}]),
     "setting a hostname needs a uts namespace"),
    (lambda s: s["process"]["capabilities"]["bounding"].append("CAP_BOGUS"), 'unknown capability "CAP_BOGUS"'),
    (lambda s: s["linux"]["namespaces"].append({"type": "user", "path": "relative"}), "is not absolute"),
])
def test_errors_name_the_json_path(tmp_path, mutate, msg):
    with pytest.raises(OciError) as e:
        load(tmp_path, mutate)
    assert e.value.what == "config.json" and msg in str(e.value), str(e.value)


def test_unknown_hook_kinds_and_properties_are_ignored(tmp_path):
    c = load(tmp_path, lambda s: s.update(hooks={"futureHook": [{"path": "rel"}]}, extra={"x": 1}))
    assert c.hooks == {}


def test_missing_rootfs_and_config(tmp_path):
    with pytest.raises(OciError, match="config.json"):
        config.load(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(default_spec()))
    with pytest.raises(OciError, match="root.path: .*no such directory"):
        config.load(str(tmp_path))
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(OciError, match="must be a JSON object"):
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
    with pytest.raises(OciError, match='unknown clock "realtime"'):
        load(tmp_path, lambda s: s["linux"].update(timeOffsets={"realtime": {"secs": 1}}))


def test_personality_domain(tmp_path):
    assert load(tmp_path, lambda s: s["linux"].update(personality={"domain": "LINUX32"})).linux.personality == 8
    with pytest.raises(OciError, match='linux.personality.domain: unknown domain "WIN"'):
        load(tmp_path, lambda s: s["linux"].update(personality={"domain": "WIN"}))


@pytest.mark.parametrize(("key", "value", "msg"), [
    ("ioPriority", {"class": "IOPRIO_CLASS_NOPE"}, 'process.ioPriority.class: unknown class "IOPRIO_CLASS_NOPE"'),
    ("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 9}, "process.ioPriority.priority: 9 out of range"),
    ("scheduler", {"policy": "SCHED_NOPE"}, 'process.scheduler.policy: unknown policy "SCHED_NOPE"'),
    ("scheduler", {"policy": "SCHED_OTHER", "flags": ["X"]}, 'process.scheduler.flags[0]: unknown flag "X"'),
    ("execCPUAffinity", {"final": "a-b"}, 'invalid cpu list "a-b"'),
])
def test_process_scheduling_errors(tmp_path, key, value, msg):
    with pytest.raises(OciError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path, lambda s: s["process"].update({key: value}))
