"""linux.resources.devices: one ordered rule list for both drivers.

Rules are `linux.resources.devices` in order, then the runtime's `device_allow` (default devices and
linux.devices), as runc appends them. The list starts from deny-all, as in runc and crun.

v1 writes "a" to devices.deny, then each rule to devices.allow/devices.deny in order; the kernel keeps
the exception list. v2 compiles the list into a BPF_PROG_TYPE_CGROUP_DEVICE program (csrc/cgroup_devices.c)
where, for every requested access bit, the *last* rule that matches the device decides. That equals v1
for every list runc accepts; where v1 cannot "punch holes" into a wildcard allow, v2 denies (safer).
"""

from ocirun.errors import EMPTY, REQUIRED, OciError, must_be, out_of_range, show, unknown

_ACC_BITS: dict[str, int] = {}  # "m", "r", "w": the kernel's BPF_DEVCG_ACC_* (from the native module, when used)


def _acc_bits() -> dict[str, int]:
    if not _ACC_BITS:
        from ocirun._native import lib

        _ACC_BITS.update(m=lib.BPF_DEVCG_ACC_MKNOD, r=lib.BPF_DEVCG_ACC_READ, w=lib.BPF_DEVCG_ACC_WRITE)
    return _ACC_BITS


class Rule(tuple):
    """A normalized device cgroup rule (allow, type, major, minor, access); major/minor -1 mean "*".

    A named tuple written out: typing.NamedTuple would import typing and re (~10 ms, 2 MiB) on every create.
    """

    __slots__ = ()

    def __new__(cls, allow: bool, type: str, major: int, minor: int, access: str) -> "Rule":  # noqa: A002
        return tuple.__new__(cls, (allow, type, major, minor, access))

    allow = property(lambda self: self[0], doc="allow (True) or deny")
    type = property(lambda self: self[1], doc='"a", "b" or "c"')
    major = property(lambda self: self[2], doc="major number, -1 for any")
    minor = property(lambda self: self[3], doc="minor number, -1 for any")
    access = property(lambda self: self[4], doc='"rwm" subset')

    def __repr__(self) -> str:
        return f"Rule(allow={self[0]!r}, type={self[1]!r}, major={self[2]!r}, minor={self[3]!r}, access={self[4]!r})"

    def v1_line(self) -> str:
        """The devices.allow / devices.deny line for this rule."""
        if self.type == "a" and self.major < 0 and self.minor < 0:
            return f"a *:* {self.access}"
        maj = "*" if self.major < 0 else str(self.major)
        mnr = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {maj}:{mnr} {self.access}"

    def access_bits(self) -> int:
        """The access as the C filter takes it: BPF_DEVCG_ACC_* bits."""
        acc = _acc_bits()
        bits = 0
        for ch in self.access:
            bits |= acc[ch]
        return bits


def _num(value: object, where: str) -> int:
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int):
        raise OciError(where, must_be("integer", value))
    if value < -1 or value > 0xFFFFFFFF:
        raise OciError(where, out_of_range(value, -1, 0xFFFFFFFF))
    return value


def normalize_one(d: dict, where: str) -> Rule:
    """Validate one spec rule ({"allow", "type", "major", "minor", "access"}).

    An absent access means "rwm", as a devices.allow line without one does in cgroup v1; an empty one is
    refused, as runc does ("device access at 0 field cannot be empty"): read as "rwm" it would let
    `{"allow": true, "access": ""}` open every device."""
    if not isinstance(d, dict):
        raise OciError(where, must_be("object", d))
    allow = d.get("allow")
    if allow is None:
        raise OciError(f"{where}.allow", REQUIRED)
    if not isinstance(allow, bool):
        raise OciError(f"{where}.allow", must_be("boolean", allow))
    typ = d.get("type")
    if typ is None or typ == "":  # (runc cannot tell "" from absent either)
        typ = "a"
    elif typ not in ("a", "b", "c"):
        raise OciError(f"{where}.type", unknown(typ, ("a", "c", "b")))
    access = d.get("access")
    if access is None:
        access = "rwm"
    elif not isinstance(access, str):
        raise OciError(f"{where}.access", must_be("string", access))
    elif not access:
        raise OciError(f"{where}.access", EMPTY + ' (say "rwm" for every access)')
    elif any(ch not in "rwm" for ch in access):
        raise OciError(f"{where}.access", f"invalid value {show(access)}: must combine r, w and m")
    access = "".join(ch for ch in "rwm" if ch in access)
    major = _num(d.get("major"), f"{where}.major")
    return Rule(allow, typ, major, _num(d.get("minor"), f"{where}.minor"), access)


