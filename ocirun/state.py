"""Per-container state under --root: a directory per id, state.json written atomically, a flock for
commands racing on one id, and liveness by pid + start time so a reused pid is never taken for the init.

Two files record a container, so that neither a killed `create` nor a damaged state.json can hide a live init:
- `create.jsonl`, the create journal: written before anything of the container exists (its first line names
  the cgroup), then appended the init's pid and start time before the init can outlive `create` (the init
  clears its parent-death signal only after the runtime answered its first sync point). One JSON object per
  line, later lines adding to earlier ones; a line cut short by a full disk or a kill is ignored.
- `state.json`, the container's whole state (ContainerState, runc's layout of fields), written once `create`
  is done: its presence means the container was created.
`list` and `delete` fall back on the journal when state.json is missing (an interrupted create) or damaged.
"""

import posix
import time

from ocirun import fspath, jsonio
from ocirun.errors import OciError

DEFAULT_ROOT = "/run/ocirun"
STATE_FILE = "state.json"
JOURNAL = "create.jsonl"
NOTIFY_SOCK = "notify.sock"
STORED_STATUSES = ("creating", "created", "running", "stopped")


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
        raise OciError(f"state directory {root}", _why(e)) from None
    try:
        posix.mkdir(d, 0o711)
    except FileExistsError:
        raise OciError(f'container "{cid}"', "already exists") from None
    except OSError as e:
        raise OciError(f"state directory {d}", _why(e)) from None
    return d


def _why(e: OSError) -> str:
    return (e.strerror or str(e)).lower()


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


# --- the records -------------------------------------------------------------------------------------------


def _field(obj: dict, key: str, types: type | tuple, default: object, what: str) -> object:
    """obj[key] if it has one of `types` (bool never counts as int), else `default` when absent."""
    v = obj.get(key, default)
    if v is default:
        return v
    if not isinstance(v, types) or (isinstance(v, bool) and types is int):
        raise OciError(what, f"{key}: wrong type {type(v).__name__}")
    return v


class KeptConfig:
    """The parts of config.json later commands need, copied at create so that editing the bundle can't change
    them: poststart/poststop hooks (raw), the process (raw, exec's base), namespaces, the seccomp section."""

    __slots__ = ("hooks", "process", "namespaces", "seccomp")

    def __init__(self, hooks: dict | None = None, process: dict | None = None, namespaces: list | None = None,
                 seccomp: dict | None = None) -> None:
        self.hooks: dict[str, list[dict]] = hooks or {}
        self.process: dict | None = process
        self.namespaces: list[dict] = namespaces or []
        self.seccomp: dict | None = seccomp

    @classmethod
    def from_json(cls, obj: object, what: str) -> "KeptConfig":
        if not isinstance(obj, dict):
            raise OciError(what, f"config: wrong type {type(obj).__name__}")
        hooks = _field(obj, "hooks", dict, None, what)
        namespaces = _field(obj, "namespaces", list, None, what)
        if hooks and not all(isinstance(v, list) for v in hooks.values()):
            raise OciError(what, "config.hooks: wrong type")
        if namespaces and not all(isinstance(n, dict) for n in namespaces):
            raise OciError(what, "config.namespaces: wrong type")
        return cls(hooks, _field(obj, "process", dict, None, what), namespaces,
                   _field(obj, "seccomp", dict, None, what))

    def to_json(self) -> dict:
        return {"hooks": self.hooks, "process": self.process, "namespaces": self.namespaces,
                "seccomp": self.seccomp}

    def hooks_of(self, kind: str) -> list[dict]:
        return self.hooks.get(kind) or []

    def namespace_types(self) -> list[str]:
        return [n.get("type", "") for n in self.namespaces]


