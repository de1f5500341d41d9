"""`--cgroup-manager disabled` (crun's): a container without any cgroup of its own.

Setting up and tearing down do nothing (the container stays in the runtime's cgroup, as crun's disabled
manager leaves it); what needs a cgroup (resource limits, pause/resume, stats, a sub-cgroup for exec) is a
clear error instead of a silent no-op. `pids()` is empty: the callers that list or signal every process fall
back on the init, the one process the state records.
"""

from ocirun.cgroups.base import Manager
from ocirun.errors import OciError

MODE = "disabled"


class NullManager(Manager):
    mode = MODE

    @classmethod
    def from_state(cls, data: dict) -> "NullManager":
        return cls()

    def to_state(self) -> dict:
        return {"mode": MODE}

    def paths(self) -> dict[str, str]:
        return {}

    def create(self) -> None:
        pass

    def apply(self, resources: dict, *, device_allow: list[dict] | tuple = ()) -> None:
        """Create passes the config's resources: as crun's, they go unapplied (`update` refuses instead)."""

    def refuse(self, what: str) -> OciError:
        return OciError(what, "the container is not using cgroups (--cgroup-manager disabled)")

    def add_pid(self, pid: int) -> None:
        pass

    def pids(self) -> list[int]:
        return []

    def destroy(self) -> None:
        pass

    def freeze(self) -> None:
        raise self.refuse("pause")

    def thaw(self) -> None:
        raise self.refuse("resume")

    def is_frozen(self) -> bool:
        return False

    def kill_all(self, sig: int) -> None:
        pass

    def stats(self) -> dict:
        raise self.refuse("stats")

    def oom_kill_count(self) -> int:
        return 0
