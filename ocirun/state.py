"""Per-container state under --root: a directory per id, state.json written atomically, a flock for
commands racing on one id, and liveness by pid + start time so a reused pid is never taken for the init."""

import posix
import time

from ocirun import fspath, jsonio
from ocirun.errors import OciError

DEFAULT_ROOT = "/run/ocirun"
STATE_FILE = "state.json"
NOTIFY_SOCK = "notify.sock"


def check_id(cid: str) -> str:
    """Ids become directory names: refuse anything that could walk out of --root."""
    if not cid:
        raise OciError("container id", "must not be empty")
    if cid in (".", "..") or "/" in cid or "\0" in cid or len(cid) > 1024:
        raise OciError(f'container id "{cid}"', "invalid: must not contain '/' or be '.' or '..'")
    for ch in cid:
        if not (ch.isascii() and (ch.isalnum() or ch in "_+-.")):
            raise OciError(f'container id "{cid}"', "invalid: use letters, digits and _+-.")
    return cid


def container_dir(root: str, cid: str) -> str:
    return fspath.join(root, check_id(cid))


def make_dir(root: str, cid: str) -> str:
    """Claim the id: mkdir is atomic, so two creates of one id can't both win."""
    d = container_dir(root, cid)
    try:
        fspath.makedirs(root, 0o711)
    except OSError as e:
        raise OciError(f"state directory {root}", (e.strerror or str(e)).lower()) from None
    try:
        posix.mkdir(d, 0o711)
    except FileExistsError:
        raise OciError(f'container "{cid}"', "already exists") from None
    except OSError as e:
        raise OciError(f"state directory {d}", (e.strerror or str(e)).lower()) from None
    return d


class Lock:
    """An exclusive flock on the container's directory for the length of one command."""

    __slots__ = ("fd", "_fcntl")

    def __init__(self, d: str, cid: str) -> None:
        import fcntl

        self._fcntl = fcntl
        try:
            self.fd = posix.open(d, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise OciError(f'container "{cid}"', "does not exist") from None
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        """Unlock explicitly: a child cloned meanwhile shares the open file, and with it the lock."""
        if self.fd >= 0:
            self._fcntl.flock(self.fd, self._fcntl.LOCK_UN)
            posix.close(self.fd)
            self.fd = -1


def load(root: str, cid: str) -> dict:
    d = container_dir(root, cid)
    try:
        with open(fspath.join(d, STATE_FILE), "rb") as f:
            text = f.read().decode()
    except FileNotFoundError:
        raise OciError(f'container "{cid}"', "does not exist") from None
    data = jsonio.loads(text, f"{d}/{STATE_FILE}")
    if not isinstance(data, dict):
        raise OciError(f"{d}/{STATE_FILE}", "corrupt state")
    return data


def save(d: str, data: dict) -> None:
    """Write state.json so a reader sees the old or the new file, never half of one."""
    write_atomic(fspath.join(d, STATE_FILE), jsonio.dumps(data).encode())


def write_atomic(path: str, content: bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.{posix.getpid()}.tmp"
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, mode)
    try:
        posix.write(fd, content)
    finally:
        posix.close(fd)
    posix.rename(tmp, path)


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file: the pid, written atomically (a reader never sees a partial number)."""
    try:
        write_atomic(fspath.abspath(path), str(pid).encode())
    except OSError as e:
        raise OciError(f"--pid-file {path}", (e.strerror or str(e)).lower()) from None


def remove_dir(d: str) -> None:
    """Remove a container directory (flat: only our own files live there)."""
    try:
        names = posix.listdir(d)
    except FileNotFoundError:
        return
    for n in names:
        p = fspath.join(d, n)
        try:
            posix.unlink(p)
        except IsADirectoryError:
            remove_dir(p)
        except FileNotFoundError:
            pass
    try:
        posix.rmdir(d)
    except FileNotFoundError:  # (not contextlib.suppress: importing contextlib costs ~5 ms and 0.9 MiB)
        pass


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = s[s.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def init_alive(data: dict) -> bool:
    """The init still runs: same pid, same start time, not a zombie."""
    pid = data.get("pid", 0)
    if pid <= 0:
        return False
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X") and st[1] == data.get("start_time")


def status(data: dict) -> str:
    """creating/created/running/paused/stopped as runtime.md and runc report them."""
    stored = data.get("status", "creating")
    if not init_alive(data):
        return "stopped"
    if stored == "created" and not waiting_for_start(data):
        stored = "running"
    if stored == "running" and data.get("cgroup") and _frozen(data):
        return "paused"
    return stored


def waiting_for_start(data: dict) -> bool:
    """A created init waits on notify.sock until `start` removes it (runc's exec.fifo plays this part), so
    start need not rewrite state.json: one write and rename less on every start."""
    sock = data.get("notify")
    return sock is None or fspath.exists(sock)


def _frozen(data: dict) -> bool:
    if not data.get("paused"):
        return False
    from ocirun import cgroups

    try:
        return cgroups.from_state(data["cgroup"]).is_frozen()
    except OSError:
        return False


def oci_state(data: dict, st: str | None = None) -> dict:
    """The runtime-spec state object (plus runc's rootfs/created/owner fields)."""
    st = st or status(data)
    out = {
        "ociVersion": data["ociVersion"],
        "id": data["id"],
        "status": st,
        "pid": data["pid"] if st != "stopped" else 0,
        "bundle": data["bundle"],
        "rootfs": data.get("rootfs", ""),
        "created": data.get("created", ""),
        "owner": data.get("owner", ""),
    }
    if data.get("annotations"):
        out["annotations"] = data["annotations"]
    return out


def hook_state(data: dict, st: str) -> bytes:
    """The state JSON given to hooks on stdin (runtime-spec State)."""
    out = {"ociVersion": data["ociVersion"], "id": data["id"], "status": st, "pid": data["pid"],
           "bundle": data["bundle"]}
    if data.get("annotations"):
        out["annotations"] = data["annotations"]
    return jsonio.dumps(out).encode()


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"