def build_rules(spec_rules: list | None, device_allow: list[dict] | tuple) -> list[Rule]:
    """Spec rules in order, then the runtime's extra allow rules."""
    out: list[Rule] = []
    if spec_rules is not None:
        if not isinstance(spec_rules, list):
            raise OciError("linux.resources.devices", must_be("array", spec_rules))
        for i, d in enumerate(spec_rules):
            out.append(normalize_one(d, f"linux.resources.devices[{i}]"))
    for i, d in enumerate(device_allow):
        if isinstance(d, Rule):
            out.append(d)
            continue
        d = dict(d)
        d.setdefault("allow", True)
        out.append(normalize_one(d, f"default device rule[{i}]"))
    return out


def v1_writes(rules: list[Rule]) -> list[tuple[str, str]]:
    """(file, line) pairs in order: deny all first, then each rule."""
    writes = [("devices.deny", "a")]
    for r in rules:
        writes.append(("devices.allow" if r.allow else "devices.deny", r.v1_line()))
    return writes


def to_native(rules: list[Rule]) -> object:
    """A `struct ocirun_dev_rule[]` for csrc/cgroup_devices.c (imports the native module lazily)."""
    from ocirun import _native

    arr = _native.ffi.new("struct ocirun_dev_rule[]", max(len(rules), 1))
    for i, r in enumerate(rules):
        arr[i].allow = 1 if r.allow else 0
        arr[i].type = ord(r.type)
        arr[i].major = r.major
        arr[i].minor = r.minor
        arr[i].access = r.access_bits()
    return arr


def bpf_instructions(rules: list[Rule]) -> list[tuple[int, int, int, int, int]]:
    """The generated program as (code, dst, src, off, imm) tuples, for tests and debugging."""
    from ocirun import _native

    cap = 16 + 16 * len(rules)
    out = _native.ffi.new("struct ocirun_bpf_insn[]", cap)
    n = _native.lib.ocirun_devcg_build(to_native(rules), len(rules), out, cap)
    if n < 0:
        raise OciError("linux.resources.devices", f"building the device filter: error {-n}")
    return [(out[i].code, out[i].regs & 0xF, out[i].regs >> 4, out[i].off, out[i].imm) for i in range(n)]


def apply_bpf(dirfd: int, rules: list[Rule], path: str) -> None:
    """Load the program and attach it to the cgroup fd, replacing the one we attached before."""
    import posix

    from ocirun import _native

    log = _native.ffi.new("char[]", 16384)
    prog = _native.lib.ocirun_devcg_load(to_native(rules), len(rules), log, 16384)
    if prog < 0:
        detail = _native.ffi.string(log).decode(errors="replace").strip().splitlines()
        extra = f" ({detail[-1]})" if detail else ""
        why = f"loading the BPF device filter: {posix.strerror(-prog)}{extra}"
        raise OciError("linux.resources.devices", why)
    try:
        rc = _native.lib.ocirun_devcg_attach(dirfd, prog)
        if rc < 0:
            raise OciError(
                "linux.resources.devices",
                f"attaching the BPF device filter to {path}: {posix.strerror(-rc)}",
            )
    finally:
        posix.close(prog)
