"""`linux.seccomp` -> classic BPF (struct sock_filter[]) for the C executor to load with seccomp(2).

Validation, flags and the cache key are pure Python so that a cache hit costs a stat, a sha256 and a read:
pyseccomp (ctypes + libseccomp, ~25 ms to import) is only imported when a filter must really be compiled.
Semantics follow runc/crun where the spec is silent:
  * syscall names libseccomp does not know are ignored (a profile may name syscalls newer than the host);
  * rules whose action equals the default action are skipped (libseccomp rejects them);
  * several conditions on the same argument index become separate rules (OR), as in runc and crun;
  * SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD; ERRNO and TRACE default to EPERM;
  * SCMP_ACT_NOTIFY may not be the default action nor be used for `write`, and needs `listenerPath`;
  * a syscall numbered above every one the profile names returns ENOSYS (ocirun/seccomp_enosys.py, as runc).
"""

import posix
import sys

from ocirun import __version__, fspath
from ocirun.errors import EMPTY, REQUIRED, OciError, must_be, out_of_range, show, unknown

# Kernel SECCOMP_RET_* action values (the same numbers libseccomp uses for SCMP_ACT_*).
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

ACTIONS: dict[str, int] = {
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_TRAP": ACT_TRAP,
}
# Only these carry a 16-bit datum (errno / ptrace message); the spec requires an error for errnoRet elsewhere.
_ACTIONS_WITH_ERRNO = frozenset(("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"))
_EPERM = 1

# libseccomp enum scmp_compare.
OPERATORS: dict[str, int] = {
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_MASKED_EQ": 7,
    "SCMP_CMP_NE": 1,
}

# AUDIT_ARCH_* values (= libseccomp SCMP_ARCH_* tokens): EM_* | 64BIT | LE [| MIPS N32 convention].
_A64, _LE, _N32 = 0x80000000, 0x40000000, 0x20000000
ARCHS: dict[str, int] = {
    "SCMP_ARCH_AARCH64": 183 | _A64 | _LE,
    "SCMP_ARCH_ARM": 40 | _LE,
    "SCMP_ARCH_LOONGARCH64": 258 | _A64 | _LE,
    "SCMP_ARCH_M68K": 4,
    "SCMP_ARCH_MIPS": 8,
    "SCMP_ARCH_MIPS64": 8 | _A64,
    "SCMP_ARCH_MIPS64N32": 8 | _A64 | _N32,
    "SCMP_ARCH_MIPSEL": 8 | _LE,
    "SCMP_ARCH_MIPSEL64": 8 | _A64 | _LE,
    "SCMP_ARCH_MIPSEL64N32": 8 | _A64 | _LE | _N32,
    "SCMP_ARCH_PARISC": 15,
    "SCMP_ARCH_PARISC64": 15 | _A64,
    "SCMP_ARCH_PPC": 20,
    "SCMP_ARCH_PPC64": 21 | _A64,
    "SCMP_ARCH_PPC64LE": 21 | _A64 | _LE,
    "SCMP_ARCH_RISCV64": 243 | _A64 | _LE,
    "SCMP_ARCH_S390": 22,
    "SCMP_ARCH_S390X": 22 | _A64,
    "SCMP_ARCH_SH": 42 | _LE,
    "SCMP_ARCH_SHEB": 42,
    "SCMP_ARCH_X32": 62 | _LE,
    "SCMP_ARCH_X86": 3 | _LE,
    "SCMP_ARCH_X86_64": 62 | _A64 | _LE,
}

# seccomp(2) SECCOMP_FILTER_FLAG_* bits.
FLAG_TSYNC = 1
FLAG_LOG = 2
FLAG_SPEC_ALLOW = 4
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32

FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

BPF_MAXINSNS = 4096  # kernel limit for one seccomp filter
_INSN_SIZE = 8  # sizeof(struct sock_filter)
_BPF_RET = 0x06
_CACHE_FORMAT = "2"  # bump when the compiler's output for the same input changes (2: the -ENOSYS stub)
_U64_MAX = (1 << 64) - 1


