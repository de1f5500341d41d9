"""`ocirun spec`: the example config.json, field for field what `runc spec` (runc >= 1.2) writes.

Differences from runc are deliberate and few: the hostname is "ocirun", and ociVersion is the
runtime-spec version ocirun implements. Key order follows runc's Go structs so diffs against
`runc spec` output stay readable.
"""

import os

from ocirun import SPEC_VERSION

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]

READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def cgroup2_unified(root: str = "/sys/fs/cgroup") -> bool:
    """True on a pure cgroup v2 host, where runc adds a cgroup namespace to the example spec."""
    return os.path.exists(f"{root}/cgroup.controllers")


def _mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


def default_spec(rootless: bool = False, *, cgroupns: bool | None = None) -> dict:
    """The example spec; `rootless` applies runc's ToRootless conversion.

    `cgroupns` adds a cgroup namespace; None (default) decides like runc: only on a cgroup v2 host.
    """
    if cgroupns is None:
        cgroupns = cgroup2_unified()
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    if cgroupns:
        namespaces.append({"type": "cgroup"})
    spec: dict = {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_CAPS),
                "effective": list(_CAPS),
                "permitted": list(_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "ocirun",
        "mounts": _mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if rootless:
        _to_rootless(spec)
    return spec


def _to_rootless(spec: dict) -> None:
    """What `runc spec --rootless` changes: own user namespace mapping the caller to root, no network
    namespace (it could not be configured unprivileged), /sys bind-mounted (sysfs needs a netns owned by
    the userns), no uid=/gid= mount options (unmapped ids) and no cgroup device rules."""
    linux = spec["linux"]
    ns = [n for n in linux["namespaces"] if n["type"] not in ("network", "user")]
    ns.append({"type": "user"})
    # Rebuild so uidMappings/gidMappings come first, as in runc's output.
    rebuilt = {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
    }
    for key, value in linux.items():
        if key == "resources":
            continue
        rebuilt[key] = ns if key == "namespaces" else value
    spec["linux"] = rebuilt

    mounts = []
    for m in spec["mounts"]:
        if os.path.normpath(m["destination"]) == "/sys":
            mounts.append({
                "destination": "/sys",
                "type": "none",
                "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            })
            continue
        if "options" in m:
            opts = [o for o in m["options"] if not o.startswith(("gid=", "uid="))]
            m = {**m, "options": opts} if opts else {k: v for k, v in m.items() if k != "options"}
        mounts.append(m)
    spec["mounts"] = mounts
