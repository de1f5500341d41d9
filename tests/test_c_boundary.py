"""The C/Python boundary: every value that crosses it is written in C only and read by Python from the built
module (ocirun/_build_c.py exports csrc/plan.h's enumerators; struct layouts declared in csrc/*.cdef are
checked by cffi against the headers), and the init's plan walker refuses a step whose args do not fit."""

import ast
import re
from pathlib import Path

import pytest
from cbuild import csrc_lib

from ocirun import _build_c, _native, config, executor, plan
from ocirun.errors import OciError
from ocirun.specgen import default_spec

ROOT = Path(__file__).resolve().parent.parent
ffi, lib = _native.ffi, _native.lib


def test_the_enumerator_parser() -> None:
    text = """/* enum { NOT_ME } */ enum a { A = 1, /* B, */ C, // D,
    E = 100, }; struct s { int x; }; enum { F = 1 << 2 } ; typedef enum { G } g_t;"""
    assert _build_c.enumerators(text) == ["A", "C", "E", "F", "G"]


def test_opcodes_are_csrc_plan_h_s_and_dense() -> None:
    """Python's ops are exactly the C enum's (read independently of the build's parser), numbered 1..OP_MAX-1."""
    body = (ROOT / "csrc/plan.h").read_text().split("enum ocirun_op {", 1)[1].split("OP_MAX", 1)[0]
    names = re.findall(r"^\s*OP_([A-Z0-9_]+)\s*[,=]", body, re.M)
    assert set(plan.OPCODE) == set(names) and len(names) == len(set(names))
    assert sorted(plan.OPCODE.values()) == list(range(1, lib.OP_MAX))
    assert [plan.OPCODE[n] for n in names] == sorted(plan.OPCODE.values())  # in the header's order


def _exported() -> set[str]:
    return {n for n in dir(lib) if n.isupper() and isinstance(getattr(lib, n), int)}


def test_python_never_restates_a_c_value() -> None:
    """No module of the package assigns a number to a name the C side exports (MSG_GO = 100 ...): it reads it."""
    exported = _exported()
    assert {"MSG_GO", "OP_MOUNT", "HOOK_PROCESS_ENV", "MOUNT_SRC_FD", "BPF_DEVCG_ACC_READ"} <= exported
    bad = []
    for path in sorted((ROOT / "ocirun").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t for tg in targets for t in (tg.elts if isinstance(tg, ast.Tuple) else [tg])]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for t, v in zip(names, values if len(values) == len(names) else [node.value] * len(names),
                            strict=True):
                if isinstance(t, ast.Name) and t.id in exported and isinstance(v, ast.Constant):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {t.id} = {v.value!r}")
    assert not bad, bad


def test_python_reads_the_exported_values() -> None:
    assert (executor.MSG_SYNC, executor.MSG_ERROR, executor.MSG_PID, executor.MSG_READY, executor.MSG_FD,
            executor.MSG_MOUNT, executor.MSG_GO, executor.MSG_ABORT) == (
        lib.MSG_SYNC, lib.MSG_ERROR, lib.MSG_PID, lib.MSG_READY, lib.MSG_FD, lib.MSG_MOUNT, lib.MSG_GO,
        lib.MSG_ABORT)
    assert len({executor.MSG_SYNC, executor.MSG_ERROR, executor.MSG_PID, executor.MSG_READY, executor.MSG_FD,
                executor.MSG_MOUNT, executor.MSG_GO, executor.MSG_ABORT}) == 8
    assert (plan.HOOK_STATE_CREATED, plan.HOOK_PROCESS_ENV) == (lib.HOOK_STATE_CREATED, lib.HOOK_PROCESS_ENV)
    assert plan.HOOK_STATE_CREATING == 0 and not plan.HOOK_STATE_CREATED & plan.HOOK_PROCESS_ENV


def _cdef_structs() -> list[str]:
    return sorted({m for p in (ROOT / "csrc").glob("*.cdef") for m in re.findall(r"\bstruct (\w+) \{", p.read_text())})


def test_the_structs_python_reads_are_declared() -> None:
    assert {"ocirun_msg", "ocirun_trace", "ocirun_trace_rec", "ocirun_dev_rule", "ocirun_bpf_insn"} <= set(
        _cdef_structs())


@pytest.mark.parametrize("struct", _cdef_structs())
def test_cdef_structs_match_their_headers(struct: str) -> None:
    """cffi compares a cdef'd struct's fields and offsets with the compiler's when it is first used: use them."""
    assert ffi.sizeof(f"struct {struct}") > 0


def test_the_sync_header_as_c_lays_it_out() -> None:
    raw = executor.header(lib.MSG_MOUNT, -7, 1234)
    assert len(raw) == ffi.sizeof("struct ocirun_msg")
    m = ffi.cast("struct ocirun_msg *", ffi.from_buffer(raw))
    assert (m.type, m.value, m.len) == (lib.MSG_MOUNT, -7, 1234)


