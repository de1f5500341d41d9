"""linux.sysctl: only sysctls of a namespace the container has to itself, as runc allows them.

/proc/sys is only partly namespaced: a write lands in the namespace of the writing task, so a sysctl whose
namespace the container shares with the host (or no namespace at all, like vm.swappiness) would change the
host's value. The rules are runc's (libcontainer/configs/validate: sysctl):
  * the ipc ones (kernel.msgmax, msgmnb, msgmni, sem, shmall, shmmax, shmmni, shm_rmid_forced, fs.mqueue.*)
    need an ipc namespace, net.* a network namespace, user.* a user namespace;
  * kernel.hostname and kernel.domainname need a uts namespace, and may not contradict the `hostname` and
    `domainname` fields (runc refuses kernel.hostname outright; an equal value or an unset field is no
    contradiction, so ocirun lets those through);
  * everything else is refused.
A namespace counts when it is new, or joined by path and not the runtime's own (runc checks that for the
network namespace: "host" means the namespace ocirun itself runs in); ocirun checks it for every kind, since
joining the host's ipc namespace by path would let kernel.shmmax through to the host as well.

Names may use "/" as the separator (sysctl.d(5)): "net/ipv4/conf/eth0.100/rp_filter" is the dotted
"net.ipv4.conf.eth0/100.rp_filter" (a "/" in the dotted form stands for a "." in a name), which is the form
kept and given to the C helper; it turns it back into /proc/sys/net/ipv4/conf/eth0.100/rp_filter.
"""

import posix

IPC = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                 "kernel.shmmni", "kernel.shm_rmid_forced"))
_NS_FILE = {"ipc": "ipc", "network": "net", "uts": "uts", "user": "user"}


def dotted(key: str) -> str:
    """The dotted form of a sysctl name (runc's convertSysctlVariableToDotsSeparator)."""
    for ch in key:
        if ch == ".":
            return key
        if ch == "/":
            return key.translate({ord("."): "/", ord("/"): "."})
    return key


def proc_path(key: str) -> str:
    """The file under /proc/sys for a dotted name (what the C helper opens)."""
    return key.translate({ord("."): "/", ord("/"): "."})


def bad_name(key: str) -> bool:
    """Empty, or a component that is empty, "." or "..": not a file under /proc/sys."""
    return not key or any(part in ("", ".", "..") for part in proc_path(key).split("/"))


def namespace_of(key: str) -> str:
    """The namespace a sysctl belongs to ("" when it has none: it is the host's, whatever the config)."""
    if key in IPC or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    if key.startswith("user."):
        return "user"
    return ""


def is_runtime_ns(path: str, kind: str) -> bool:
    """Is the namespace at `path` the one this runtime runs in (the host's, as far as the container goes)?"""
    try:
        a = posix.stat(path)
        b = posix.stat(f"/proc/self/ns/{_NS_FILE[kind]}")
    except OSError:
        return False  # joining it fails later with its own error
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def refusal(key: str, value: str, ns: "dict[str, str | None]", fields: "dict[str, str]") -> str:
    """Why the sysctl may not be set ("" when it may); `ns`: namespace kind -> "" (new), a path (joined) or
    None (the host's); `fields`: the config's hostname and domainname."""
    kind = namespace_of(key)
    if not kind:
        return "is not in a separate kernel namespace: setting it would change the host's value"
    have = ns.get(kind)
    art = "an" if kind == "ipc" else "a"
    if have is None:
        return f"needs {art} {kind} namespace: without one it would change the host's value"
    if have and is_runtime_ns(have, kind):
        return f"needs {art} {kind} namespace other than the host's: {have} is the runtime's own"
    if kind == "uts":
        field = key.partition(".")[2]
        if fields.get(field) and fields[field] != value:
            return f'conflicts with the "{field}" field'
    return ""
