"""The systemd cgroup driver: the container's cgroup is a transient scope unit with Delegate=yes.

As runc's opencontainers/cgroups/systemd (and crun's cgroup-systemd.c): StartTransientUnit names the
scope "<prefix>-<name>.scope" in the slice of cgroupsPath "slice:prefix:name", with the container's first
process in PIDs, accounting on, DefaultDependencies=no, and the resources systemd has properties for;
once systemd reports the job done, everything is also written through cgroupfs, by the v1 or v2
manager of the scope's directory (which does joins, freezing, stats and kills as for cgroupfs). On
v1/hybrid hosts that manager also makes the scope's directory in the hierarchies systemd does not manage
(cpuset, freezer, ...) and joins the pid there.

The scope needs a pid to exist: create() and apply() only prepare, the first add_pid() (the container's
init, waiting at its first sync point) starts the unit. Robustness (runc issues #3780, #2313, #2614):
StartTransientUnit's reply and the job's result are both checked, a same-named unit left failed is reset
and the start retried once, the job is waited for with a timeout, and the scope is garbage-collected by
systemd even when it fails (CollectMode=inactive-or-failed).
"""

import posix

import ocirun
from ocirun.cgroups import dbus, paths
from ocirun.cgroups.base import Manager
from ocirun.errors import OciError

SYSTEMD = "org.freedesktop.systemd1"
SD_PATH = "/org/freedesktop/systemd1"
SD_MANAGER = "org.freedesktop.systemd1.Manager"
JOB_TIMEOUT = 30.0  # runc's