class Seccomp:
    """A compiled filter: exactly what the executor passes to seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog).

    `bpf` is the raw struct sock_filter[] (8 bytes per instruction, host byte order); `flags` already
    includes SECCOMP_FILTER_FLAG_NEW_LISTENER when `notify` is set.
    """

    __slots__ = ("bpf", "flags", "notify", "listener_path", "listener_metadata")

    def __init__(
        self,
        bpf: bytes,
        flags: int = 0,
        notify: bool = False,
        listener_path: str | None = None,
        listener_metadata: str | None = None,
    ) -> None:
        self.bpf = bpf
        self.flags = flags
        self.notify = notify
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata

    @property
    def insns(self) -> int:
        """Number of BPF instructions (struct sock_fprog.len)."""
        return len(self.bpf) // _INSN_SIZE

    def __repr__(self) -> str:
        return (
            f"Seccomp(insns={self.insns}, flags={self.flags:#x}, notify={self.notify}, "
            f"listener_path={self.listener_path!r})"
        )


class _Parsed:
    """Validated, normalised section: `key` covers everything that shapes the BPF and nothing else."""

    __slots__ = ("default", "archs", "rules", "flags", "notify", "listener_path", "listener_metadata", "key")


def _uint(value: object, what: str, maximum: int) -> int:
    if type(value) is not int:
        raise OciError(what, must_be("integer", value))
    if value < 0 or value > maximum:
        raise OciError(what, out_of_range(value, 0, maximum))
    return value


def _action(name: object, errno_ret: object, what: str, errno_what: str) -> int:
    """Action value with its errno datum; errnoRet on an action that cannot carry one is an error."""
    if type(name) is not str:
        raise OciError(what, REQUIRED if name is None else must_be("string", name))
    base = ACTIONS.get(name)
    if base is None:
        raise OciError(what, unknown(name, tuple(ACTIONS)))
    if name in _ACTIONS_WITH_ERRNO:
        datum = _EPERM if errno_ret is None else _uint(errno_ret, errno_what, 0xFFFF)
        return base | datum
    if errno_ret is not None:
        raise OciError(errno_what, f"errnoRet is not supported by action {show(name)}")
    return base


def _str_list(value: object, what: str) -> list:
    if value is None:
        return []
    if type(value) is not list:
        raise OciError(what, must_be("array", value))
    for i, item in enumerate(value):
        if type(item) is not str:
            raise OciError(f"{what}[{i}]", must_be("string", item))
    return value


def _parse(section: object, what: str) -> _Parsed:
    """Validate the section without libseccomp, so every error is cheap and names its JSON path.

    In phases, in this order (the first error found is the one reported): the default action, the
    architectures, the flags, the syscall rules, then the notify listener (which adds flags of its own)."""
    if type(section) is not dict:
        raise OciError(what, must_be("object", section))
    p = _Parsed()
    p.default = _default_action(section, what)
    p.archs = _architectures(section, what)
    flags = _flags(section, what)
    rules, notify = _syscall_rules(section, what)
    p.flags, p.listener_path, p.listener_metadata = _listener(section, what, flags, notify)
    p.rules = tuple(rules)
    p.notify = notify
    # repr() of tuples of ints and strs is canonical: key order and spelling of the JSON do not matter.
    p.key = repr((_CACHE_FORMAT, p.default, p.archs, tuple(r[:3] for r in rules)))
    return p


