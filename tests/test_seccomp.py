"""ocirun.seccomp: compile with libseccomp, then load the exported BPF for real in a forked child."""

import ctypes
import errno
import os
import resource
import signal
import struct
import subprocess
import sys

import pytest

from ocirun import seccomp as sc
from ocirun.errors import OciError

pyseccomp = pytest.importorskip("pyseccomp")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_SYS_SECCOMP = sc._SYS_SECCOMP.get(os.uname().machine)
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
AUDIT_ARCH_I386 = 0x40000003

pytestmark = pytest.mark.skipif(_SYS_SECCOMP is None, reason="unknown seccomp syscall number for this arch")


def nr(name: str) -> int:
    n = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    assert n >= 0, name
    return n


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def run_filtered(s: sc.Seccomp, call: str | int, *args: int, in_thread: bool = False, close_listener: bool = False):
    """Fork; in the child load `s` exactly as the executor will, then make one raw syscall (a name or number).

    Returns ("exit", (ret, errno)) when the child reported, or ("signal", signo) when it was killed.
    With in_thread the syscall runs in a fresh pthread (no Python in it) and the child reports after
    joining it, which tells KILL_THREAD from KILL_PROCESS.
    """
    buf = ctypes.create_string_buffer(s.bpf, len(s.bpf))
    prog = SockFprog(len(s.bpf) // 8, ctypes.addressof(buf))
    cargs = [ctypes.c_long(a) for a in args]
    number = call if isinstance(call, int) else nr(call)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 120
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(121)
            fd = _libc.syscall(
                ctypes.c_long(_SYS_SECCOMP), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                ctypes.c_ulong(s.flags), ctypes.byref(prog),
            )
            if fd < 0:
                os.write(w, f"load {ctypes.get_errno()}".encode())
                os._exit(122)
            if close_listener:
                assert s.notify and fd > 0
                os.close(fd)
            if in_thread:
                tid = ctypes.c_ulong()
                start = ctypes.cast(_libc.syscall, ctypes.c_void_p)
                if _libc.pthread_create(ctypes.byref(tid), None, start, ctypes.c_void_p(number)) != 0:
                    os._exit(123)
                _libc.pthread_join(tid, None)
                os.write(w, b"joined 0")
                os._exit(0)
            ctypes.set_errno(0)
            ret = _libc.syscall(ctypes.c_long(number), *cargs)
            err = ctypes.get_errno()
            os.write(w, f"{ret} {err}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal", os.WTERMSIG(status)
    assert os.WEXITSTATUS(status) == 0, (os.WEXITSTATUS(status), data)
    a, b = data.split()
    return "exit", (int(a) if a != b"joined" else a.decode(), int(b))


def deny(names, action="SCMP_ACT_ERRNO", default="SCMP_ACT_ALLOW", **extra) -> dict:
    return {"defaultAction": default, "syscalls": [{"names": names, "action": action, **extra}]}


def insns(bpf: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", bpf[i : i + 8]) for i in range(0, len(bpf), 8)]


# ---- loading the BPF for real ---------------------------------------------------------------------------


def test_errno_default_eperm_and_other_syscalls_untouched():
    s = sc.compile_seccomp(deny(["getcwd", "chmod"]))
    assert len(s.bpf) % 8 == 0 and s.flags == 0 and not s.notify
    buf = ctypes.create_string_buffer(256)
    assert run_filtered(s, "getcwd", ctypes.addressof(buf), 256) == ("exit", (-1, errno.EPERM))
    kind, (ret, err) = run_filtered(s, "getppid")
    assert kind == "exit" and ret == os.getpid() and err == 0


def test_errno_ret_is_returned():
    s = sc.compile_seccomp(deny(["getppid"], errnoRet=errno.EXDEV))
    assert run_filtered(s, "getppid") == ("exit", (-1, errno.EXDEV))


def test_default_action_errno_with_default_errno_ret_and_allow_list():
    allow = ["write", "exit_group", "exit", "rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "mmap",
             "munmap", "brk", "futex", "close", "read", "madvise", "mprotect", "getppid"]
    s = sc.compile_seccomp({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.ENOTSUP,
        "syscalls": [{"names": allow, "action": "SCMP_ACT_ALLOW"}],
    })
    assert run_filtered(s, "getpgid", 0) == ("exit", (-1, errno.ENOTSUP))
    kind, (ret, _) = run_filtered(s, "getppid")
    assert kind == "exit" and ret == os.getpid()


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_in_sigsys(action):
    s = sc.compile_seccomp(deny(["getppid"], action))
    assert run_filtered(s, "getppid") == ("signal", signal.SIGSYS)


def test_kill_thread_kills_only_the_thread():
    s = sc.compile_seccomp(deny(["getppid"], "SCMP_ACT_KILL_THREAD"))
    assert run_filtered(s, "getppid", in_thread=True) == ("exit", ("joined", 0))


def test_kill_process_kills_the_whole_process_from_a_thread():
    s = sc.compile_seccomp(deny(["getppid"], "SCMP_ACT_KILL_PROCESS"))
    assert run_filtered(s, "getppid", in_thread=True) == ("signal", signal.SIGSYS)


def test_trace_without_tracer_is_enosys():
    s = sc.compile_seccomp(deny(["getppid"], "SCMP_ACT_TRACE"))
    assert run_filtered(s, "getppid") == ("exit", (-1, errno.ENOSYS))


def test_log_lets_the_call_through():
    s = sc.compile_seccomp(deny(["getppid"], "SCMP_ACT_LOG"))
    kind, (ret, _) = run_filtered(s, "getppid")
    assert kind == "exit" and ret == os.getpid()


def test_notify_sets_listener_flag_and_without_listener_gives_enosys():
    section = deny(["getppid"], "SCMP_ACT_NOTIFY")
    section["listenerPath"] = "/run/agent.sock"
    section["listenerMetadata"] = "meta"
    s = sc.compile_seccomp(section)
    assert s.notify and s.flags == sc.FLAG_NEW_LISTENER
    assert (s.listener_path, s.listener_metadata) == ("/run/agent.sock", "meta")
    assert run_filtered(s, "getppid", close_listener=True) == ("exit", (-1, errno.ENOSYS))


def test_notify_with_tsync_and_wait_killable_loads():
    section = deny(["getppid"], "SCMP_ACT_NOTIFY")
    section["listenerPath"] = "/x"
    section["flags"] = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    s = sc.compile_seccomp(section)
    want = sc.FLAG_TSYNC | sc.FLAG_NEW_LISTENER | sc.FLAG_TSYNC_ESRCH | sc.FLAG_WAIT_KILLABLE_RECV
    assert s.flags == want
    if "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" not in sc.supported_flags():
        pytest.skip("kernel lacks SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
    assert run_filtered(s, "getppid", close_listener=True) == ("exit", (-1, errno.ENOSYS))


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ([], 0),
        (["SECCOMP_FILTER_FLAG_LOG"], sc.FLAG_LOG),
        (["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], sc.FLAG_SPEC_ALLOW),
        (["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"], sc.FLAG_TSYNC | sc.FLAG_LOG),
        (["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], 0),  # dropped: meaningless (and EINVAL) without NOTIFY
    ],
)
def test_flags_become_seccomp2_bits_and_load(flags, want):
    section = deny(["getppid"], errnoRet=errno.EXDEV)
    section["flags"] = flags
    s = sc.compile_seccomp(section)
    assert s.flags == want
    assert s.bpf == sc.compile_seccomp(deny(["getppid"], errnoRet=errno.EXDEV)).bpf  # not baked into BPF
    assert run_filtered(s, "getppid") == ("exit", (-1, errno.EXDEV))


GETPGID_PID = 424242


@pytest.mark.parametrize(
    ("op", "value", "value2", "hit", "miss"),
    [
        ("SCMP_CMP_EQ", GETPGID_PID, None, GETPGID_PID, GETPGID_PID + 1),
        ("SCMP_CMP_NE", 0, None, GETPGID_PID, 0),
        ("SCMP_CMP_GT", GETPGID_PID, None, GETPGID_PID + 1, GETPGID_PID),
        ("SCMP_CMP_GE", GETPGID_PID, None, GETPGID_PID, GETPGID_PID - 1),
        ("SCMP_CMP_LT", GETPGID_PID, None, GETPGID_PID - 1, GETPGID_PID),
        ("SCMP_CMP_LE", GETPGID_PID, None, GETPGID_PID, GETPGID_PID + 1),
        ("SCMP_CMP_MASKED_EQ", 0xFF, 0x32, 0x4232, 0x4233),
    ],
)
def test_argument_operators(op, value, value2, hit, miss):
    arg = {"index": 0, "value": value, "op": op}
    if value2 is not None:
        arg["valueTwo"] = value2
    s = sc.compile_seccomp(deny(["getpgid"], errnoRet=errno.EXDEV, args=[arg]))
    assert run_filtered(s, "getpgid", hit) == ("exit", (-1, errno.EXDEV))
    kind, (_, err) = run_filtered(s, "getpgid", miss)
    assert kind == "exit" and err != errno.EXDEV


def test_conditions_on_different_args_are_anded():
    args = [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": GETPGID_PID, "op": "SCMP_CMP_EQ"}]
    s = sc.compile_seccomp(deny(["getpriority"], errnoRet=errno.EXDEV, args=args))
    assert run_filtered(s, "getpriority", 0, GETPGID_PID) == ("exit", (-1, errno.EXDEV))
    assert run_filtered(s, "getpriority", 0, 0)[1][1] != errno.EXDEV
    assert run_filtered(s, "getpriority", 1, GETPGID_PID)[1][1] != errno.EXDEV


def test_conditions_on_the_same_arg_become_separate_rules_like_runc():
    args = [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": GETPGID_PID, "op": "SCMP_CMP_EQ"}]
    s = sc.compile_seccomp(deny(["getpgid"], errnoRet=errno.EXDEV, args=args))
    assert run_filtered(s, "getpgid", 10) == ("exit", (-1, errno.EXDEV))
    assert run_filtered(s, "getpgid", GETPGID_PID) == ("exit", (-1, errno.EXDEV))
    assert run_filtered(s, "getpgid", 11)[1][1] != errno.EXDEV


def test_unknown_syscall_names_are_ignored_like_runc():
    s = sc.compile_seccomp(deny(["no_such_syscall_xyz", "getppid"], errnoRet=errno.EXDEV))
    assert run_filtered(s, "getppid") == ("exit", (-1, errno.EXDEV))
    only_unknown = sc.compile_seccomp(deny(["no_such_syscall_xyz"]))
    assert only_unknown.bpf == sc.compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW"}).bpf


def test_rule_equal_to_default_action_is_skipped():
    """libseccomp gets no rule for it (it would refuse one); its name still counts for the -ENOSYS stub."""
    section = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EXDEV,
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV}],
    }
    with_rule, without = sc.compile_seccomp(section).bpf, sc.compile_seccomp({**section, "syscalls": []}).bpf
    assert with_rule.endswith(without) and len(with_rule) > len(without)


def test_architectures_are_added_to_the_filter():
    native = sc.compile_seccomp(deny(["getppid"]))
    multi = sc.compile_seccomp({**deny(["getppid"]), "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                                                                        "SCMP_ARCH_X32"]})
    if os.uname().machine != "x86_64":
        pytest.skip("x86 arch tokens only checked on x86_64")
    ks = {k for code, _, _, k in insns(multi.bpf) if code == 0x15}  # BPF_JMP|BPF_JEQ|BPF_K
    assert AUDIT_ARCH_I386 in ks
    assert AUDIT_ARCH_I386 not in {k for code, _, _, k in insns(native.bpf) if code == 0x15}
    assert run_filtered(multi, "getppid") == ("exit", (-1, errno.EPERM))


def test_long_profile_uses_tree_and_still_works():
    names = ["getcwd", "chmod", "chown", "mkdir", "rmdir", "link", "unlink", "symlink", "rename", "truncate",
             "utime", "mknod", "chroot", "acct", "swapon", "swapoff", "reboot", "sethostname",
             "setdomainname", "iopl", "ioperm", "init_module", "delete_module", "quotactl", "mount",
             "umount2", "pivot_root", "kexec_load", "settimeofday", "adjtimex", "syslog", "lchown", "getppid"]
    s = sc.compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": [n], "action": "SCMP_ACT_ERRNO"} for n in names]})
    assert len(names) > 32
    assert run_filtered(s, "getppid") == ("exit", (-1, errno.EPERM))
    kind, (_, err) = run_filtered(s, "getpgid", 0)
    assert kind == "exit" and err == 0


def test_bpf_ends_in_ret_and_is_whole_instructions():
    s = sc.compile_seccomp(deny(["getppid"]))
    assert s.insns == len(s.bpf) // 8 > 0
    assert insns(s.bpf)[-1][0] & 7 == 6
    assert "insns=" in repr(s)


# ---- errors ---------------------------------------------------------------------------------------------

A = "SCMP_ACT_ALLOW"


@pytest.mark.parametrize(
    ("section", "what", "why"),
    [
        ([], "linux.seccomp", "must be an object"),
        ({}, "linux.seccomp.defaultAction", "is required"),
        ({"defaultAction": 3}, "linux.seccomp.defaultAction", "must be a string"),
        ({"defaultAction": "SCMP_ACT_FOO"}, "linux.seccomp.defaultAction",
         'invalid value "SCMP_ACT_FOO": must be one of SCMP_ACT_ALLOW, SCMP_ACT_ERRNO'),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "linux.seccomp.defaultAction", "cannot be the default"),
        ({"defaultAction": A, "defaultErrnoRet": 1}, "linux.seccomp.defaultErrnoRet",
         'not supported by action "SCMP_ACT_ALLOW"'),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "linux.seccomp.defaultErrnoRet",
         "out of range"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}, "linux.seccomp.defaultErrnoRet",
         "out of range"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": True}, "linux.seccomp.defaultErrnoRet",
         "must be an integer, got"),
        ({"defaultAction": A, "architectures": "SCMP_ARCH_X86"}, "linux.seccomp.architectures", "array"),
        ({"defaultAction": A, "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_Z80"]},
         "linux.seccomp.architectures[1]", 'unknown architecture "SCMP_ARCH_Z80"'),
        ({"defaultAction": A, "architectures": [7]}, "linux.seccomp.architectures[0]", "string"),
        ({"defaultAction": A, "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, "linux.seccomp.flags[0]",
         'invalid value "SECCOMP_FILTER_FLAG_NOPE": must be one of SECCOMP_FILTER_FLAG_TSYNC'),
        ({"defaultAction": A, "syscalls": {}}, "linux.seccomp.syscalls", "array"),
        ({"defaultAction": A, "syscalls": ["x"]}, "linux.seccomp.syscalls[0]", "object"),
        ({"defaultAction": A, "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}, "linux.seccomp.syscalls[0].names",
         "is required"),
        ({"defaultAction": A, "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
         "linux.seccomp.syscalls[0].names", "must not be empty"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd", ""], "action": "SCMP_ACT_ERRNO"}]},
         "linux.seccomp.syscalls[0].names[1]", "must not be empty"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd", 5], "action": "SCMP_ACT_ERRNO"}]},
         "linux.seccomp.syscalls[0].names[1]", "string"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"]}]}, "linux.seccomp.syscalls[0].action",
         "is required"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                                           {"names": ["getcwd"], "action": "SCMP_ACT_FOO"}]},
         "linux.seccomp.syscalls[1].action",
         'invalid value "SCMP_ACT_FOO": must be one of SCMP_ACT_ALLOW, SCMP_ACT_ERRNO'),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]},
         "linux.seccomp.syscalls[0].errnoRet", 'not supported by action "SCMP_ACT_KILL"'),
        ({"defaultAction": A,
          "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": "1"}]},
         "linux.seccomp.syscalls[0].errnoRet", "must be an integer, got"),
        ({"defaultAction": A, "listenerPath": "/s",
          "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]},
         "linux.seccomp.syscalls[0].names", "write"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]},
         "linux.seccomp.listenerPath", "required when SCMP_ACT_NOTIFY"),
        ({"defaultAction": A, "listenerMetadata": "m"}, "linux.seccomp.listenerMetadata",
         "without listenerPath"),
        ({"defaultAction": A, "listenerPath": 1}, "linux.seccomp.listenerPath", "string"),
        ({"defaultAction": A, "listenerPath": "/s", "listenerMetadata": 1}, "linux.seccomp.listenerMetadata",
         "string"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "args": {}}]},
         "linux.seccomp.syscalls[0].args", "array"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "args": [1]}]},
         "linux.seccomp.syscalls[0].args[0]", "object"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"index": 0, "value": 1}]}]},
         "linux.seccomp.syscalls[0].args[0].op", "is required"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"value": 1, "op": "SCMP_CMP_EQ"}]}]},
         "linux.seccomp.syscalls[0].args[0].index", "is required"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
         "linux.seccomp.syscalls[0].args[0].index", "is out of range: must be between 0 and 5"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}]}]},
         "linux.seccomp.syscalls[0].args[0].value", "out of range"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"index": 0, "value": 1, "valueTwo": -1,
                                                      "op": "SCMP_CMP_EQ"}]}]},
         "linux.seccomp.syscalls[0].args[0].valueTwo", "out of range"),
        ({"defaultAction": A, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                                            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]},
         "linux.seccomp.syscalls[0].args[0].op",
         'invalid value "SCMP_CMP_FOO": must be one of SCMP_CMP_EQ, SCMP_CMP_GE'),
    ],
)
def test_errors_name_the_json_path(section, what, why, tmp_path):
    for fn in (sc.compile_seccomp, lambda s: sc.load_cached(s, str(tmp_path))):
        with pytest.raises(OciError) as ei:
            fn(section)
        assert ei.value.what == what
        assert why in ei.value.why
        assert str(ei.value).startswith(f"{what}: ")
    assert list(tmp_path.iterdir()) == []


