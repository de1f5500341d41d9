"""Linux capability names <-> numbers, and name lists -> bit masks for the C executor.

Kept import-free (only ocirun.errors) because config parsing on `create` needs it.
"""

from ocirun.errors import OciError, must_be, show, unknown

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


def cap_number(name: object, what: str) -> int:
    """Number of one capability; `what` is its JSON path so the error points at the bad entry."""
    if type(name) is not str:
        raise OciError(what, must_be("string", name))
    num = CAPS.get(name)
    if num is None:
        raise OciError(what, unknown(name, None, "capability"))
    return num


# Every kernel with openat2(2) (5.6, which the C helper needs) has capabilities 0..37; only the newer ones
# (CAP_PERFMON, CAP_BPF: 5.8; CAP_CHECKPOINT_RESTORE: 5.9) make us read /proc/sys/kernel/cap_last_cap.
_ALWAYS_THERE = 37


def caps_to_mask(names: object, what: str, warn=None) -> int:  # noqa: ANN001
    """Bit mask (bit n = capability n) for a list of names.

    `what` is the JSON path of the list (e.g. `process.capabilities.bounding`); errors name the element,
    e.g. `process.capabilities.bounding[3]: unknown capability "CAP_TEST"`. Duplicates are harmless. With
    `warn` (a callable taking the element's path and the reason), a name this table or the running kernel
    does not know is warned about and left out instead: runtime-spec 1.1 says a runtime MUST warn and SHOULD
    NOT fail there; runc 1.1 warns "ignoring unknown or unavailable capabilities" too.
    """
    if names is None:
        return 0
    if type(names) is not list:
        raise OciError(what, must_be("array", names))
    mask = 0
    last = -1
    for i, name in enumerate(names):
        where = f"{what}[{i}]"
        if type(name) is not str:
            raise OciError(where, must_be("string", name))
        num = CAPS.get(name)
        why = ""
        if num is None:
            why = unknown(name, None, "capability")
        elif num > _ALWAYS_THERE:
            if last < 0:
                last = last_cap()
            if num > last:
                why = f"capability {show(name)} is not supported by this kernel (cap_last_cap is {last})"
        if why:
            if warn is None:
                raise OciError(where, why)
            warn(where, f"{why}: ignored")
            continue
        mask |= 1 << num
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