def _default_action(section: dict, what: str) -> int:
    """defaultAction with defaultErrnoRet; it may not be SCMP_ACT_NOTIFY."""
    default = _action(
        section.get("defaultAction"), section.get("defaultErrnoRet"),
        f"{what}.defaultAction", f"{what}.defaultErrnoRet",
    )
    if default == ACT_NOTIFY:
        raise OciError(f"{what}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    return default


def _architectures(section: dict, what: str) -> tuple[int, ...]:
    """architectures as AUDIT_ARCH_* tokens, each once, in order."""
    archs: list[int] = []
    for i, name in enumerate(_str_list(section.get("architectures"), f"{what}.architectures")):
        token = ARCHS.get(name)
        if token is None:
            raise OciError(f"{what}.architectures[{i}]", unknown(name, None, "architecture"))
        if token not in archs:
            archs.append(token)
    return tuple(archs)


def _flags(section: dict, what: str) -> int:
    """flags as SECCOMP_FILTER_FLAG_* bits."""
    flags = 0
    for i, name in enumerate(_str_list(section.get("flags"), f"{what}.flags")):
        bit = FLAGS.get(name)
        if bit is None:
            raise OciError(f"{what}.flags[{i}]", unknown(name, tuple(FLAGS)))
        flags |= bit
    return flags


def _syscall_rules(section: dict, what: str) -> tuple[list, bool]:
    """syscalls as (action, names, conditions, JSON path) rules, and whether any action is SCMP_ACT_NOTIFY."""
    syscalls = section.get("syscalls")
    if syscalls is None:
        syscalls = []
    elif type(syscalls) is not list:
        raise OciError(f"{what}.syscalls", must_be("array", syscalls))
    rules = []
    notify = False
    for i, call in enumerate(syscalls):
        where = f"{what}.syscalls[{i}]"
        if type(call) is not dict:
            raise OciError(where, must_be("object", call))
        names = call.get("names")
        if names is None:
            raise OciError(f"{where}.names", REQUIRED)
        names = _str_list(names, f"{where}.names")
        if not names:
            raise OciError(f"{where}.names", EMPTY)
        for j, name in enumerate(names):
            if not name:
                raise OciError(f"{where}.names[{j}]", EMPTY)
        action = _action(call.get("action"), call.get("errnoRet"), f"{where}.action", f"{where}.errnoRet")
        if action == ACT_NOTIFY:
            notify = True
            if "write" in names:
                # The init process still has to write to its sync pipe after the filter is loaded.
                raise OciError(f"{where}.names", "SCMP_ACT_NOTIFY cannot be used for the write syscall")
        rules.append((action, tuple(names), _conditions(call, where), where))
    return rules, notify


def _conditions(call: dict, where: str) -> tuple:
    """A rule's args as (index, operator, value, valueTwo) conditions."""
    args = call.get("args")
    if args is None:
        args = []
    elif type(args) is not list:
        raise OciError(f"{where}.args", must_be("array", args))
    conds = []
    for k, arg in enumerate(args):
        aw = f"{where}.args[{k}]"
        if type(arg) is not dict:
            raise OciError(aw, must_be("object", arg))
        for key in ("index", "value", "op"):
            if key not in arg:
                raise OciError(f"{aw}.{key}", REQUIRED)
        index = _uint(arg["index"], f"{aw}.index", 5)
        value = _uint(arg["value"], f"{aw}.value", _U64_MAX)
        value2 = arg.get("valueTwo")
        value2 = 0 if value2 is None else _uint(value2, f"{aw}.valueTwo", _U64_MAX)
        op_name = arg["op"]
        op = OPERATORS.get(op_name) if type(op_name) is str else None
        if op is None:
            raise OciError(f"{aw}.op", unknown(op_name, tuple(OPERATORS)))
        conds.append((index, op, value, value2))
    return tuple(conds)


def _listener(section: dict, what: str, flags: int, notify: bool) -> tuple[int, str | None, str | None]:
    """listenerPath and listenerMetadata, and the flags a listener needs (or must not have): (flags, path,
    metadata)."""
    listener_path = section.get("listenerPath")
    if listener_path is not None and type(listener_path) is not str:
        raise OciError(f"{what}.listenerPath", must_be("string", listener_path))
    metadata = section.get("listenerMetadata")
    if metadata is not None:
        if type(metadata) is not str:
            raise OciError(f"{what}.listenerMetadata", must_be("string", metadata))
        if not listener_path:
            raise OciError(f"{what}.listenerMetadata", "must not be set without listenerPath")
    if notify:
        if not listener_path:
            raise OciError(f"{what}.listenerPath", f"{REQUIRED} when SCMP_ACT_NOTIFY is used")
        flags |= FLAG_NEW_LISTENER
        if flags & FLAG_TSYNC:
            flags |= FLAG_TSYNC_ESRCH  # the kernel rejects TSYNC|NEW_LISTENER without it
    else:
        flags &= ~FLAG_WAIT_KILLABLE_RECV  # only meaningful with a listener; the kernel rejects it alone
    return flags, listener_path, metadata


def _build(p: _Parsed, what: str) -> bytes:
    """Run libseccomp over a parsed section and return the exported BPF."""
    import contextlib

    try:
        import pyseccomp
    except (ImportError, RuntimeError) as e:  # pyseccomp raises RuntimeError when libseccomp is missing
        raise OciError(what, f"seccomp is not available: {e}") from None

    try:
        flt = pyseccomp.SyscallFilter(p.default)
    except OSError as e:
        why = f"libseccomp rejected the default action: {e.strerror}"
        raise OciError(f"{what}.defaultAction", why) from None
    for i, token in enumerate(p.archs):
        try:
            flt.add_arch(token)
        except OSError as e:
            if e.errno == 17:  # EEXIST: the native arch is already in the filter
                continue
            raise OciError(
                f"{what}.architectures[{i}]", f"architecture not supported by this libseccomp: {e.strerror}"
            ) from None
    if sum(len(r[1]) for r in p.rules) > 32:
        # Binary-tree dispatch instead of a linear chain; libseccomp < 2.5 lacks it, which is harmless.
        with contextlib.suppress(OSError):
            flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)

    resolve = pyseccomp.resolve_syscall
    native = pyseccomp.Arch.NATIVE
    for action, names, conds, where in p.rules:
        if action == p.default:
            continue
        if not conds:
            groups: list[tuple] = [()]
        elif len({c[0] for c in conds}) == len(conds):
            groups = [conds]
        else:
            groups = [(c,) for c in conds]
        for j, name in enumerate(names):
            nr = resolve(native, name)
            if nr == -1:  # __NR_SCMP_ERROR: unknown to libseccomp on every arch; runc and crun skip it
                continue
            for group in groups:
                try:
                    flt.add_rule(action, nr, *(pyseccomp.Arg(*c) for c in group))
                except OSError as e:
                    why = f'cannot add rule for "{name}": {e.strerror}'
                    raise OciError(f"{where}.names[{j}]", why) from None

    fd = posix.memfd_create("ocirun-seccomp", posix.MFD_CLOEXEC)
    try:
        with open(fd, "r+b", closefd=False) as f:
            try:
                flt.export_bpf(f)
            except OSError as e:
                raise OciError(what, f"cannot export seccomp filter: {e.strerror}") from None
            f.seek(0)
            bpf = f.read()
    finally:
        posix.close(fd)
    from ocirun import seccomp_enosys as enosys

    if enosys.wanted(p.default):
        # Syscalls newer than every one the profile names get ENOSYS, not the default action (runc's patchbpf).
        names = [n for r in p.rules for n in r[1]]
        last = enosys.last_syscalls(names, p.archs, pyseccomp.system_arch(), _direct_resolver(pyseccomp))
        bpf = enosys.stub(last, sys.byteorder) + bpf
    if not _bpf_ok(bpf):
        why = f"compiled filter is invalid or too large ({len(bpf) // _INSN_SIZE} instructions)"
        raise OciError(what, why)
    return bpf