def test_custom_what_prefix():
    with pytest.raises(OciError) as ei:
        sc.compile_seccomp({"defaultAction": "nope"}, what="x.seccomp")
    assert ei.value.what == "x.seccomp.defaultAction"


def test_arch_unknown_to_libseccomp_is_a_clear_error():
    for name in ("SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB"):
        try:
            sc.compile_seccomp({"defaultAction": A, "architectures": ["SCMP_ARCH_X86", name]})
        except OciError as e:
            assert e.what == "linux.seccomp.architectures[1]"
            assert "not supported by this libseccomp" in e.why
            return
    pytest.skip("this libseccomp knows every architecture in the spec")


def test_seccomp_unavailable_is_an_oci_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # makes `import pyseccomp` raise ImportError
    with pytest.raises(OciError) as ei:
        sc.compile_seccomp(deny(["getcwd"]))
    assert ei.value.what == "linux.seccomp" and "not available" in ei.value.why


# ---- cache ----------------------------------------------------------------------------------------------


def test_cache_miss_writes_then_hit_reads(tmp_path, monkeypatch):
    section = deny(["getppid"], errnoRet=errno.EXDEV)
    s1 = sc.load_cached(section, str(tmp_path / "c"))
    files = list((tmp_path / "c").iterdir())
    assert [f.name for f in files] == [sc.cache_key(section) + ".bpf"]
    assert files[0].read_bytes() == s1.bpf == sc.compile_seccomp(section).bpf
    assert files[0].stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700

    def boom(*a, **k):
        raise AssertionError("compiled on a cache hit")

    monkeypatch.setattr(sc, "_build", boom)
    s2 = sc.load_cached(section, str(tmp_path / "c"))
    assert s2.bpf == s1.bpf and s2.flags == s1.flags


