"""Typed boundaries between the layers: parsed flags, option records, the container state record, the
seccomp filter record, and the one-way import direction CLI → commands → operations."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys

import pytest
from ocitest import ROOT

from ocirun import cli, commands, create, execute, plan, state, update
from ocirun.errors import OciError

# --- cli.Args -----------------------------------------------------------------------------------------------


def test_reading_an_undefined_flag_raises():
    g, cmd, a = cli.parse(["--root", "/x", "delete", "--force", "c1"])
    assert cmd == "delete" and a.force is True and g.root == "/x" and g.debug is None
    with pytest.raises(AttributeError):
        a.forse  # noqa: B018  (a misspelt flag used to read as "not given")
    with pytest.raises(AttributeError):
        a.bundle  # noqa: B018  (a flag of another command)
    with pytest.raises(AttributeError):
        g.nosuch  # noqa: B018


def _flag_reads(fn) -> set[str]:  # noqa: ANN001
    """Names read as `a.<name>` in a cmd_ function (and the helpers it hands `a` to in commands.py)."""
    tree = ast.parse(inspect.getsource(fn).lstrip())
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "a"} - {"pos", "help"}


@pytest.mark.parametrize("cmd", sorted(cli.COMMANDS))
def test_every_flag_a_command_reads_is_in_its_table(cmd):
    keys = {k for k, _ in cli.COMMANDS[cmd][0].values()}
    reads = _flag_reads(getattr(commands, "cmd_" + cmd))
    if cmd in ("create", "run"):
        reads |= _flag_reads(commands._create_opts)
    assert reads <= keys, f"{cmd} reads flags its table does not define: {sorted(reads - keys)}"


def test_option_records_match_the_tables():
    exec_keys = {k for k, _ in cli.COMMANDS["exec"][0].values()}
    assert set(execute.ExecOpts.FLAGS) | {"preserve_fds"} == exec_keys
    update_keys = {k for k, _ in cli.COMMANDS["update"][0].values()}
    assert set(update.UpdateOpts.__slots__) == update_keys
    with pytest.raises(TypeError):
        update.UpdateOpts(memroy="1m")
    with pytest.raises(TypeError):
        execute.ExecOpts("/r", "c", ["true"], ttty=True)


def test_global_flag_values_are_checked():
    with pytest.raises(OciError, match="unknown cgroup manager"):
        cli.parse(["--cgroup-manager", "nope", "list"])
    with pytest.raises(OciError, match="invalid log format"):
        cli.parse(["--log-format", "yaml", "list"])
    g, _, a = cli.parse(["--cgroup-manager", "systemd", "create", "c1"])
    assert g.systemd_cgroup is True  # crun's spelling of --systemd-cgroup
    o = commands._create_opts(g, a)
    assert o.systemd_cgroup is True and o.cgroup_manager == "systemd"  # the systemd driver reads systemd_cgroup
    g, _, a = cli.parse(["--cgroup-manager", "disabled", "run", "c1"])
    o = commands._create_opts(g, a)
    assert o.systemd_cgroup is False and o.cgroup_manager == "disabled"
    g, _, a = cli.parse(["--systemd-cgroup", "create", "c1"])
    assert commands._create_opts(g, a).cgroup_manager == "systemd"
    with pytest.raises(OciError, match="conflicts with --systemd-cgroup"):
        cli.parse(["--systemd-cgroup", "--cgroup-manager", "disabled", "list"])


@pytest.mark.parametrize("module", ["ocirun.execute", "ocirun.update", "ocirun.run", "ocirun.lifecycle",
                                    "ocirun.create", "ocirun.commands", "ocirun.state", "ocirun.tty"])
def test_operations_do_not_import_the_cli(module):
    code = f"import sys, {module}; print('ocirun.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# --- ContainerState --------------------------------------------------------------------------------------

# A state.json exactly as the version before ContainerState wrote it.
OLD_STATE = {
    "ociVersion": "1.2.0", "id": "old1", "status": "created", "pid": 4242, "bundle": "/b", "rootfs": "/b/rootfs",
    "created": "2026-01-01T00:00:00.000000000Z", "owner": "", "annotations": {"a": "b"}, "start_time": 99,
    "cgroup": {"mode": "v2", "path": "/sys/fs/cgroup/x", "root": "/sys/fs/cgroup"},
    "config": {"hooks": {"poststop": [{"path": "/bin/true"}]}, "process": {"args": ["sh"], "cwd": "/"},
               "namespaces": [{"type": "pid", "path": ""}, {"type": "mount", "path": ""}], "seccomp": None},
    "notify": "/run/ocirun/old1/notify.sock", "paused": True,
}


def test_old_state_json_round_trips():
    st = state.ContainerState.from_json(json.loads(json.dumps(OLD_STATE)), "state.json")
    assert (st.id, st.pid, st.start_time, st.status, st.paused) == ("old1", 4242, 99, "created", True)
    assert st.config.namespace_types() == ["pid", "mount"] and st.config.hooks_of("poststop")[0]["path"] == "/bin/true"
    assert st.to_json() == OLD_STATE
    assert list(st.to_json()) == list(OLD_STATE)  # the same layout, key for key


def test_unknown_keys_of_other_versions_are_kept():
    st = state.ContainerState.from_json({**OLD_STATE, "restored": True, "rootless": "auto"}, "state.json")
    out = st.to_json()
    assert out["restored"] is True and out["rootless"] == "auto"


@pytest.mark.parametrize("key,value", [("pid", "12"), ("pid", True), ("start_time", 1.5), ("id", 5), ("id", ""),
                                       ("cgroup", ["x"]), ("cgroup", {"path": "/x"}), ("status", "dancing"),
                                       ("config", []), ("annotations", "x"), ("paused", 1), ("notify", 3)])
def test_wrong_types_are_a_damaged_state_not_a_crash_later(key, value):
    with pytest.raises(OciError) as e:
        state.ContainerState.from_json({**OLD_STATE, key: value}, "/r/x/state.json")
    assert e.value.what == "/r/x/state.json" and key.split("_")[0] in e.value.why


def test_oci_state_keys_in_runcs_order():
    st = state.ContainerState.from_json(OLD_STATE, "state.json")
    assert list(st.oci("running")) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                                       "annotations", "owner"]
    assert st.oci("stopped")["pid"] == 0


def test_journal_lines_merge_and_a_cut_line_is_ignored(tmp_path):
    d = str(tmp_path)
    j = state.Journal(d, {"ociVersion": "1.2.0", "id": "c", "status": "creating", "bundle": "/b",
                          "cgroup": {"mode": "disabled"}})
    j.add({"pid": os.getpid(), "start_time": state.proc_stat(os.getpid())[1]})
    j.close()
    with open(os.path.join(d, state.JOURNAL), "a") as f:
        f.write('{"pid": 1, "start_ti')  # a write cut short
    st, why = state.load_for_cleanup(os.path.dirname(d), os.path.basename(d))
    assert why == "" and st.pid == os.getpid() and st.current_status() == "creating" and st.alive()
    assert st.cgroup == {"mode": "disabled"}


# --- seccomp -------------------------------------------------------------------------------------------------


def test_seccomp_reaches_the_plan_as_a_record():
    sig = inspect.signature(plan.compile_create)
    assert "SeccompFilter" in str(sig.parameters["seccomp"].annotation)
    src = "".join(inspect.getsource(m) for m in (plan, execute, create))
    assert "seccomp[" not in src and "sec[0]" not in src


def test_traced_create_with_seccomp(rt, bundle):
    """--trace describes the seccomp filter from the record (it read the old tuple by index)."""
    b = bundle(["true"])
    b.spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}
    b.write()
    p = rt("--trace", "create", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert "seccomp.load" in p.err and "BPF instructions" in p.err
    rt("delete", "-f", b.id, check=True)
