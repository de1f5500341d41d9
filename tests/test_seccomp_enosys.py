"""The -ENOSYS stub (ocirun/seccomp_enosys.py): a syscall numbered above every one the profile names returns
ENOSYS instead of the default action, per architecture, as runc's patched filter does; every other syscall
gets exactly what libseccomp's program gives it. Checked on the BPF with an interpreter, in the kernel, and in
containers under ocirun and runc."""

from __future__ import annotations

import errno
import os
import struct

import pytest
from sidebyside import static_program
from test_seccomp import run_filtered

from ocirun import seccomp as sc
from ocirun import seccomp_enosys as enosys

pyseccomp = pytest.importorskip("pyseccomp")

X86_64, X86, X32, AARCH64 = 0xC000003E, 0x40000003, 0x4000003E, 0xC00000B7
X32_BIT = 0x40000000
RET_ENOSYS = 0x50000 | errno.ENOSYS
NATIVE = pyseccomp.system_arch()

pytestmark = pytest.mark.skipif(NATIVE != X86_64, reason="the architecture tables here are x86_64's")


def nr(arch: int, name: str) -> int:
    return pyseccomp.resolve_syscall(arch, name)


def run_bpf(bpf: bytes, arch: int, number: int, args: tuple[int, ...] = ()) -> int:
    """Classic BPF over a struct seccomp_data, as the kernel runs a filter: the action value returned."""
    a6 = (list(args) + [0] * 6)[:6]
    data = struct.pack("=iIQ6Q", number, arch, 0, *a6)
    insns = [struct.unpack("=HBBI", bpf[i:i + 8]) for i in range(0, len(bpf), 8)]
    acc, mem, pc = 0, [0] * 16, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x00:  # ld #k
            acc = k
        elif code == 0x60:  # ld M[k]
            acc = mem[k]
        elif code == 0x02:  # st M[k]
            mem[k] = acc
        elif code == 0x54:  # and #k
            acc &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            hit = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if hit else jf
        elif code == 0x06:  # ret #k
            return k
        elif code == 0x16:  # ret a
            return acc
        else:
            raise AssertionError(f"instruction {code:#x} not modelled")