def _direct_resolver(pyseccomp):  # noqa: ANN001, ANN202
    """resolve_syscall, but a multiplexed syscall (socket on x86: libseccomp's pseudo-number -101) resolves to
    the direct number the filter also matches (359), so the stub never answers ENOSYS for it (runc does)."""
    import ctypes

    resolve = pyseccomp.resolve_syscall
    by_number = getattr(pyseccomp._libseccomp, "seccomp_syscall_resolve_num_arch", None)
    if by_number is not None:
        by_number.restype = ctypes.c_void_p
        by_number.argtypes = [ctypes.c_uint32, ctypes.c_int]
        free = ctypes.CDLL(None).free  # the name comes back malloc'd
        free.argtypes = [ctypes.c_void_p]
    direct: dict[int, dict[bytes, int]] = {}

    def resolve_direct(token: int, name: str) -> int:
        nr = resolve(token, name)
        if nr >= -1 or by_number is None:
            return nr
        if token not in direct:  # (the direct numbers of multiplexed calls are below 1024 on every arch)
            direct[token] = {}
            for n in range(1024):
                ptr = by_number(token, n)
                if ptr:
                    direct[token].setdefault(ctypes.string_at(ptr), n)
                    free(ptr)
        return direct[token].get(name.encode(), nr)

    return resolve_direct


def _bpf_ok(bpf: bytes) -> bool:
    """Cheap structural check: whole instructions, within the kernel limit, ending with a RET."""
    n = len(bpf)
    return n > 0 and n % _INSN_SIZE == 0 and n <= BPF_MAXINSNS * _INSN_SIZE and bpf[n - 8] & 0x07 == _BPF_RET


def _result(p: _Parsed, bpf: bytes) -> Seccomp:
    return Seccomp(bpf, p.flags, p.notify, p.listener_path, p.listener_metadata)


def compile_seccomp(section: dict, what: str = "linux.seccomp") -> Seccomp:
    """Compile `linux.seccomp` (config-linux.md "Seccomp") to BPF, always running libseccomp."""
    p = _parse(section, what)
    return _result(p, _build(p, what))


