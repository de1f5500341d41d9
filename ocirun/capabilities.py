"""Linux capability names <-> numbers, and name lists -> bit masks for the C executor.

Kept import-free (only ocirun.errors) because config parsing on `create` needs it.
"""

from ocirun.errors import OciError

# Index == capability number (include/uapi/linux/capability.h), so the table is the single source of truth.
CAP_NAMES: tuple[str, ...] = (
    "CAP_CHOWN",  # 0
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",  # 5
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",  # 10
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",  # 15
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",  # 20
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",  # 25
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",  # 30
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",  # 35
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",  # 40
)

CAPS: dict[str, int] = {name: num for num, name in enumerate(CAP_NAMES)}

# Highest capability this table knows; the kernel may know fewer (see last_cap()).
CAP_LAST_KNOWN: int = len(CAP_NAMES) - 1

_CAP_LAST_CAP_PATH = "/proc/sys/kernel/cap_last_cap"


def cap_number(name: str, what: str) -> int:
    """Number of one capability; `what` is its JSON path so the error points at the bad entry."""
    if type(name) is not str:
        raise OciError(what, f"capability must be a string, not {type(name).__name__}")
    num = CAPS.get(name)
    if num is None:
        raise OciError(what, f'unknown capability "{name}"')
    return num


def caps_to_mask(names: list, what: str) -> int:
    """Bit mask (bit n = capability n) for a list of names.

    `what` is the JSON path of the list (e.g. `process.capabilities.bounding`); errors name the element,
    e.g. `process.capabilities.bounding[3]: unknown capability "CAP_TEST"`. Duplicates are harmless.
    """
    if names is None:
        return 0
    if type(names) is not list:
        raise OciError(what, f"must be an array of capability names, not {type(names).__name__}")
    mask = 0
    for i, name in enumerate(names):
        mask |= 1 << cap_number(name, f"{what}[{i}]")
    return mask


def mask_to_caps(mask: int) -> list[str]:
    """Inverse of caps_to_mask, for `--dry-run` output and tests; bits beyond the table are dropped."""
    return [name for num, name in enumerate(CAP_NAMES) if mask >> num & 1]


def last_cap(path: str = _CAP_LAST_CAP_PATH) -> int:
    """Highest capability the running kernel supports, so callers can drop caps it does not know.

    Falls back to CAP_LAST_KNOWN when /proc is unavailable (e.g. inside a minimal chroot).
    """
    try:
        with open(path, "rb") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return CAP_LAST_KNOWN


def all_caps_mask(last: int | None = None) -> int:
    """Mask of every capability 0..last (default: what the kernel supports, capped to our table)."""
    if last is None:
        last = last_cap()
    last = min(last, CAP_LAST_KNOWN)
    return (1 << (last + 1)) - 1