def test_tracer_reads_the_trace_records_as_c_lays_them_out() -> None:
    from ocirun import tracer

    assert tracer._HDR.size == ffi.offsetof("struct ocirun_trace", "rec")
    assert tracer._REC.size == ffi.sizeof("struct ocirun_trace_rec")
    buf = bytearray(tracer._HDR.size + tracer._REC.size)
    t = ffi.cast("struct ocirun_trace *", ffi.from_buffer(buf))
    t.n, t.cap = 1, 2
    t.rec[0].step, t.rec[0].err, t.rec[0].start_ns, t.rec[0].end_ns = 3, -4, 5 << 40, 6 << 40
    assert tracer._HDR.unpack_from(buf, 0) == (1, 2)
    assert tracer._REC.unpack_from(buf, tracer._HDR.size) == (3, -4, 5 << 40, 6 << 40)


def test_device_rule_access_bits_are_the_kernels() -> None:
    from ocirun.cgroups.devices import Rule

    r = Rule(True, "c", 1, 3, "rwm")
    assert r.access_bits() == lib.BPF_DEVCG_ACC_READ | lib.BPF_DEVCG_ACC_WRITE | lib.BPF_DEVCG_ACC_MKNOD
    assert Rule(False, "a", -1, -1, "w").access_bits() == lib.BPF_DEVCG_ACC_WRITE


# --- the init's step table (csrc/steps.c STEPS) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def c():  # noqa: ANN201
    return csrc_lib()


def test_every_op_has_a_step(c) -> None:  # noqa: ANN001
    missing = [n for n, v in plan.OPCODE.items() if c.lib.test_step_args(v) == ffi.NULL]
    assert not missing
    assert c.lib.test_step_args(0) == ffi.NULL and c.lib.test_step_args(lib.OP_MAX) == ffi.NULL


def _check(*steps: plan.Step) -> None:
    p = plan.Plan()
    p.steps.extend(steps)
    executor.check(p)


@pytest.mark.parametrize("step", [
    plan.Step("HOSTNAME", ""),                       # too few
    plan.Step("HOSTNAME", "", "a", "b"),             # too many
    plan.Step("HOSTNAME", "", 5),                    # an int for a string
    plan.Step("SETUID", "", "0"),                    # a string for an int
    plan.Step("MOUNT", "", "s", "d", "", 0, "", 0, 0, 0, 0, -1),         # half of the optional source
    plan.Step("MOUNT", "", "s", "d", "", 0, "", 0, 0, 0, 0, -1, "two"),
    plan.Step("ROOTFS", "", "/r", 1, "x"),
    plan.Step("SETGROUPS", ""),
    plan.Step("SETRESID0", "", 1),
])
def test_the_walker_refuses_steps_whose_args_do_not_fit(step: plan.Step) -> None:
    with pytest.raises(OciError, match="malformed at step 1"):
        _check(plan.Step("SETSID", ""), step)


@pytest.mark.parametrize("step", [
    plan.Step("MOUNT", "", "s", "d", "", 0, "", 0, 0, 0, 0),
    plan.Step("MOUNT", "", "s", "d", "", 0, "", 0, 0, 0, 0, -1, lib.MOUNT_SRC_ASK),
    plan.Step("ROOTFS", "", "/r", 1), plan.Step("ROOTFS", "", "/r", 1, 0),
    plan.Step("SETGROUPS", "", 0), plan.Step("SETGROUPS", "", 2, 5, 6),
    plan.Step("SETNS", "", "/proc/1/ns/net", 0), plan.Step("SETNS", "", 4, 0),
    plan.Step("SECCOMP", "", b"\0" * 8, 0, 0),
])
def test_the_walker_takes_steps_that_fit(step: plan.Step) -> None:
    _check(step)


def _config(tmp_path, process: dict | None = None, **linux) -> config.Config:  # noqa: ANN001
    (tmp_path / "rootfs" / "etc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "f").write_text("")
    s = default_spec()
    s["process"].update(terminal=False, rlimits=[{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}],
                        oomScoreAdj=5, ioPriority={"class": "IOPRIO_CLASS_IDLE", "priority": 0},
                        scheduler={"policy": "SCHED_OTHER"}, execCPUAffinity={"final": "0"},
                        user={"uid": 1, "gid": 1, "umask": 18, "additionalGids": [5]})
    s["process"]["env"] = ["PATH=/bin"]
    s["process"].update(process or {})
    s["hostname"], s["domainname"] = "h", "d"
    s["mounts"] += [{"destination": "/b", "type": "bind", "source": str(tmp_path), "options": ["rbind", "ro"]},
                    {"destination": "/bf", "type": "bind", "source": str(tmp_path / "f"), "options": ["bind"]},
                    {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "ro"]},
                    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}]
    s["hooks"] = {"createContainer": [{"path": "/bin/true"}], "startContainer": [{"path": "/bin/true"}]}
    s["linux"].update(personality={"domain": "LINUX"}, **linux)
    if any(n["type"] == "ipc" for n in s["linux"]["namespaces"]):  # (an ipc sysctl needs its namespace)
        s["linux"]["sysctl"] = {"kernel.msgmax": "1"}
    s["root"]["readonly"] = True
    return config.Config(s, str(tmp_path))


