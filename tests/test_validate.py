"""Tests for `ocirun validate` (ocirun/validate.py and ocirun/schema/config.schema.json).

Valid configs must come back clean (a too-strict schema would break users' bundles), and each kind of
mistake must produce exactly the one line a user would need, with its JSON path.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ocirun import validate

Mutation = Callable[[dict[str, Any]], object]
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
SECCOMP_ARCHS = ("X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL",
                 "MIPSEL64", "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64",
                 "RISCV64", "LOONGARCH64", "M68K", "SH", "SHEB")

# What `runc spec` (runc 1.1.5) writes, so the check runs even where runc is not installed.
RUNC_SPEC: dict[str, Any] = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            kind: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            for kind in ("bounding", "effective", "permitted", "ambient")
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                        "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}

# Every section the schema knows, filled with legal values, so an over-strict rule shows up here.
EVERYTHING: dict[str, Any] = {
    "ociVersion": "1.2.0-rc.1+build.5",
    "root": {"path": "/var/lib/bundle/rootfs", "readonly": False},
    "hostname": "box",
    "domainname": "example.test",
    "annotations": {"com.example.key": "value", "org.opencontainers.image.os": "linux", "empty": ""},
    "mounts": [
        {"destination": "/data", "type": "none", "source": "/volumes/data",
         "options": ["rbind", "rw", "idmap"],
         "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
         "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]},
    ],
    "process": {
        "terminal": True,
        "consoleSize": {"height": 25, "width": 80},
        "user": {"uid": 1, "gid": 1, "umask": 63, "additionalGids": [5, 6]},
        "args": ["/bin/sh", "-c", "true"],
        "env": ["PATH=/bin", "TERM=xterm"],
        "cwd": "/root",
        "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "inheritable": [],
                         "permitted": ["CAP_CHOWN"], "ambient": ["CAP_SYS_PTRACE"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                    {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 0}],
        "noNewPrivileges": True,
        "apparmorProfile": "acme_secure_profile",
        "oomScoreAdj": -1000,
        "selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0:c124,c675",
        "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7},
        "scheduler": {"policy": "SCHED_DEADLINE", "nice": -20, "priority": 0,
                      "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_UTIL_CLAMP_MAX"],
                      "runtime": 10_000_000, "deadline": 20_000_000, "period": 30_000_000},
        "execCPUAffinity": {"initial": "7", "final": "0-3,7"},
    },
    "hooks": {
        kind: [{"path": "/usr/bin/hook", "args": ["hook", kind], "env": ["K=V"], "timeout": 1}]
        for kind in HOOK_KINDS
    },
    "linux": {
        "namespaces": [{"type": t} for t in NAMESPACES],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 32000}],
        "timeOffsets": {"monotonic": {"secs": -86400, "nanosecs": 0}, "boottime": {"secs": 3600}},
        "devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438,
             "uid": 0, "gid": 0},
            {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
            {"path": "/run/fifo", "type": "p"},
        ],
        "netDevices": {"eth0": {"name": "container_eth0"}, "ens4": {}},
        "cgroupsPath": "/myRuntime/myContainer",
        "resources": {
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                        {"allow": True, "type": "a"}],
            "memory": {"limit": 536870912, "reservation": -1, "swap": 536870912, "kernel": -1,
                       "kernelTCP": -1, "swappiness": 0, "disableOOMKiller": False, "useHierarchy": True,
                       "checkBeforeUpdate": True},
            "cpu": {"shares": 1024, "quota": 1000000, "burst": 1000000, "period": 500000,
                    "realtimeRuntime": 950000, "realtimePeriod": 1000000, "cpus": "2-3", "mems": "0-7",
                    "idle": 1},
            "blockIO": {"weight": 10, "leafWeight": 10,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 500},
                                         {"major": 8, "minor": 16, "leafWeight": 300}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "64KB", "limit": 0}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
            "pids": {"limit": 32771},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}},
            "unified": {"io.max": "259:0 rbps=2097152", "memory.high": "max"},
        },
        "rootfsPropagation": "slave",
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/seccomp-agent.socket",
            "listenerMetadata": "meta",
            "syscalls": [
                {"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 1, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
            ],
        },
        "sysctl": {"net.ipv4.ip_forward": "1", "net.core.somaxconn": "256"},
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0:c715,c811",
        "intelRdt": {"closID": "guaranteed_group", "l3CacheSchema": "L3:0=7f0;1=1f",
                     "memBwSchema": "MB:0=20;1=70", "schemata": ["L2:0=ff;1=ff"], "enableMonitoring": True},
        "personality": {"domain": "LINUX32", "flags": []},
        "memoryPolicy": {"mode": "MPOL_INTERLEAVE", "nodes": "2-3", "flags": ["MPOL_F_STATIC_NODES"]},
    },
    "x-unknown-extension": {"runtimes": "must ignore unknown properties"},
}


def runc_spec(tmp_path: Path, *extra: str) -> dict[str, Any]:
    """The config the installed runc writes, so the check tracks the real tool rather than our copy."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not installed (RUNC_SPEC covers its output)")
    subprocess.run([runc, "spec", *extra], cwd=tmp_path, check=True, capture_output=True)
    return json.loads((tmp_path / "config.json").read_text())


