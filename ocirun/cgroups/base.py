"""The Manager interface shared by the v1 (and hybrid) and v2 cgroupfs managers."""


class Manager:
    """One container's cgroup across all hierarchies. Subclasses: v1.V1Manager, v2.V2Manager."""

    mode: str = ""

    def to_state(self) -> dict:
        """Everything from_state() needs, without rescanning mounts (stored in state.json)."""
        raise NotImplementedError

    def create(self) -> None:
        """mkdir the cgroup in every hierarchy; idempotent."""
        raise NotImplementedError

    def apply(self, resources: dict, *, device_allow: list[dict] | tuple = ()) -> None:
        """Write `linux.resources` (or the partial dict of an update): only the keys given are written."""
        raise NotImplementedError

    def add_pid(self, pid: int) -> None:
        """Move `pid` into the cgroup in every hierarchy."""
        raise NotImplementedError

    def open_dirs(self) -> None:
        """Open the cgroup's directories now, so that a later add_pid only writes (create keeps them open)."""

    def close(self) -> None:
        """Close what create() or open_dirs() opened; the manager stays usable."""

    def clone_into_fd(self) -> int | None:
        """An O_DIRECTORY fd of the leaf for clone3(CLONE_INTO_CGROUP): v2 only."""
        return None

    def pids(self) -> list[int]:
        """Every pid in the cgroup and its children, sorted."""
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def kill_all(self, sig: int) -> None:
        """Signal every process of the cgroup, racing forks as little as the kernel allows."""
        raise NotImplementedError

    def _signal_frozen(self, sig: int, can_freeze: bool = True) -> None:
        """Freeze, signal every pid, thaw: frozen tasks cannot fork new ones behind our back. A paused
        container is thawed after SIGKILL, or the signal would never be delivered."""
        import posix

        from ocirun.errors import OciError

        was_frozen = self.is_frozen()
        froze = False
        if can_freeze and not was_frozen:
            try:
                self.freeze()
                froze = True
            except OciError:
                pass
        try:
            for pid in self.pids():
                try:
                    posix.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if froze or (was_frozen and sig == 9):
                self.thaw()

    def stats(self) -> dict:
        """The "data" object of `runc events --stats` (runc types/events.go field names)."""
        raise NotImplementedError

    def oom_kill_count(self) -> int:
        raise NotImplementedError

    def destroy(self) -> None:
        """rmdir the cgroup (and child cgroups) everywhere; kills nothing; missing dirs are fine."""
        raise NotImplementedError

    def paths(self) -> dict[str, str]:
        """controller -> absolute directory."""
        raise NotImplementedError