def test_cache_hit_does_not_import_pyseccomp_json_or_re(tmp_path):
    section = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    sc.load_cached(section, str(tmp_path))
    code = (
        "import sys\n"
        "from ocirun.seccomp import load_cached\n"
        f"s = load_cached({section!r}, {str(tmp_path)!r})\n"
        "mods = ('pyseccomp', 'json', 're', 'dataclasses', 'hashlib', 'ctypes')\n"
        "bad = [m for m in mods if m in sys.modules]\n"
        "print(len(s.bpf), s.flags, bad)\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    n, flags, bad = out.stdout.split(maxsplit=2)
    assert int(n) == len(sc.compile_seccomp(section).bpf) and int(flags) == sc.FLAG_LOG
    assert bad.strip() == "[]"


def test_import_is_cheap():
    code = "import sys, ocirun.seccomp; print([m for m in ('pyseccomp','json','re','dataclasses','ctypes') " \
           "if m in sys.modules])"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"


def test_cache_key_is_canonical():
    a = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    b = {"syscalls": [{"action": "SCMP_ACT_ERRNO", "names": ["getcwd"]}], "defaultAction": "SCMP_ACT_ALLOW"}
    c = {**a, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}  # EPERM anyway
    d = {**a, "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/x"}  # not part of the BPF
    e = {**a, "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}]}
    f = {**a, "architectures": ["SCMP_ARCH_X86"]}
    assert len(sc.cache_key(a)) == 64
    assert sc.cache_key(a) == sc.cache_key(b) == sc.cache_key(c) == sc.cache_key(d)
    assert len({sc.cache_key(a), sc.cache_key(e), sc.cache_key(f)}) == 3


def test_cache_key_changes_with_environment(monkeypatch):
    a = deny(["getcwd"])
    k = sc.cache_key(a)
    monkeypatch.setattr(sc, "__version__", "999")
    assert sc.cache_key(a) != k


def _seed(tmp_path, section, data: bytes, mode: int = 0o600):
    path = tmp_path / (sc.cache_key(section) + ".bpf")
    path.write_bytes(data)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "data",
    [b"", b"\x06\x00\x00\x00\x00\x00\xff\x7f" + b"xyz", b"\x15\x00\x00\x00\x00\x00\x00\x00",
     b"\x06\x00\x00\x00\x00\x00\xff\x7f" * (sc.BPF_MAXINSNS + 1)],
    ids=["empty", "not-multiple-of-8", "no-final-ret", "too-long"],
)
def test_malformed_cache_file_is_recompiled_and_replaced(tmp_path, data):
    section = deny(["getppid"])
    path = _seed(tmp_path, section, data)
    s = sc.load_cached(section, str(tmp_path))
    assert s.bpf == sc.compile_seccomp(section).bpf
    assert path.read_bytes() == s.bpf


def test_untrusted_cache_file_is_ignored(tmp_path):
    section = deny(["getppid"])
    allow_all = sc.compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW"}).bpf
    path = _seed(tmp_path, section, allow_all, mode=0o666)  # world-writable: anyone could have put it there
    s = sc.load_cached(section, str(tmp_path))
    assert s.bpf != allow_all and s.bpf == sc.compile_seccomp(section).bpf
    assert path.read_bytes() == s.bpf and path.stat().st_mode & 0o777 == 0o600


def test_symlinked_cache_file_is_not_followed(tmp_path):
    section = deny(["getppid"])
    target = tmp_path / "elsewhere"
    target.write_bytes(sc.compile_seccomp({"defaultAction": "SCMP_ACT_ALLOW"}).bpf)
    target.chmod(0o600)
    (tmp_path / (sc.cache_key(section) + ".bpf")).symlink_to(target)
    assert sc.load_cached(section, str(tmp_path)).bpf == sc.compile_seccomp(section).bpf


def test_unwritable_cache_dir_still_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    s = sc.load_cached(deny(["getppid"]), str(blocker / "cache"))
    assert s.bpf == sc.compile_seccomp(deny(["getppid"])).bpf


def test_no_tmp_files_left_behind(tmp_path):
    for n in ("getppid", "getcwd", "getpgid"):
        sc.load_cached(deny([n]), str(tmp_path))
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".bpf"] * 3


# ---- features helpers -----------------------------------------------------------------------------------


def test_supported_flags_are_known_flags_the_kernel_takes():
    flags = sc.supported_flags()
    assert set(flags) <= set(sc.FLAGS)
    assert "SECCOMP_FILTER_FLAG_TSYNC" in flags  # since Linux 3.17


def test_libseccomp_version():
    v = sc.libseccomp_version()
    assert v is not None and [int(x) for x in v.split(".")] >= [2, 0, 0]
