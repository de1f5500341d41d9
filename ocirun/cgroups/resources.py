"""Shared pieces of the v1 and v2 resource writers: value checks and the lazy per-controller dir cache."""

from ocirun.cgroups.fsutil import CgroupDir
from ocirun.errors import REQUIRED, OciError, must_be, out_of_range, show

R = "linux.resources"


def get_int(section: dict, key: str, where: str, *, lo: int = -(2**63), hi: int = 2**64 - 1) -> int | None:
    """section[key] as an int in [lo, hi]; None when absent or null (an update only writes what it names)."""
    v = section.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise OciError(f"{where}.{key}", must_be("integer", v))
    if v < lo or v > hi:
        raise OciError(f"{where}.{key}", out_of_range(v, lo, hi))
    return v


def get_bool(section: dict, key: str, where: str) -> bool | None:
    v = section.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise OciError(f"{where}.{key}", must_be("boolean", v))
    return v


def get_section(resources: dict, key: str) -> dict | None:
    v = resources.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise OciError(f"{R}.{key}", must_be("object", v))
    return v


def get_list(section: dict, key: str, where: str) -> list | None:
    v = section.get(key)
    if v is None:
        return None
    if not isinstance(v, list):
        raise OciError(f"{where}.{key}", must_be("array", v))
    return v


def page_size(value: object, where: str) -> str:
    """hugepageLimits[].pageSize as the kernel spells it in file names ("2MB", "1GB", "64KB")."""
    if not isinstance(value, str) or len(value) < 3 or value[-2:] not in ("KB", "MB", "GB") \
            or not value[:-2].isdigit():
        raise OciError(where, f"invalid value {show(value)}: must look like \"2MB\" or \"1GB\"")
    return value


def dev_key(entry: dict, where: str) -> str:
    """"major:minor" of a blockIO device entry."""
    if not isinstance(entry, dict):
        raise OciError(where, must_be("object", entry))
    maj = get_int(entry, "major", where, lo=0, hi=2**32 - 1)
    mnr = get_int(entry, "minor", where, lo=0, hi=2**32 - 1)
    if maj is None or mnr is None:
        raise OciError(f"{where}.{'major' if maj is None else 'minor'}", REQUIRED)
    return f"{maj}:{mnr}"


def throttle_entry(entry: dict, where: str) -> tuple[str, int]:
    """("major:minor", rate) of a blockIO throttle entry, checked (the device first: it says "must be an
    object" before a rate is looked up)."""
    key = dev_key(entry, where)
    rate = get_int(entry, "rate", where, lo=0)
    if rate is None:
        raise OciError(f"{where}.rate", REQUIRED)
    return key, rate


class Dirs:
    """controller -> open CgroupDir, opened on first use and closed together."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._paths = paths
        self._open: dict[str, CgroupDir] = {}

    def get(self, controller: str, what: str) -> CgroupDir:
        """The dir of `controller`, or OciError(what, "... controller is not mounted/available")."""
        d = self._open.get(controller)
        if d is not None:
            return d
        path = self._paths.get(controller)
        if path is None:
            raise OciError(what, f"the {controller} cgroup controller is not available on this host")
        d = CgroupDir(path)
        self._open[controller] = d
        return d

    def has(self, controller: str) -> bool:
        return controller in self._paths

    def close(self) -> None:
        for d in self._open.values():
            d.close()
        self._open.clear()

    def __enter__(self) -> "Dirs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hugetlb_entries(limits: list) -> list[tuple[str, str, int]]:
    """(json path, page size name like 2MB, limit) for each hugepageLimits entry, checked."""
    out = []
    for i, e in enumerate(limits):
        w = f"{R}.hugepageLimits[{i}]"
        if not isinstance(e, dict):
            raise OciError(w, must_be("object", e))
        size = page_size(e.get("pageSize"), f"{w}.pageSize")
        limit = get_int(e, "limit", w, lo=0)
        if limit is None:
            raise OciError(f"{w}.limit", REQUIRED)
        out.append((w, size, limit))
    return out
