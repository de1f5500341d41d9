"""`process.rlimits` validation: names -> resource numbers for setrlimit(2) in the C executor.

Import-free (only ocirun.errors): it runs on every `create`/`exec`.
"""

from ocirun.errors import REQUIRED, OciError, must_be, out_of_range, repeated, unknown

# Generic Linux numbering (asm-generic/resource.h), valid on x86, x86_64, arm, aarch64, riscv, s390, ppc.
# MIPS, SPARC and Alpha reorder some of them; ocirun does not target those.
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

RLIM_INFINITY: int = (1 << 64) - 1
_UINT64_MAX = RLIM_INFINITY


def _uint64(value: object, what: str) -> int:
    """A JSON uint64: an int (bool is not one) in 0..2**64-1."""
    if type(value) is not int:
        raise OciError(what, must_be("integer", value))
    if value < 0 or value > _UINT64_MAX:
        raise OciError(what, out_of_range(value, 0, _UINT64_MAX))
    return value


def parse_rlimits(rlimits: object, what: str = "process.rlimits") -> list[tuple[int, int, int]]:
    """Validate `process.rlimits` and return [(resource, soft, hard), ...] in config order.

    Errors name the element (`process.rlimits[1].type: unknown rlimit "RLIMIT_TEST"`), as the spec
    requires an error for anything not mappable to setrlimit(2), for duplicates, and soft > hard would
    make setrlimit(2) fail with EINVAL inside the container, where the message would be far less clear.
    """
    if rlimits is None:
        return []
    if type(rlimits) is not list:
        raise OciError(what, must_be("array", rlimits))
    out: list[tuple[int, int, int]] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(rlimits):
        where = f"{what}[{i}]"
        if type(entry) is not dict:
            raise OciError(where, must_be("object", entry))
        for key in ("type", "soft", "hard"):
            if key not in entry:
                raise OciError(f"{where}.{key}", REQUIRED)
        name = entry["type"]
        if type(name) is not str:
            raise OciError(f"{where}.type", must_be("string", name))
        resource = RLIMITS.get(name)
        if resource is None:
            raise OciError(f"{where}.type", unknown(name, None, "rlimit"))
        if name in seen:
            raise OciError(f"{where}.type", repeated("rlimit", name, f"{what}[{seen[name]}]"))
        seen[name] = i
        soft = _uint64(entry["soft"], f"{where}.soft")
        hard = _uint64(entry["hard"], f"{where}.hard")
        if soft > hard:
            raise OciError(where, f"soft limit {soft} is greater than hard limit {hard}")
        out.append((resource, soft, hard))
    return out
