"""The -ENOSYS stub runc prepends to a seccomp filter (libcontainer/seccomp/patchbpf), in classic BPF.

A profile can only name the syscalls it knows. A syscall newer than all of them (clone3 for a profile written
before it, say) would otherwise get the default action, typically EPERM, and libc takes that as a real refusal
instead of falling back (glibc goes from clone3 to clone only on ENOSYS). So, per architecture in the filter,
a syscall number above the highest one the profile names returns ENOSYS; everything else goes on to
libseccomp's program untouched. Nothing here imports libseccomp: the caller resolves the names.
"""

ENOSYS = 38
_ACT_ERRNO = 0x00050000
_RET_ENOSYS = _ACT_ERRNO | ENOSYS
# Actions that let an unknown syscall through anyway (a tracer handles ENOSYS itself): no stub, as runc.
_PERMISSIVE = (0x7FFF0000, 0x7FFC0000, 0x7FF00000)  # ALLOW, LOG, TRACE
_ACTION_MASK = 0xFFFF0000

AUDIT_ARCH_X86_64 = 62 | 0x80000000 | 0x40000000
SCMP_ARCH_X32 = 62 | 0x40000000  # libseccomp's token: x32 runs under AUDIT_ARCH_X86_64 with bit 30 in the nr
_X32_BIT = 0x40000000
_S390 = (22, 22 | 0x80000000)  # s390, s390x: unknown syscalls arrive as nr 0 (setup(2), the multiplexer)

# struct sock_filter opcodes
_LD_W_ABS = 0x20
_JA = 0x05
_JEQ_K, _JGT_K, _JSET_K = 0x15, 0x25, 0x45
_RET_K = 0x06
_OFF_NR, _OFF_ARCH = 0, 4  # struct seccomp_data


def last_syscalls(names: list[str], archs: tuple[int, ...], native: int, resolve) -> dict[int, dict[str, int]]:  # noqa: ANN001
    """{audit arch: {"": highest nr} or, on x86_64, {"x86_64": …, "x32": …}} over every name the profile has
    (whatever its action), for each architecture of the filter plus the native one (Docker profiles on
    ppc64le omit it, as runc notes). Names an architecture does not know, and multiplexed pseudo-numbers
    (negative), do not count. `resolve(arch token, name)` is libseccomp's, -1 for an unknown name."""
    names = sorted(set(names))
    out: dict[int, dict[str, int]] = {}
    for token in dict.fromkeys([*archs, native]):
        top = max((nr for nr in (resolve(token, n) for n in names) if nr >= 0), default=0)
        if not top:
            continue
        if token == SCMP_ARCH_X32:
            out.setdefault(AUDIT_ARCH_X86_64, {})["x32"] = top
        elif token == AUDIT_ARCH_X86_64:
            out.setdefault(AUDIT_ARCH_X86_64, {})["x86_64"] = top
        else:
            out[token] = {"": top}
    return out


def wanted(default_action: int) -> bool:
    """The stub changes nothing for a permissive default, nor for a default that already is ENOSYS."""
    return default_action & _ACTION_MASK not in _PERMISSIVE and default_action != _RET_ENOSYS


def stub(last: dict[int, dict[str, int]], byteorder: str) -> bytes:
    """The instructions to put before libseccomp's program (which starts at the stub's end)."""
    if not last:
        return b""
    # Symbolic program: (code, jt, jf, k) where a jump target is a label name; "filter" is the stub's end.
    prog: list[tuple] = [(_LD_W_ABS, 0, 0, _OFF_ARCH)]
    for i, arch in enumerate(last):
        prog.append((_JEQ_K, f"arch{i}", 0, arch))
    prog.append((_JA, 0, 0, "filter"))
    for i, (arch, tops) in enumerate(last.items()):
        prog.append(("label", f"arch{i}"))
        prog.append((_LD_W_ABS, 0, 0, _OFF_NR))
        if arch in _S390:
            prog.append((_JEQ_K, "enosys", 0, 0))
        if "x86_64" in tops and "x32" in tops:
            prog.append((_JSET_K, f"x32_{i}", 0, _X32_BIT))
            prog.append((_JGT_K, "enosys", "filter", tops["x86_64"]))
            prog.append(("label", f"x32_{i}"))
            prog.append((_JGT_K, "enosys", "filter", tops["x32"]))
            continue
        if "x86_64" in tops:  # x32 numbers (bit 30) are not this ABI's: leave them to the filter
            prog.append((_JSET_K, "filter", 0, _X32_BIT))
        elif "x32" in tops:
            prog.append((_JSET_K, 0, "filter", _X32_BIT))
        prog.append((_JGT_K, "enosys", "filter", next(iter(tops.values()))))
    prog.append(("label", "enosys"))
    prog.append((_RET_K, 0, 0, _RET_ENOSYS))
    return _assemble(prog, byteorder)


def _assemble(prog: list[tuple], byteorder: str) -> bytes:
    """Resolve labels to relative jumps (forward only, as BPF requires) and encode struct sock_filter[]."""
    at: dict[str, int] = {}
    insns: list[tuple] = []
    for item in prog:
        if item[0] == "label":
            at[item[1]] = len(insns)
        else:
            insns.append(item)
    at["filter"] = len(insns)
    out = []
    for pc, (code, jt, jf, k) in enumerate(insns):
        if code == _JA:
            jt, jf, k = 0, 0, _offset(at, k, pc, 0xFFFFFFFF)
        else:
            jt, jf = _offset(at, jt, pc, 255), _offset(at, jf, pc, 255)
        out.append(code.to_bytes(2, byteorder) + bytes((jt, jf)) + k.to_bytes(4, byteorder))
    return b"".join(out)


def _offset(at: dict[str, int], target: int | str, pc: int, limit: int) -> int:
    """A jump's operand: instructions to skip from the one after `pc` to the label `target` (or a number)."""
    if isinstance(target, int):
        return target
    off = at[target] - pc - 1
    if not 0 <= off <= limit:  # cannot happen: the stub has a few instructions per architecture
        raise ValueError(f"seccomp stub: jump of {off} from {pc} to {target}")
    return off