def test_every_plan_the_compiler_makes_fits(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Plans using (between them) every op Python emits pass the C walker's check."""
    from ocirun import lsm

    monkeypatch.setattr(lsm, "apparmor_enabled", lambda: True)  # (the plan only: nothing runs)
    seen: set[str] = set()
    sec = plan.SeccompFilter(b"\x06\0\0\0\0\0\xff\x7f", 0, False)
    extra = [{"type": "user"}, {"type": "cgroup"}, {"type": "time"}]  # (a v2 host's default has cgroup already)
    userns = {"namespaces": [n for n in default_spec()["linux"]["namespaces"] if n not in extra] + extra,
              "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
              "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
              "timeOffsets": {"monotonic": {"secs": 1}}}
    joined = {"namespaces": [{"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}, {"type": "pid"},
                             {"type": "uts"}], "rootfsPropagation": "shared"}
    plans = [
        plan.compile_create(_config(tmp_path, {"cwd": "/work", "apparmorProfile": "p"}), listen_fd=5, console_fd=6,
                            seccomp=sec),
        plan.compile_create(_config(tmp_path, **userns), listen_fd=5, no_pivot=True,
                            seccomp=plan.SeccompFilter(sec.bpf, 0, True), cgroup={"mode": "v2"}),
        plan.compile_create(_config(tmp_path, **joined), listen_fd=5, cgroup={"mode": "v1", "paths": {"cpu": "/x"}}),
        plan.compile_create(_config(tmp_path, namespaces=[{"type": "pid"}, {"type": "uts"}]), listen_fd=5),
        plan.compile_exec(config.Process({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
                          [("pid", 8, config.NAMESPACES["pid"]), ("mount", 9, config.NAMESPACES["mount"])],
                          console_fd=4, seccomp=sec),
    ]
    for p in plans:
        executor.check(p)
        seen |= {st.op for st in p.steps}
    # TRACE is the tracer's (tests/test_trace.py): every other op is one the compiler uses.
    assert set(plan.OPCODE) - seen == {"TRACE"}


# --- what one step may carry (csrc/plan.h's OCIRUN_MAX_*) -------------------------------------------------------

def _process(args: list[str], env: list[str]) -> config.Process:
    return config.Process({"args": args, "env": env, "cwd": "/", "user": {"uid": 0, "gid": 0}})


def test_argv_and_env_at_the_inits_limits() -> None:
    most_args, most_env = lib.OCIRUN_MAX_ARGV - 1, lib.OCIRUN_MAX_ENV - 2
    env = ["HOME=/"] + [f"V{i}=x" for i in range(most_env - 1)]
    executor.check(plan.compile_exec(_process(["true"] * most_args, env), []))
    with pytest.raises(OciError, match=f"process.args: {most_args + 1} arguments: the container's init takes "
                                       f"{most_args}"):
        plan.compile_exec(_process(["true"] * (most_args + 1), []), [])
    with pytest.raises(OciError, match=f"process.env: {most_env + 1} variables: the container's init takes"):
        plan.compile_exec(_process(["true"], [*env, "W=1"]), [])


def test_a_step_past_the_inits_limit_is_refused_by_its_label() -> None:
    p = plan.Plan()
    p.add("SETGROUPS", "process.user.additionalGids", lib.OCIRUN_MAX_ARGS, *range(lib.OCIRUN_MAX_ARGS))
    with pytest.raises(OciError, match=f"process.user.additionalGids: {lib.OCIRUN_MAX_ARGS + 1} values in one step"):
        p.encode()


def test_a_container_with_the_largest_environment(rt, bundle) -> None:  # noqa: ANN001
    """8190 variables reach the process (9000 used to fail as "clone: invalid argument"); one more is refused
    in words, before anything is made."""
    most = lib.OCIRUN_MAX_ENV - 2
    b = bundle(["sh", "-c", "env | grep -c ^V"])
    b.spec["process"]["env"] = ["PATH=/bin:/usr/bin", "HOME=/"] + [f"V{i}=x" for i in range(most - 2)]
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0 and p.out.strip() == str(most - 2), p.err
    b.spec["process"]["env"].append("ONE=more")
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 1 and p.err == (f"ocirun: process.env: {most + 1} variables: the container's init "
                                           f"takes {most}\n"), p.err
    assert rt("state", b.id).returncode != 0