def _sha256_hex(data: bytes) -> str:
    try:  # the bare C module avoids hashlib's OpenSSL import (~6 ms) on the hot path
        from _sha256 import sha256
    except ImportError:
        try:
            from _sha2 import sha256  # Python >= 3.12
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


def _environment() -> str:
    """What besides the config shapes the BPF: ocirun, the machine (native arch) and libseccomp's identity."""
    u = posix.uname()
    lib = "?"
    multiarch = getattr(sys.implementation, "_multiarch", "")
    for d in (f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/lib64", "/usr/lib",
              "/usr/local/lib"):
        try:
            st = posix.stat(f"{d}/libseccomp.so.2")
        except OSError:
            continue
        lib = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        break
    return f"{__version__}|{u.machine}|{u.release}|{lib}"


def cache_key(section: dict, what: str = "linux.seccomp") -> str:
    """sha256 (hex) naming the cache file for `section` on this host."""
    return _sha256_hex(f"{_environment()}|{_parse(section, what).key}".encode())


def _read_cache(path: str) -> bytes | None:
    """The cached BPF, or None if absent or not trustworthy (wrong owner, writable by others, malformed)."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = posix.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != posix.geteuid() or st.st_mode & 0o022:
            return None
        if st.st_size > BPF_MAXINSNS * _INSN_SIZE:
            return None
        data = posix.read(fd, st.st_size + 1)
    finally:
        posix.close(fd)
    return data if _bpf_ok(data) else None


def _write_cache(cache_dir: str, path: str, bpf: bytes) -> None:
    """Atomic replace (tmp + rename) so a concurrent reader sees the old file, the new one, or none."""
    import contextlib

    try:
        fspath.makedirs(cache_dir, 0o700)
        tmp = f"{path}.{posix.getpid()}.{posix.urandom(4).hex()}.tmp"
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC, 0o600)
    except OSError:
        return  # a cache that cannot be written is only slower, never wrong
    try:
        try:
            view = memoryview(bpf)
            while view:
                view = view[posix.write(fd, view):]
            posix.fsync(fd)
        finally:
            posix.close(fd)
        posix.rename(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            posix.unlink(tmp)


def load_cached(section: dict, cache_dir: str, what: str = "linux.seccomp") -> Seccomp:
    """compile_seccomp() through `<cache_dir>/<sha256>.bpf`; a hit imports nothing and runs no libseccomp.

    The section is always validated, so a bad config fails the same way with or without a cache entry.
    """
    p = _parse(section, what)
    key = _sha256_hex(f"{_environment()}|{p.key}".encode())
    path = f"{cache_dir}/{key}.bpf"
    bpf = _read_cache(path)
    if bpf is None:
        bpf = _build(p, what)
        _write_cache(cache_dir, path, bpf)
    return _result(p, bpf)


# --- for `ocirun features` (never on the create path) -------------------------------------------------

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "i686": 354, "i386": 354, "armv7l": 383, "riscv64": 277,
                "s390x": 348, "ppc64le": 358, "ppc64": 358, "loongarch64": 277}


def supported_flags() -> list[str]:
    """Known flags this kernel accepts, probed with seccomp(SET_MODE_FILTER, flag, NULL).

    The kernel validates flags before reading the program, so EFAULT means "flag accepted" and nothing
    is installed; EINVAL means unsupported.
    """
    import ctypes

    nr = _SYS_SECCOMP.get(posix.uname().machine)
    if nr is None:
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    out = []
    for name, bit in FLAGS.items():
        probe = bit | FLAG_NEW_LISTENER if bit == FLAG_WAIT_KILLABLE_RECV else bit
        ctypes.set_errno(0)
        rc = syscall(ctypes.c_long(nr), ctypes.c_long(1), ctypes.c_ulong(probe), ctypes.c_void_p(None))
        if rc == -1 and ctypes.get_errno() == 14:  # EFAULT
            out.append(name)
    return out


def libseccomp_version() -> str | None:
    """"major.minor.micro" of the libseccomp pyseccomp loads, or None if unavailable."""
    try:
        import ctypes

        import pyseccomp
    except (ImportError, RuntimeError):
        return None
    fn = getattr(pyseccomp._libseccomp, "seccomp_version", None)
    if fn is None:
        return None
    fn.restype = ctypes.POINTER(ctypes.c_uint * 3)
    ver = fn().contents
    return f"{ver[0]}.{ver[1]}.{ver[2]}"