class ContainerState:
    """One container's state: what state.json holds, typed. `status` is the stored status (creating,
    created, stopped); current_status() is what the runtime reports now (running/paused derived from the
    init, the start socket and the freezer). `damaged`: why state.json could not be read, when this record
    was rebuilt from the create journal for list/delete."""

    __slots__ = ("oci_version", "id", "status", "pid", "start_time", "bundle", "rootfs", "created", "owner",
                 "annotations", "cgroup", "config", "notify", "paused", "extra", "damaged")

    def __init__(self, cid: str, *, oci_version: str = "", bundle: str = "", rootfs: str = "",
                 created: str = "", owner: str = "", annotations: dict | None = None, cgroup: dict | None = None,
                 config: KeptConfig | None = None, notify: str | None = None) -> None:
        self.oci_version = oci_version
        self.id = cid
        self.status = "creating"
        self.pid = 0
        self.start_time = 0
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.owner = owner
        self.annotations: dict[str, str] = annotations or {}
        self.cgroup = cgroup  # the cgroup manager's to_state() (None: no cgroup known)
        self.config = config or KeptConfig()
        self.notify = notify  # the start socket's path while the init waits for `start`
        self.paused = False  # `pause` froze it (the freezer is read only then)
        self.extra: dict = {}  # keys of other versions, written back unchanged
        self.damaged = ""

    _KEYS = frozenset(("ociVersion", "id", "status", "pid", "start_time", "bundle", "rootfs", "created", "owner",
                       "annotations", "cgroup", "config", "notify", "paused"))

    @classmethod
    def from_json(cls, obj: object, what: str) -> "ContainerState":
        """Check every field's type (a wrong one is a damaged file, not a crash later)."""
        if not isinstance(obj, dict):
            raise OciError(what, f"not a JSON object but {type(obj).__name__}")
        cid = _field(obj, "id", str, None, what)
        if not cid:
            raise OciError(what, "id: missing")
        st = cls(cid)
        st.oci_version = _field(obj, "ociVersion", str, "", what)
        st.status = _field(obj, "status", str, "creating", what)
        if st.status not in STORED_STATUSES:
            raise OciError(what, f'status: unknown "{st.status}"')
        st.pid = _field(obj, "pid", int, 0, what)
        st.start_time = _field(obj, "start_time", int, 0, what)
        st.bundle = _field(obj, "bundle", str, "", what)
        st.rootfs = _field(obj, "rootfs", str, "", what)
        st.created = _field(obj, "created", str, "", what)
        st.owner = _field(obj, "owner", str, "", what)
        st.annotations = _field(obj, "annotations", dict, None, what) or {}
        st.cgroup = _field(obj, "cgroup", dict, None, what)
        if st.cgroup is not None and not isinstance(st.cgroup.get("mode"), str):
            raise OciError(what, "cgroup.mode: missing")
        if "config" in obj:
            st.config = KeptConfig.from_json(obj["config"], what)
        st.notify = _field(obj, "notify", str, None, what)
        st.paused = _field(obj, "paused", bool, False, what)
        if not cls._KEYS.issuperset(obj):
            st.extra = {k: v for k, v in obj.items() if k not in cls._KEYS}
        return st

    def to_json(self) -> dict:
        """state.json's layout (the one earlier versions wrote and read)."""
        out = {"ociVersion": self.oci_version, "id": self.id, "status": self.status, "pid": self.pid,
               "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created, "owner": self.owner,
               "annotations": self.annotations, "start_time": self.start_time, "cgroup": self.cgroup,
               "config": self.config.to_json(), "notify": self.notify}
        if self.paused:
            out["paused"] = True
        if self.extra:
            out.update(self.extra)
        return out

    def journal_head(self) -> dict:
        """The journal's first line: enough for `state`/`list` to show a creating container and for
        `delete --force` to find its cgroup."""
        return {"ociVersion": self.oci_version, "id": self.id, "status": "creating", "bundle": self.bundle,
                "rootfs": self.rootfs, "created": self.created, "owner": self.owner,
                "annotations": self.annotations, "cgroup": self.cgroup}

    # --- liveness and status ---

    def alive(self) -> bool:
        """The init still runs: same pid, same start time, not a zombie."""
        if self.pid <= 0:
            return False
        st = proc_stat(self.pid)
        return st is not None and st[0] not in ("Z", "X") and st[1] == self.start_time

    def current_status(self) -> str:
        """creating/created/running/paused/stopped as runtime.md and runc report them."""
        stored = self.status
        if stored == "creating" and self.pid <= 0:
            return "creating"  # the init's pid is not recorded yet: create runs (or was killed before it)
        if not self.alive():
            return "stopped"
        if stored == "created" and not self.waiting_for_start():
            stored = "running"
        if stored == "running" and self.paused and self.cgroup and self._frozen():
            return "paused"
        return stored

    def waiting_for_start(self) -> bool:
        """A created init waits on notify.sock until `start` removes it (runc's exec.fifo plays this part), so
        start need not rewrite state.json: one write and rename less on every start."""
        return self.notify is None or fspath.exists(self.notify)

    def _frozen(self) -> bool:
        try:
            return self.manager().is_frozen()
        except (OSError, OciError):
            return False

    def manager(self):  # noqa: ANN201  (a cgroups.Manager; the annotation would import the package)
        """The cgroup manager to_state() described (the null manager when the container has no cgroup)."""
        from ocirun import cgroups

        if self.cgroup is None:
            raise OciError(f'container "{self.id}"', "its cgroup is not known")
        return cgroups.from_state(self.cgroup)

    # --- what clients see ---

    def oci(self, status: str | None = None) -> dict:
        """The runtime-spec state object with runc's extra fields, in runc's key order (list.go)."""
        st = status or self.current_status()
        out = {"ociVersion": self.oci_version, "id": self.id, "pid": self.pid if st != "stopped" else 0,
               "status": st, "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created}
        if self.annotations:
            out["annotations"] = self.annotations
        out["owner"] = self.owner
        return out

    def hook_json(self, status: str, pid: int | None = None) -> bytes:
        """The state JSON given to hooks on stdin (runtime-spec State); `pid`: the init's as another pid
        namespace numbers it (the container-side hooks')."""
        out = {"ociVersion": self.oci_version, "id": self.id, "status": status,
               "pid": self.pid if pid is None else pid,
               "bundle": self.bundle}
        if self.annotations:
            out["annotations"] = self.annotations
        return jsonio.dumps(out).encode()


# --- reading and writing -----------------------------------------------------------------------------------


def _read_state(d: str) -> ContainerState | None:
    """state.json of directory `d`; None when there is none; OciError (why it is unusable) when damaged."""
    path = fspath.join(d, STATE_FILE)
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OciError(path, _why(e)) from None
    except UnicodeDecodeError:
        raise OciError(path, "not UTF-8 text") from None
    if not text.strip():
        raise OciError(path, "empty")
    return ContainerState.from_json(jsonio.loads(text, path), path)


def read_journal(d: str) -> dict | None:
    """The create journal's lines merged in order; None when there is none (or nothing readable in it)."""
    try:
        with open(fspath.join(d, JOURNAL), "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return None
    out: dict = {}
    for ln in lines:
        try:
            obj = jsonio.loads(ln.decode())
        except (OciError, UnicodeDecodeError):
            continue  # a line cut short (the last one, written when create was killed or the disk full)
        if isinstance(obj, dict):
            out.update(obj)
    return out or None


def _from_journal(d: str, cid: str) -> ContainerState | None:
    j = read_journal(d)
    if j is None:
        return None
    j["id"] = cid
    j.pop("config", None)
    try:
        st = ContainerState.from_json(j, fspath.join(d, JOURNAL))
    except OciError:
        return None
    st.notify = fspath.join(d, NOTIFY_SOCK)
    return st


def load(root: str, cid: str) -> ContainerState:
    """The container's state; a creating one (only the journal yet) too; a damaged state.json is an error."""
    d = container_dir(root, cid)
    try:
        st = _read_state(d)
    except OciError as e:
        raise OciError(f'container "{cid}"', f"{e}: damaged state (delete --force removes the container)") \
            from None
    if st is None:
        st = _from_journal(d, cid)
        if st is None:
            raise OciError(f'container "{cid}"', "does not exist")
    return st


def load_for_cleanup(root: str, cid: str) -> tuple[ContainerState | None, str]:
    """(state, why state.json is unusable or "") for list and delete, which must see every container.

    A damaged state.json falls back on the journal (the init and cgroup as create recorded them); None when
    the directory records nothing (an empty one: create was killed before it wrote anything)."""
    d = container_dir(root, cid)
    if not fspath.isdir(d):
        raise OciError(f'container "{cid}"', "does not exist")
    try:
        st = _read_state(d)
        return (st if st is not None else _from_journal(d, cid)), ""
    except OciError as e:
        damaged = str(e)
    st = _from_journal(d, cid)
    if st is not None:
        st.damaged = damaged
        st.status = "created"  # state.json is written once create is done
        st.paused = True  # unknown: let the freezer say
    return st, damaged


def save(d: str, st: ContainerState) -> None:
    """Write state.json so a reader sees the old or the new file, never half of one."""
    path = fspath.join(d, STATE_FILE)
    try:
        write_atomic(path, jsonio.dumps(st.to_json()).encode())
    except OSError as e:
        raise OciError(f"state file {path}", _why(e)) from None


class Journal:
    """The create journal, open for appending while `create` runs (see the module docstring)."""

    __slots__ = ("fd", "path")

    def __init__(self, d: str, head: dict) -> None:
        self.path = fspath.join(d, JOURNAL)
        try:
            self.fd = posix.open(self.path, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_APPEND |
                                 posix.O_CLOEXEC, 0o600)
        except OSError as e:
            raise OciError(f"state file {self.path}", _why(e)) from None
        try:
            self.add(head)
        except OciError:
            self.close()
            raise

    def add(self, entry: dict) -> None:
        try:
            _write_all(self.fd, (jsonio.dumps(entry) + "\n").encode())
        except OSError as e:
            raise OciError(f"state file {self.path}", _why(e)) from None

    def close(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[posix.write(fd, view):]


def write_atomic(path: str, content: bytes, mode: int = 0o644) -> None:
    """Write a temporary file and rename it over `path`; on failure nothing is left behind (OSError)."""
    tmp = f"{path}.{posix.getpid()}.tmp"
    try:
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, mode)
        try:
            _write_all(fd, content)
        finally:
            posix.close(fd)
        posix.rename(tmp, path)
    except OSError:
        try:
            posix.unlink(tmp)
        except OSError:
            pass
        raise


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file: the pid, written atomically (a reader never sees a partial number)."""
    try:
        write_atomic(fspath.abspath(path), str(pid).encode())
    except OSError as e:
        raise OciError(f"--pid-file {path}", _why(e)) from None


def remove_dir(d: str) -> None:
    """Remove a container directory (flat: only our own files live there; a directory where a file should be
    is removed too)."""
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


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"