def mutated(change: Mutation) -> dict[str, Any]:
    """A copy of RUNC_SPEC with one mistake made by `change`."""
    config = copy.deepcopy(RUNC_SPEC)
    change(config)
    return config


def make_bundle(tmp_path: Path, config: dict[str, Any] | str | None, rootfs: bool = True) -> str:
    """A bundle dir holding config (a dict is dumped, a str is written raw, None writes no file)."""
    if isinstance(config, dict):
        (tmp_path / "config.json").write_text(json.dumps(config))
    elif isinstance(config, str):
        (tmp_path / "config.json").write_text(config)
    if rootfs:
        (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


# ---------------------------------------------------------------- the schema itself


def test_schema_is_valid_draft_2020_12_and_packaged() -> None:
    text = resources.files("ocirun").joinpath("schema/config.schema.json").read_text()
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    # Every $ref must resolve; a dangling one only fails once some config reaches it.
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.update([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"], ref


# ---------------------------------------------------------------- valid configs


def test_embedded_runc_spec_is_valid() -> None:
    assert validate.validate_config(copy.deepcopy(RUNC_SPEC)) == []


def test_runc_spec_output_is_valid(tmp_path: Path) -> None:
    config = runc_spec(tmp_path)
    assert validate.validate_config(config) == []


def test_runc_rootless_spec_is_valid(tmp_path: Path) -> None:
    config = runc_spec(tmp_path, "--rootless")
    assert any(ns["type"] == "user" for ns in config["linux"]["namespaces"])
    assert validate.validate_config(config) == []


def test_every_section_with_legal_values_is_valid() -> None:
    assert validate.validate_config(copy.deepcopy(EVERYTHING)) == []


def test_minimal_config_without_process_is_valid() -> None:
    assert validate.validate_config({"ociVersion": "1.0.0", "root": {"path": "rootfs"}}) == []


@pytest.mark.parametrize("value", ["rshared", "rslave", "rprivate", "runbindable"])
def test_recursive_rootfs_propagation_is_valid_as_create_takes_it(value: str) -> None:
    assert validate.validate_config(mutated(_set("linux.rootfsPropagation", value))) == []


def test_user_namespace_joined_by_path_needs_no_mappings() -> None:
    config = mutated(lambda c: c["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"}))
    assert validate.validate_config(config) == []


# ---------------------------------------------------------------- each kind of mistake


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Build a mutation that sets a dotted path (digits index lists), creating objects on the way."""

    def change(config: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = config
        for p in parents:
            node = node[p] if isinstance(p, int) else node.setdefault(p, {})
        node[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = config
        for p in parents:
            node = node[p]
        del node[last]

    return change


U32 = "must be between 0 and 4294967295 (uint32)"

CASES: list[tuple[str, Mutation, str]] = [
    # required members
    ("no ociVersion", _delete("ociVersion"), "ociVersion: is required"),
    ("no root", _delete("root"), "root: is required"),
    ("no root.path", _delete("root.path"), "root.path: is required"),
    ("no process.cwd", _delete("process.cwd"), "process.cwd: is required"),
    ("no process.args", _delete("process.args"), "process.args: is required"),
    ("no mount destination", _delete("mounts.2.destination"), "mounts[2].destination: is required"),
    ("no hook path", _set("hooks.poststop", [{"args": ["x"]}]), "hooks.poststop[0].path: is required"),
    ("no namespace type", _set("linux.namespaces.1", {"path": "/proc/1/ns/net"}),
     "linux.namespaces[1].type: is required"),
    ("no device path", _set("linux.devices", [{"type": "p"}]), "linux.devices[0].path: is required"),
    ("no device type", _set("linux.devices", [{"path": "/dev/x"}]), "linux.devices[0].type: is required"),
    ("no rlimit soft", _delete("process.rlimits.0.soft"), "process.rlimits[0].soft: is required"),
    ("no user uid", _delete("process.user.uid"), "process.user.uid: is required"),
    ("no seccomp defaultAction", _set("linux.seccomp", {"syscalls": []}),
     "linux.seccomp.defaultAction: is required"),
    ("no device rule allow", _set("linux.resources.devices.0", {"access": "rwm"}),
     "linux.resources.devices[0].allow: is required"),
    ("empty seccomp names", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                                   "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]}),
     "linux.seccomp.syscalls[0].names: must not be empty"),
    # types
    ("ociVersion not a string", _set("ociVersion", 1), "ociVersion: must be a string, got integer 1"),
    ("terminal not bool", _set("process.terminal", "yes"),
     'process.terminal: must be a boolean, got string "yes"'),
    ("args not strings", _set("process.args", ["sh", 1]), "process.args[1]: must be a string, got integer 1"),
    ("mounts not array", _set("mounts", {}), "mounts: must be an array, got object {}"),
    ("uid fractional", _set("process.user.uid", 1.5), "process.user.uid: must be an integer, got number 1.5"),
    ("annotation value", _set("annotations", {"com.example.n": 2}),
     'annotations["com.example.n"]: must be a string, got integer 2'),
    ("sysctl value", _set("linux.sysctl", {"net.ipv4.ip_forward": 1}),
     'linux.sysctl["net.ipv4.ip_forward"]: must be a string, got integer 1'),
    ("netDevice name", _set("linux.netDevices", {"eth0": {"name": 23}}),
     "linux.netDevices.eth0.name: must be a string, got integer 23"),
    # enums
    ("bad namespace", _set("linux.namespaces.2.type", "foo"),
     'linux.namespaces[2].type: invalid value "foo": must be one of pid, network, mount, ipc, uts, user, '
     "cgroup, time"),
    ("bad rootfsPropagation", _set("linux.rootfsPropagation", "recursive"),
     'linux.rootfsPropagation: invalid value "recursive": must be one of shared, slave, private, unbindable, '
     "rshared, rslave, rprivate, runbindable"),
    ("bad device type", _set("linux.devices", [{"type": "x", "path": "/dev/x"}]),
     'linux.devices[0].type: invalid value "x": must be one of c, b, u, p'),
    ("bad seccomp action", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_DENY"}),
     'linux.seccomp.defaultAction: invalid value "SCMP_ACT_DENY": must be one of SCMP_ACT_KILL, '
     "SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, "
     "SCMP_ACT_ALLOW, SCMP_ACT_LOG, SCMP_ACT_NOTIFY"),
    ("bad seccomp op", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
     'linux.seccomp.syscalls[0].args[0].op: invalid value "SCMP_CMP_XX": must be one of SCMP_CMP_NE, '
     "SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ"),
    ("bad seccomp arch", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                                                "architectures": ["SCMP_ARCH_X86_64", "x86_64"]}),
     'linux.seccomp.architectures[1]: invalid value "x86_64": must be one of '
     + ", ".join(f"SCMP_ARCH_{a}" for a in SECCOMP_ARCHS)),
    ("bad seccomp flag", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["TSYNC"]}),
     'linux.seccomp.flags[0]: invalid value "TSYNC": must be one of SECCOMP_FILTER_FLAG_TSYNC, '
     "SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
    ("bad scheduler policy", _set("process.scheduler", {"policy": "SCHED_FAST"}),
     'process.scheduler.policy: invalid value "SCHED_FAST": must be one of SCHED_OTHER, SCHED_FIFO, '
     "SCHED_RR, SCHED_BATCH, SCHED_ISO, SCHED_IDLE, SCHED_DEADLINE"),
    ("bad ioPriority class", _set("process.ioPriority", {"class": "RT", "priority": 0}),
     'process.ioPriority.class: invalid value "RT": must be one of IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, '
     "IOPRIO_CLASS_IDLE"),
    ("bad personality", _set("linux.personality", {"domain": "LINUX64"}),
     'linux.personality.domain: invalid value "LINUX64": must be one of LINUX, LINUX32'),
    ("bad memoryPolicy mode", _set("linux.memoryPolicy", {"mode": "MPOL_ANY"}),
     'linux.memoryPolicy.mode: invalid value "MPOL_ANY": must be one of MPOL_DEFAULT, MPOL_BIND, '
     "MPOL_INTERLEAVE, MPOL_WEIGHTED_INTERLEAVE, MPOL_PREFERRED, MPOL_PREFERRED_MANY, MPOL_LOCAL"),
    ("bad cgroup device rule type", _set("linux.resources.devices.0.type", "u"),
     'linux.resources.devices[0].type: invalid value "u": must be one of a, c, b'),
    ("bad timeOffsets clock", _set("linux.timeOffsets", {"realtime": {"secs": 1}}),
     'linux.timeOffsets: invalid key "realtime": must be one of monotonic, boottime'),
    ("empty annotation key", _set("annotations", {"": "x"}),
     'annotations: invalid key "": must not be empty'),
    # ranges
    ("hook timeout 0", _set("hooks.prestart", [{"path": "/bin/true", "timeout": 0}]),
     "hooks.prestart[0].timeout: 0 is out of range: must be >= 1"),
    ("negative uid", _set("process.user.uid", -1), f"process.user.uid: -1 is out of range: {U32}"),
    ("uid too big", _set("process.user.gid", 2**32), f"process.user.gid: 4294967296 is out of range: {U32}"),
    ("rlimit negative", _set("process.rlimits.0.hard", -1),
     "process.rlimits[0].hard: -1 is out of range: must be between 0 and 18446744073709551615 (uint64)"),
    ("oomScoreAdj", _set("process.oomScoreAdj", 1001),
     "process.oomScoreAdj: 1001 is out of range: must be between -1000 and 1000"),
    ("ioPriority 8", _set("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}),
     "process.ioPriority.priority: 8 is out of range: must be between 0 and 7"),
    ("swappiness", _set("linux.resources.memory", {"swappiness": 101}),
     "linux.resources.memory.swappiness: 101 is out of range: must be between 0 and 100"),
    ("memory limit -2", _set("linux.resources.memory", {"limit": -2}),
     "linux.resources.memory.limit: -2 is out of range: must be between -1 and 9223372036854775807"),
    ("pids limit -2", _set("linux.resources.pids", {"limit": -2}),
     "linux.resources.pids.limit: -2 is out of range: must be between -1 and 9223372036854775807"),
    ("blkio weight", _set("linux.resources.blockIO", {"weight": 70000}),
     "linux.resources.blockIO.weight: 70000 is out of range: must be between 0 and 65535 (uint16)"),
    ("cpu shares", _set("linux.resources.cpu", {"shares": -1}),
     "linux.resources.cpu.shares: -1 is out of range: must be between 0 and 18446744073709551615 (uint64)"),
    ("id mapping size", _set("mounts.0", {"destination": "/data", "options": ["rbind", "idmap"],
                                          "uidMappings": [{"containerID": 0, "hostID": 0, "size": -1}],
                                          "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}),
     f"mounts[0].uidMappings[0].size: -1 is out of range: {U32}"),
    ("nice int32", _set("process.scheduler", {"policy": "SCHED_OTHER", "nice": 2**31}),
     "process.scheduler.nice: 2147483648 is out of range: "
     "must be between -2147483648 and 2147483647 (int32)"),
    # patterns
    ("hugepage size", _set("linux.resources.hugepageLimits", [{"pageSize": "64kB", "limit": 1}]),
     'linux.resources.hugepageLimits[0].pageSize: invalid value "64kB": must match ^[1-9][0-9]*[KMG]B$ '
     "(e.g. 64KB, 2MB, 1GB)"),
    ("cpus list", _set("linux.resources.cpu", {"cpus": "0-3;7"}),
     'linux.resources.cpu.cpus: invalid value "0-3;7": must match ^[0-9, -]*$ '
     "(comma-separated CPU or node list with dash ranges, e.g. 0-3,7)"),
    ("rlimit name", _set("process.rlimits.0.type", "NOFILE"),
     'process.rlimits[0].type: invalid value "NOFILE": must match ^RLIMIT_[A-Z]+$'),
    ("capability name", _set("process.capabilities.bounding.1", "kill"),
     'process.capabilities.bounding[1]: invalid value "kill": must match ^CAP_[A-Z0-9_]+$'),
    ("device access", _set("linux.resources.devices.0.access", "rwx"),
     'linux.resources.devices[0].access: invalid value "rwx": must match ^[rwm]*$'),
    ("memBwSchema", _set("linux.intelRdt", {"memBwSchema": "L3:0=1"}),
     'linux.intelRdt.memBwSchema: invalid value "L3:0=1": must match ^MB:[^\\n]*$'),
    # at-least-one-of
    ("weightDevice without weight",
     _set("linux.resources.blockIO", {"weightDevice": [{"major": 8, "minor": 0}]}),
     "linux.resources.blockIO.weightDevice[0]: must set at least one of weight, leafWeight"),
    ("rdma without limits", _set("linux.resources.rdma", {"mlx5_1": {}}),
     "linux.resources.rdma.mlx5_1: must set at least one of hcaHandles, hcaObjects"),
    # semantic checks
    ("ociVersion not semver", _set("ociVersion", "1.0"),
     'ociVersion: "1.0" is not a SemVer 2.0.0 version (e.g. "1.2.0")'),
    ("ociVersion leading zero", _set("ociVersion", "1.02.0"),
     'ociVersion: "1.02.0" is not a SemVer 2.0.0 version (e.g. "1.2.0")'),
    ("ociVersion major 2", _set("ociVersion", "2.0.0"),
     'ociVersion: unsupported version "2.0.0": ocirun implements runtime-spec 1.x'),
    ("ociVersion major 0", _set("ociVersion", "0.5.0-dev"),
     'ociVersion: unsupported version "0.5.0-dev": ocirun implements runtime-spec 1.x'),
    ("empty args", _set("process.args", []), "process.args: must name the program to run"),
    ("relative cwd", _set("process.cwd", "home"), 'process.cwd: must be an absolute path, got "home"'),
    ("relative mount destination", _set("mounts.3.destination", "dev/shm"),
     'mounts[3].destination: must be an absolute path, got "dev/shm"'),
    ("mount uidMappings alone", _set("mounts.0.uidMappings", [{"containerID": 0, "hostID": 1, "size": 1}]),
     "mounts[0]: id-mapped mounts must have both uidMappings and gidMappings"),
    ("relative hook path", _set("hooks.createRuntime", [{"path": "hook.sh"}]),
     'hooks.createRuntime[0].path: must be an absolute path, got "hook.sh"'),
    ("repeated namespace", _set("linux.namespaces.4.type", "pid"),
     'linux.namespaces[4].type: namespace "pid" repeated (first at linux.namespaces[0])'),
    ("relative namespace path", _set("linux.namespaces.1.path", "net"),
     'linux.namespaces[1].path: must be an absolute path, got "net"'),
    ("mappings without userns", _set("linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.gidMappings: is set but linux.namespaces has no user namespace"),
    ("duplicate rlimit", _set("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2),
     'process.rlimits[1].type: rlimit "RLIMIT_NOFILE" repeated (first at process.rlimits[0])'),
    # what create refuses beyond the schema: the runtime's own checks, in its words
    ("errnoRet on notify", _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/s",
                                                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY",
                                                                "errnoRet": 38}]}),
     'linux.seccomp.syscalls[0].errnoRet: errnoRet is not supported by action "SCMP_ACT_NOTIFY"'),
    ("uid beyond 2^31-1", _set("process.user.uid", 2**31),
     "process.user.uid: 2147483648 is out of range: must be between 0 and 2147483647"),
    ("sysctl of the host", _set("linux.sysctl", {"vm.swappiness": "10"}),
     'linux.sysctl["vm.swappiness"]: is not in a separate kernel namespace: setting it would change the host\'s '
     "value"),
    ("empty device access", _set("linux.resources.devices.0.access", ""),
     'linux.resources.devices[0].access: must not be empty (say "rwm" for every access)'),
    ("env without =", _set("process.env.1", "TERM"), 'process.env[1]: must be KEY=VALUE, got "TERM"'),
    ("NUL in an argument", _set("process.args", ["/bin/busybox\0x"]),
     'process.args[0]: string "/bin/busybox\\u0000x" contains a NUL byte'),
    ("char device without minor", _set("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10}]),
     'linux.devices[0].minor: is required for device type "c"'),
    ("relative device path", _set("linux.devices", [{"type": "p", "path": "run/fifo"}]),
     'linux.devices[0].path: must be an absolute path, got "run/fifo"'),
    ("relative masked path", _set("linux.maskedPaths.3", "proc/keys"),
     'linux.maskedPaths[3]: must be an absolute path, got "proc/keys"'),
    ("relative readonly path", _set("linux.readonlyPaths.0", "proc/bus"),
     'linux.readonlyPaths[0]: must be an absolute path, got "proc/bus"'),
    ("listenerMetadata alone",
     _set("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}),
     "linux.seccomp.listenerMetadata: must not be set without listenerPath"),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_gives_exactly_its_message(change: Mutation, expected: str) -> None:
    assert validate.validate_config(mutated(change)) == [f"config.json: {expected}"]


def test_new_user_namespace_needs_both_mappings() -> None:
    config = mutated(lambda c: c["linux"]["namespaces"].append({"type": "user"}))
    assert validate.validate_config(config) == [
        "config.json: linux.gidMappings: is required by the new user namespace (linux.namespaces[5])",
        "config.json: linux.uidMappings: is required by the new user namespace (linux.namespaces[5])",
    ]


@pytest.mark.parametrize("kind", ["c", "b", "u"])
def test_device_needs_major_and_minor_unless_fifo(kind: str) -> None:
    devices = [{"type": kind, "path": "/dev/x"}, {"type": "p", "path": "/dev/y"}]
    config = mutated(_set("linux.devices", devices))
    assert validate.validate_config(config) == [
        f'config.json: linux.devices[0].major: is required for device type "{kind}"',
        f'config.json: linux.devices[0].minor: is required for device type "{kind}"',
    ]


def test_config_that_is_not_an_object() -> None:
    assert validate.validate_config([]) == ["config.json: (top level): must be an object, got array []"]  # type: ignore[arg-type]


def test_all_problems_reported_sorted_by_path_with_numeric_indices() -> None:
    config = mutated(lambda c: None)
    config["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup", "network",
                                                           "time", "pid", "x", "uts", "foo", "ipc")]
    config["process"]["cwd"] = "rel"
    del config["ociVersion"]
    one_of = f"must be one of {', '.join(NAMESPACES)}"
    assert validate.validate_config(config) == [
        'config.json: linux.namespaces[7].type: namespace "pid" repeated (first at linux.namespaces[0])',
        f'config.json: linux.namespaces[8].type: invalid value "x": {one_of}',
        'config.json: linux.namespaces[9].type: namespace "uts" repeated (first at linux.namespaces[2])',
        f'config.json: linux.namespaces[10].type: invalid value "foo": {one_of}',
        'config.json: linux.namespaces[11].type: namespace "ipc" repeated (first at linux.namespaces[1])',
        "config.json: ociVersion: is required",
        'config.json: process.cwd: must be an absolute path, got "rel"',
    ]


def test_wrong_types_do_not_crash_semantic_checks() -> None:
    config = {"ociVersion": "1.0.0", "root": "rootfs", "process": [], "mounts": [1],
              "hooks": {"prestart": "x"},
              "linux": {"namespaces": [5], "devices": {"a": 1}, "seccomp": "none", "maskedPaths": "/proc"}}
    assert validate.validate_config(config) == [
        "config.json: hooks.prestart: must be an array, got string \"x\"",
        "config.json: linux.devices: must be an array, got object {\"a\": 1}",
        "config.json: linux.maskedPaths: must be an array, got string \"/proc\"",
        "config.json: linux.namespaces[0]: must be an object, got integer 5",
        "config.json: linux.seccomp: must be an object, got string \"none\"",
        "config.json: mounts[0]: must be an object, got integer 1",
        "config.json: process: must be an object, got array []",
        "config.json: root: must be an object, got string \"rootfs\"",
    ]


# ---------------------------------------------------------------- bundles and main()


def test_valid_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path, RUNC_SPEC)
    assert validate.validate_bundle(bundle) == []
    assert validate.main(bundle) == 0
    assert capsys.readouterr().out == "ocirun: config.json: valid\n"


def test_runc_spec_bundle_from_runc(tmp_path: Path) -> None:
    runc_spec(tmp_path)
    (tmp_path / "rootfs").mkdir()
    assert validate.validate_bundle(str(tmp_path)) == []


def test_invalid_bundle_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path, mutated(_set("process.args", [])), rootfs=False)
    assert validate.main(bundle) == 1
    assert capsys.readouterr().out.splitlines() == [
        "config.json: process.args: must name the program to run",
        f'config.json: root.path: "rootfs" does not exist (looked at {os.path.join(bundle, "rootfs")})',
    ]


def test_bundle_without_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path, None)
    assert validate.validate_bundle(bundle) == [f"{bundle}/config.json: no such file or directory"]
    assert validate.main(bundle) == 1
    assert capsys.readouterr().out == f"{bundle}/config.json: no such file or directory\n"


def test_missing_bundle_directory(tmp_path: Path) -> None:
    bundle = str(tmp_path / "nope")
    assert validate.validate_bundle(bundle) == [f"{bundle}/config.json: no such file or directory"]


def test_unreadable_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    path = tmp_path / "config.json"
    assert validate.validate_bundle(str(tmp_path)) == [f"{path}: is a directory"]


def test_bad_json(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, '{\n  "ociVersion": "1.0.0",\n  "root": {"path": "rootfs",}\n}\n')
    assert validate.validate_bundle(bundle) == ["config.json: line 3 column 29: trailing comma before }"]
    bundle = make_bundle(tmp_path, '{\n  "ociVersion": "1.0.0"\n  "root": {"path": "rootfs"}\n}\n', rootfs=False)
    assert validate.validate_bundle(bundle) == ["config.json: line 3 column 3: Expecting ',' delimiter"]


def test_empty_config_json(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, "")
    expected = "config.json: line 1 column 1: Expecting value"
    assert validate.validate_bundle(bundle) == [expected]


def test_nan_is_not_json(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, '{"ociVersion": "1.0.0", "root": {"path": "rootfs"}, "x": NaN}')
    assert validate.validate_bundle(bundle) == ["config.json: line 1 column 58: NaN is not valid JSON"]


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b'{"hostname": "\xff"}')
    assert validate.validate_bundle(str(tmp_path)) == ["config.json: line 1 column 15: invalid UTF-8 (byte 0xff)"]


def test_root_path_must_be_a_directory(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, mutated(_set("root.path", "image")))
    (tmp_path / "image").write_text("not a dir")
    assert validate.validate_bundle(bundle) == [
        f'config.json: root.path: "image" is not a directory (looked at {tmp_path / "image"})'
    ]


def test_absolute_root_path(tmp_path: Path) -> None:
    rootfs = tmp_path / "elsewhere"
    rootfs.mkdir()
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    bundle = make_bundle(bundle_dir, mutated(_set("root.path", str(rootfs))), rootfs=False)
    assert validate.validate_bundle(bundle) == []
    rootfs.rmdir()
    assert validate.validate_bundle(bundle) == [
        f"config.json: root.path: {json.dumps(str(rootfs))} does not exist"
    ]


def test_bundle_merges_schema_and_rootfs_problems_in_path_order(tmp_path: Path) -> None:
    config = mutated(_set("hostname", 7))
    config["root"]["readonly"] = "yes"
    bundle = make_bundle(tmp_path, config, rootfs=False)
    assert validate.validate_bundle(bundle) == [
        "config.json: hostname: must be a string, got integer 7",
        'config.json: root.path: "rootfs" does not exist (looked at ' + os.path.join(bundle, "rootfs") + ")",
        'config.json: root.readonly: must be a boolean, got string "yes"',
    ]


def test_warnings_are_printed_and_do_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = mutated(lambda c: c["process"]["capabilities"]["bounding"].append("CAP_NOPE"))
    assert validate.main(make_bundle(tmp_path, config)) == 0
    assert capsys.readouterr().out.splitlines() == [
        'warning: config.json: process.capabilities.bounding[3]: unknown capability "CAP_NOPE": ignored',
        "ocirun: config.json: valid",
    ]


def test_validate_reports_whatever_create_refuses(tmp_path: Path) -> None:
    """One source per rule: for each mutated config the config model refuses (what `create` says), `validate`
    reports a problem at that JSON path: the model's own line, or the schema's when it found the same spot."""
    import random
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    import configfuzz

    from ocirun import config as model
    from ocirun.errors import OciError

    (tmp_path / "rootfs").mkdir()
    base = configfuzz.base_config("/ocirun-validate-test")
    cases = list(configfuzz.value_cases(base, random.Random(7), 2))[::3]
    checked = 0
    for label, doc in cases:
        text = configfuzz.dump(doc).replace(configfuzz.TOK, "t")
        (tmp_path / "config.json").write_text(text)
        try:
            model.load(str(tmp_path))
            continue
        except OciError as e:
            if e.what != "config.json":
                continue
            path = model.fault_of(e)[0]
            line = str(e)
        lines = validate.validate_bundle(str(tmp_path))
        assert line in lines or any(ln.startswith(f"config.json: {path}: ") for ln in lines), (label, line, lines)
        checked += 1
    assert checked > 200