def profile(default: str = "SCMP_ACT_ERRNO", **kw: object) -> dict:
    p = {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
         "syscalls": [{"names": ["read", "write", "getppid", "socket"], "action": "SCMP_ACT_ALLOW"},
                      {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}
    p.update(kw)
    return p


def compiled(section: dict, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    """(the filter with the stub, libseccomp's program alone)."""
    patched = sc.compile_seccomp(section).bpf
    with monkeypatch.context() as m:
        m.setattr(enosys, "wanted", lambda default: False)
        plain = sc.compile_seccomp(section).bpf
    return patched, plain


def test_above_the_highest_named_syscall_is_enosys_per_architecture(monkeypatch):
    patched, plain = compiled(profile(), monkeypatch)
    assert patched.endswith(plain) and len(patched) > len(plain)
    # x86_64: getppid (110) is the top; i386: socket's direct number (359; libseccomp resolves it to a pseudo
    # number, the filter matches 359 too); x32: getppid with the x32 bit
    top = {X86_64: nr(X86_64, "getppid"), X86: 359, X32: nr(X32, "getppid")}
    assert top[X86_64] == 110 and top[X32] == X32_BIT | 110 and nr(X86, "uname") < 359
    cases = [(X86_64, n) for n in range(0, 1100)] + [(X86, n) for n in range(0, 1100)]
    cases += [(X86_64, X32_BIT | n) for n in range(0, 600)]  # x32 calls arrive under AUDIT_ARCH_X86_64
    for arch, n in cases:
        got, lib = run_bpf(patched, arch, n), run_bpf(plain, arch, n)
        limit = top[X32] if n & X32_BIT else top[arch]
        assert got == (RET_ENOSYS if n > limit else lib), (hex(arch), hex(n))
    # the named ones keep their action, an unnamed one below the top gets the default
    assert run_bpf(patched, X86_64, nr(X86_64, "uname")) == 0x50000 | errno.EACCES
    assert run_bpf(patched, X86_64, nr(X86_64, "getpid")) == 0x50000 | errno.EPERM
    assert run_bpf(patched, X86_64, nr(X86_64, "clone3")) == RET_ENOSYS
    # an architecture the filter does not have: libseccomp's verdict (kill), untouched
    assert run_bpf(patched, AARCH64, 1000) == run_bpf(plain, AARCH64, 1000)


def test_multiplexed_syscall_counts_with_its_direct_number(monkeypatch):
    """i386 socket is multiplexed (socketcall) and direct (359): the direct number counts for the top, so an
    allowed socket() is never turned into ENOSYS (runc's stub, counting write's 4 as the top, does that)."""
    patched, plain = compiled(profile(architectures=["SCMP_ARCH_X86"], syscalls=[
        {"names": ["read", "write", "socket"], "action": "SCMP_ACT_ALLOW"}]), monkeypatch)
    assert run_bpf(patched, X86, 359) == run_bpf(plain, X86, 359) == 0x7FFF0000
    assert run_bpf(patched, X86, 360) == RET_ENOSYS and run_bpf(patched, X86, 5) == 0x50000 | errno.EPERM


def test_amd64_only_filter_leaves_x32_calls_to_libseccomp(monkeypatch):
    patched, plain = compiled(profile(architectures=["SCMP_ARCH_X86_64"]), monkeypatch)
    for n in (0, 110, 111, 500):
        assert run_bpf(patched, X86_64, X32_BIT | n) == run_bpf(plain, X86_64, X32_BIT | n)
    assert run_bpf(patched, X86_64, 111) == RET_ENOSYS


def test_native_architecture_is_always_covered(monkeypatch):
    """A profile listing only other architectures (Docker's on ppc64le) still gets the native one's stub."""
    patched, _ = compiled(profile(architectures=["SCMP_ARCH_X86"]), monkeypatch)
    assert run_bpf(patched, X86_64, 500) == RET_ENOSYS and run_bpf(patched, X86, 500) == RET_ENOSYS


@pytest.mark.parametrize("default", ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"])
def test_no_stub_for_a_permissive_default(monkeypatch, default):
    patched, plain = compiled(profile(default=default, syscalls=[
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO"}]), monkeypatch)
    assert patched == plain


def test_no_stub_when_the_default_is_already_enosys(monkeypatch):
    patched, plain = compiled(profile(defaultErrnoRet=errno.ENOSYS), monkeypatch)
    assert patched == plain


@pytest.mark.parametrize("default", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO"])
def test_strict_defaults_get_the_stub(monkeypatch, default):
    patched, plain = compiled(profile(default=default), monkeypatch)
    assert run_bpf(patched, X86_64, 111) == RET_ENOSYS and run_bpf(plain, X86_64, 111) != RET_ENOSYS


def test_profile_without_known_names_gets_no_stub(monkeypatch):
    patched, plain = compiled(profile(syscalls=[{"names": ["no_such_call"], "action": "SCMP_ACT_ALLOW"}]),
                              monkeypatch)
    assert patched == plain


def test_stub_for_s390_answers_the_multiplexer():
    """On s390(x) a syscall the kernel does not know arrives as nr 0 (setup(2)): ENOSYS too, as runc."""
    s390x = 22 | 0x80000000
    bpf = enosys.stub({s390x: {"": 400}}, "little") + struct.pack("=HBBI", 0x06, 0, 0, 0x50001)
    assert run_bpf(bpf, s390x, 0) == RET_ENOSYS and run_bpf(bpf, s390x, 401) == RET_ENOSYS
    assert run_bpf(bpf, s390x, 5) == 0x50001 and run_bpf(bpf, X86_64, 401) == 0x50001


def test_cache_key_changes_with_the_stub(monkeypatch):
    """Filters cached before the stub existed are not reused: the cache format is part of the key."""
    new = sc.cache_key(profile())
    monkeypatch.setattr(sc, "_CACHE_FORMAT", "1")
    assert sc.cache_key(profile()) != new


def test_in_the_kernel():
    """Loaded for real: above the top ENOSYS, a named denial keeps its errno, an unnamed call gets the default."""
    s = sc.compile_seccomp({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["write", "exit_group", "exit", "rt_sigreturn", "rt_sigprocmask", "futex", "getpid"],
         "action": "SCMP_ACT_ALLOW"},
        {"names": ["tgkill"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]})
    top = max(nr(X86_64, n) for n in ("write", "exit_group", "exit", "rt_sigreturn", "rt_sigprocmask", "futex",
                                      "getpid", "tgkill"))
    assert top == nr(X86_64, "tgkill")
    assert run_filtered(s, "tgkill") == ("exit", (-1, errno.EACCES))
    assert run_filtered(s, "getppid") == ("exit", (-1, errno.EPERM))
    assert run_filtered(s, top + 1) == ("exit", (-1, errno.ENOSYS))
    assert run_filtered(s, "clone3") == ("exit", (-1, errno.ENOSYS))


SYSNO_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
/* For each number: "<nr> <errno>" of syscall(nr) with zero arguments (0 when it succeeded). */
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    long n = strtol(argv[i], NULL, 0);
    errno = 0;
    long r = syscall(n, 0, 0, 0, 0, 0, 0);
    printf("%ld %d\n", n, r < 0 ? errno : 0);
  }
  return 0;
}
"""


def test_container_sees_enosys_above_the_profile(runtime, bundle):
    """The same profile under ocirun and runc: defaultAction ERRNO(EPERM), an allow list the process needs, a
    named denial; a call above the highest named number gets ENOSYS, an unnamed one below it EPERM."""
    b = bundle(["/bin/sysno"])
    exe = static_program("sysno", SYSNO_C)
    with open(exe, "rb") as src, open(os.path.join(b.rootfs, "bin/sysno"), "wb") as dst:
        dst.write(src.read())
    os.chmod(os.path.join(b.rootfs, "bin/sysno"), 0o755)
    # What the runtimes' inits (runc's Go runtime included) and a static program need once the filter is on.
    allow = ["execve", "execveat", "arch_prctl", "set_tid_address", "brk", "mmap", "munmap", "mprotect", "write",
             "writev", "read", "close", "openat", "fstat", "newfstatat", "ioctl", "exit", "exit_group", "futex",
             "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "gettid", "getpid", "tgkill",
             "sched_yield", "nanosleep", "epoll_ctl", "epoll_pwait", "fcntl", "prctl", "capget", "capset",
             "setgroups", "setresuid", "setresgid", "getppid", "madvise", "clone", "wait4", "getdents64",
             "readlinkat", "mlock", "close_range", "pidfd_open", "fstatfs", "statfs"]
    top = max(nr(NATIVE, n) for n in [*allow, "uname"])
    unnamed = nr(NATIVE, "getcwd")
    assert unnamed < top and unnamed not in {nr(NATIVE, n) for n in allow}
    b.spec["process"]["args"] = ["/bin/sysno", str(nr(NATIVE, "uname")), str(unnamed), str(top + 1),
                                 str(top + 2)]
    # (the architectures listed: runc 1.1 covers only those, later runc and ocirun the native one too)
    b.spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": [
        {"names": allow, "action": "SCMP_ACT_ALLOW"},
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, (runtime.name, p.err)
    got = dict(ln.split() for ln in p.out.splitlines())
    assert got == {str(nr(NATIVE, "uname")): str(errno.EACCES), str(unnamed): str(errno.EPERM),
                   str(top + 1): str(errno.ENOSYS), str(top + 2): str(errno.ENOSYS)}, (runtime.name, p.out)