class SystemdManager(Manager):
    """A scope unit plus the cgroupfs manager (`fs`) of its directory."""

    def __init__(self, unit: str, slice_: str, fs: Manager, *, user: bool, started: bool) -> None:
        self.unit = unit
        self.slice = slice_
        self.fs = fs
        self.user = user
        self.mode = fs.mode
        self._started = started
        self._queued = started  # StartTransientUnit was accepted: the unit may exist (stop it on failure)
        self._conn: dbus.Connection | None = None
        self._version = 0
        self._pending: tuple[list, dict, list | tuple] | None = None  # (properties, resources, device rules)
        self.extra: list = []  # properties from org.systemd.property.* annotations

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def open(cls, cgroups_path: str | None, container_id: str, mode: str, *, user: bool,
             annotations: dict | None = None) -> "SystemdManager":
        """The manager of the scope cgroupsPath names; nothing is started yet. `annotations`: the
        config's, for runc's org.systemd.property.* extra unit properties."""
        slice_, unit, slice_dir = paths.parse_systemd(cgroups_path, container_id,
                                                      "user.slice" if user else "system.slice")
        self = cls(unit, slice_, _NoFs(), user=user, started=False)
        if annotations:
            from ocirun.cgroups import systemd_props

            self.extra = systemd_props.annotation_properties(annotations)
        base = ""
        if user:  # the user's manager runs in .../user@UID.service: its slices are below that
            if mode != "v2":
                raise OciError("--systemd-cgroup", "the systemd user instance manages cgroups only on cgroup v2")
            base = self._manager_property("ControlGroup", "s").rstrip("/")
        inner = f"{base}{slice_dir.rstrip('/')}/{unit}"
        if mode == "v2":
            from ocirun.cgroups.v2 import V2Manager

            _v1, v2mnt, _root = paths.cgroup_mounts()
            mnt = (v2mnt or "/sys/fs/cgroup").rstrip("/")
            self.fs = V2Manager(mnt + inner, root=mnt)
        else:
            from ocirun.cgroups.v1 import V1Manager

            self.fs = V1Manager.for_path(inner, hybrid=(mode == "hybrid"))
        self.mode = self.fs.mode
        return self

    @classmethod
    def from_state(cls, data: dict) -> "SystemdManager":
        from ocirun import cgroups

        fs_state = {k: v for k, v in data.items() if k not in ("driver", "unit", "slice", "user")}
        try:
            return cls(data["unit"], data["slice"], cgroups.from_state(fs_state), user=bool(data["user"]),
                       started=True)
        except KeyError as e:
            raise OciError("state.json cgroup", f"missing {e}") from e

    def to_state(self) -> dict:
        return {**self.fs.to_state(), "driver": "systemd", "unit": self.unit, "slice": self.slice,
                "user": self.user}

    # --- D-Bus --------------------------------------------------------------------------------

    def _bus(self) -> dbus.Connection:
        if self._conn is None:
            self._conn = dbus.connect(self.user)
        return self._conn

    def _call(self, member: str, sig: str = "", args: tuple | list = ()) -> tuple:
        return self._bus().call(SYSTEMD, SD_PATH, SD_MANAGER, member, sig, args)

    def _manager_property(self, name: str, sig: str) -> object:
        vsig, value = self._bus().call(SYSTEMD, SD_PATH, "org.freedesktop.DBus.Properties", "Get", "ss",
                                       (SD_MANAGER, name))[0]  # type: ignore[misc]
        if vsig != sig:
            raise OciError("systemd", f"Manager.{name} has type {vsig!r}, expected {sig!r}")
        return value

    def version(self) -> int:
        """systemd's version number ("252.39-1~deb12u2" -> 252), which decides some properties."""
        if not self._version:
            text = str(self._manager_property("Version", "s")).lstrip('"v')
            digits = ""
            for ch in text:
                if not ch.isdigit():
                    break
                digits += ch
            self._version = int(digits) if digits else 1
        return self._version

    def _run_job(self, member: str, sig: str, args: tuple, what: str) -> str:
        """Call a Manager method that queues a job and wait for the job's JobRemoved: its result."""
        conn = self._bus()
        if conn.is_bus:  # on the private socket systemd sends every signal; on the bus we must ask
            conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                      (f"type='signal',sender='{SYSTEMD}',path='{SD_PATH}',interface='{SD_MANAGER}',"
                       "member='JobRemoved'",))
        reply = self._call(member, sig, args)
        self._queued = True
        if len(reply) != 1 or not isinstance(reply[0], str):
            raise OciError(f"systemd unit {self.unit}", f"{what}: {member} answered {reply!r}, not a job")
        job = reply[0]
        try:
            m = conn.wait_signal(lambda m: m.member == "JobRemoved" and len(m.body) == 4 and m.body[1] == job,
                                 JOB_TIMEOUT)
        except OciError:
            raise OciError(f"systemd unit {self.unit}", f"{what}: no result from systemd within "
                           f"{JOB_TIMEOUT:g} s") from None
        return str(m.body[3])

    def _reset_failed(self) -> None:
        try:
            self._call("ResetFailedUnit", "s", (self.unit,))
        except dbus.DBusError:
            pass  # not loaded or not failed: nothing to reset

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.fs.close()

    # --- lifecycle ----------------------------------------------------------------------------

    def create(self) -> None:
        """Nothing to make before there is a pid: the unit starts in the first add_pid()."""

    def apply(self, resources: dict, *, device_allow: list[dict] | tuple = ()) -> None:
        """Before the start: check and keep what the unit starts with. After: SetUnitProperties, then the
        cgroupfs writes (on v1 around a freeze when devices change: systemd rewrites device rules by
        denying all first, runc's freezeBeforeSet)."""
        from ocirun.cgroups import systemd_props

        v2 = self.mode == "v2"
        props, res = systemd_props.resource_properties(resources, v2=v2, version=self.version())
        if resources.get("devices") is not None or device_allow:
            from ocirun.cgroups import devices as devmod

            rules = devmod.build_rules(resources.get("devices"), device_allow)
            props += systemd_props.device_properties(rules, v2=v2)
        if not self._started:
            self._pending = (props, res, device_allow)
            return
        freeze = not v2 and resources.get("devices") is not None and not self.fs.is_frozen()
        if freeze:
            self.fs.freeze()
        try:
            if props:
                try:
                    self._call("SetUnitProperties", "sba(sv)", (self.unit, True, props))
                except dbus.DBusError as e:
                    raise OciError(f"systemd unit {self.unit}", f"setting properties: {e.why}") from None
            self._apply_files(res, device_allow)
        finally:
            if freeze:
                self.fs.thaw()

    def add_pid(self, pid: int) -> None:
        if not self._started:
            self._start(pid)
            return
        self.fs.add_pid(pid)

    def _start(self, pid: int) -> None:
        from ocirun.cgroups import systemd_props

        tr = ocirun.TRACER
        t = tr and tr.now()
        props, res, device_allow = self._pending or ([], {}, ())
        unit_props = systemd_props.unit_properties(f"ocirun container {self.unit}", self.slice, pid,
                                                   v2=self.mode == "v2") + self.extra + props
        for attempt in (1, 2):
            try:
                result = self._run_job("StartTransientUnit", "ssa(sv)a(sa(sv))",
                                       (self.unit, "replace", unit_props, []), "starting")
            except dbus.DBusError as e:
                if e.name == "org.freedesktop.systemd1.UnitExists" and attempt == 1:
                    self._reset_failed()  # a failed scope of that name left behind: let systemd drop it
                    continue
                raise OciError(f"systemd unit {self.unit}", f"starting: {e.why}") from None
            break
        if result != "done":
            self._reset_failed()
            raise OciError(f"systemd unit {self.unit}", f"starting: the job's result is {result!r} "
                           f"(journalctl -u {self.unit})")
        self._started = True
        if tr:
            tr.step("cgroup.systemd", t, f"StartTransientUnit {self.unit} in {self.slice}, pid {pid}: {result}")
        if self.mode == "v2":
            self.fs.open_dirs()  # systemd made it and set up the controllers of the slices above
        else:
            self.fs.create()  # the hierarchies systemd does not manage (cpuset, freezer, ...), as runc
        self.fs.add_pid(pid)
        self._apply_files(res, device_allow)

    def _apply_files(self, res: dict, device_allow: list | tuple) -> None:
        """The cgroupfs writes. The user's instance: a device filter is a privileged BPF program, which an
        unprivileged runtime cannot load; runc ignores device errors when rootless, and so do we (such a
        container reaches no device its user could not open anyway)."""
        if not self.user or (res.get("devices") is None and not device_allow):
            self.fs.apply(res, device_allow=device_allow)
            return
        self.fs.apply({k: v for k, v in res.items() if k != "devices"})
        try:
            self.fs.apply({"devices": res.get("devices")}, device_allow=device_allow)
        except OciError:
            pass

    def destroy(self) -> None:
        """StopUnit (waited for), reset a failed state, then remove what is left in cgroupfs (child
        cgroups, the v1 hierarchies systemd does not manage). An unknown unit is already gone."""
        if self._queued:
            try:
                self._run_job("StopUnit", "ss", (self.unit, "replace"), "stopping")
                self._reset_failed()  # a unit that had failed stays loaded (failed) after its stop job
            except dbus.DBusError as e:
                if e.name not in ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.DBus.Error.UnknownObject"):
                    raise OciError(f"systemd unit {self.unit}", f"stopping: {e.why}") from None
        self.fs.destroy()

    # --- the rest is cgroupfs -----------------------------------------------------------------

    def open_dirs(self) -> None:
        if self._started:
            self.fs.open_dirs()

    def clone_into_fd(self) -> int | None:
        return self.fs.clone_into_fd() if self._started else None

    def pids(self) -> list[int]:
        return self.fs.pids()

    def freeze(self) -> None:
        self.fs.freeze()

    def thaw(self) -> None:
        self.fs.thaw()

    def is_frozen(self) -> bool:
        return self.fs.is_frozen()

    def kill_all(self, sig: int) -> None:
        self.fs.kill_all(sig)

    def stats(self) -> dict:
        return self.fs.stats()

    def oom_kill_count(self) -> int:
        return self.fs.oom_kill_count()

    def paths(self) -> dict[str, str]:
        return self.fs.paths()


class _NoFs(Manager):
    """Placeholder until open() knows the scope's directory."""

    mode = ""

    def close(self) -> None:
        pass


def default_user() -> bool:
    """The user's systemd instance for a non-root runtime, also when it is "root" in a user namespace
    that maps it to a user (rootless podman runs the runtime so): runc asks the user bus for its owner."""
    return posix.geteuid() != 0 or dbus.host_uid() != 0
