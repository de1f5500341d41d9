"""The runtime-spec's MUST clauses, one test each, quoted in the docstring with where they stand.

runtime.md = Runtime and Lifecycle; config.md / config-linux.md = configuration (runtime-spec 1.2).
"""

from __future__ import annotations

import json
import os
import time

from ocitest import ns_inode, wait_stopped


def test_state_fields(rt, bundle):
    """runtime.md "State": id, status, pid (created/running), bundle REQUIRED; annotations when set."""
    b = bundle(["sleep", "1000"])
    b.spec["annotations"] = {"org.example.k": "v"}
    b.write()
    rt("create", "-b", b.path, b.id, check=True)
    st = rt.state(b.id)
    assert st["ociVersion"] and st["id"] == b.id and st["status"] == "created"
    assert st["pid"] > 0 and st["bundle"] == b.path and st["annotations"] == {"org.example.k": "v"}
    rt("delete", "-f", b.id, check=True)


def test_create_duplicate_id(rt, bundle):
    """runtime.md "Create": if the ID is not unique, the runtime MUST generate an error and MUST NOT create a
    new container."""
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    assert rt("create", "-b", b.path, b.id).returncode != 0
    assert rt.state(b.id)["pid"] == pid
    rt("delete", "-f", b.id, check=True)


def test_create_does_not_run_program(rt, bundle):
    """runtime.md "Create": the user-specified program (process.args) MUST NOT be run at this time."""
    b = bundle(["sh", "-c", "touch /ran"], readonly=False)
    rt("create", "-b", b.path, b.id, check=True)
    time.sleep(0.3)
    assert not os.path.exists(os.path.join(b.rootfs, "ran"))
    rt("start", b.id, check=True)
    wait_stopped(rt, b.id)
    assert os.path.exists(os.path.join(b.rootfs, "ran"))  # start MUST run it
    rt("delete", b.id, check=True)


def test_start_not_created_is_an_error_without_effect(rt, bundle):
    """runtime.md "Start": attempting to start a container that is not created MUST have no effect on the
    container and MUST generate an error."""
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    before = rt.state(b.id)
    assert rt("start", b.id).returncode != 0
    assert rt.state(b.id) == before
    rt("delete", "-f", b.id, check=True)


def test_kill_stopped_is_an_error(rt, bundle):
    """runtime.md "Kill": signalling a container that is neither created nor running MUST have no effect and
    MUST generate an error."""
    b = bundle(["true"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    wait_stopped(rt, b.id)
    assert rt("kill", b.id, "KILL").returncode != 0
    assert rt.state(b.id)["status"] == "stopped"
    rt("delete", b.id, check=True)


def test_delete_running_is_an_error_without_effect(rt, bundle):
    """runtime.md "Delete": attempting to delete a container that is not stopped MUST have no effect on the
    container and MUST generate an error. (Like runc, a created container may be deleted: containerd cleans
    up failed starts that way.)"""
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    assert rt("delete", b.id).returncode != 0
    st = rt.state(b.id)
    assert st["status"] == "running" and os.path.exists(f"/proc/{st['pid']}")
    rt("delete", "-f", b.id, check=True)


def test_delete_removes_create_resources(rt, bundle):
    """runtime.md "Delete": deleting a container MUST delete the resources that were created during the
    create step (state, cgroup; the fixtures also check mounts)."""
    b = bundle(["true"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    wait_stopped(rt, b.id)
    rt("delete", b.id, check=True)
    assert not os.path.exists(os.path.join(rt.root, b.id))
    assert not any(os.path.exists(f"/sys/fs/cgroup/{c}{b.cgroup}") for c in os.listdir("/sys/fs/cgroup"))
    assert rt("state", b.id).returncode != 0


def test_prestart_failure(rt, bundle):
    """config.md "Prestart"/runtime.md step 4: if a prestart hook fails, the runtime MUST generate an error,
    stop the container, and continue the lifecycle at step 12 (nothing remains)."""
    b = bundle(["sh", "-c", "touch /ran"], readonly=False)
    b.spec["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    b.write()
    assert rt("create", "-b", b.path, b.id).returncode != 0
    assert rt("state", b.id).returncode != 0 and not os.path.exists(os.path.join(b.rootfs, "ran"))


def test_poststart_and_poststop_failures_warn(rt, bundle, tmp_path):
    """runtime.md: if a poststart hook fails the runtime MUST log a warning, and the remaining hooks and the
    lifecycle continue; likewise for poststop."""
    log = tmp_path / "log"
    b = bundle(["true"])
    b.spec["hooks"] = {
        "poststart": [{"path": "/bin/false"}, {"path": "/bin/sh", "args": ["sh", "-c", f"echo ps >> {log}"]}],
        "poststop": [{"path": "/bin/false"}, {"path": "/bin/sh", "args": ["sh", "-c", f"echo pst >> {log}"]}],
    }
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert "warning" in p.err and "hooks.poststart[0]" in p.err and "hooks.poststop[0]" in p.err
    assert log.read_text().split() == ["ps", "pst"]


def test_hooks_in_listed_order(rt, bundle, tmp_path):
    """config.md "POSIX-platform Hooks": hooks MUST be called in the listed order."""
    log = tmp_path / "log"
    b = bundle(["true"])
    b.spec["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo {i} >> {log}"]}
                                    for i in range(5)]}
    b.write()
    rt("run", "-b", b.path, b.id, check=True)
    assert log.read_text().split() == ["0", "1", "2", "3", "4"]


def test_mounts_in_listed_order(rt, bundle):
    """config.md "Mounts": the runtime MUST mount entries in the listed order (a later mount covers an
    earlier one at the same place)."""
    b = bundle(["sh", "-c", "grep ' /m ' /proc/self/mountinfo | wc -l; cat /proc/self/mountinfo | grep ' /m '"
                " | tail -1"])
    b.spec["mounts"] += [{"destination": "/m", "type": "tmpfs", "source": "first", "options": ["size=1m"]},
                         {"destination": "/m", "type": "tmpfs", "source": "second", "options": ["size=2m"]}]
    b.write()
    out = rt("run", "-b", b.path, b.id, check=True).out.splitlines()
    assert out[0].strip() == "2" and "second" in out[1]


def test_unset_namespace_is_inherited_path_is_joined(rt, bundle):
    """config-linux.md "Namespaces": if a namespace type is not specified the container MUST inherit the
    runtime's; if a path is given the runtime MUST place the container process in that namespace."""
    import subprocess

    holder = subprocess.Popen(["unshare", "--ipc", "sleep", "100"])
    try:
        time.sleep(0.2)
        b = bundle(["sleep", "1000"])
        b.spec["linux"]["namespaces"] = [n for n in b.spec["linux"]["namespaces"] if n["type"] != "network"]
        for n in b.spec["linux"]["namespaces"]:
            if n["type"] == "ipc":
                n["path"] = f"/proc/{holder.pid}/ns/ipc"
        b.write()
        rt("run", "-d", "-b", b.path, b.id, check=True)
        pid = rt.state(b.id)["pid"]
        assert ns_inode(pid, "net") == ns_inode("self", "net")
        assert ns_inode(pid, "ipc") == ns_inode(holder.pid, "ipc") != ns_inode("self", "ipc")
        rt("delete", "-f", b.id, check=True)
    finally:
        holder.kill()
        holder.wait()


def test_unknown_properties_are_ignored(rt, bundle):
    """config.md "Extensibility": runtimes MUST NOT generate an error on unknown properties (they are
    ignored); an unknown annotation key is fine too."""
    b = bundle(["true"])
    b.spec["org.example.unknown"] = {"x": 1}
    b.spec["linux"]["org.example.more"] = True
    b.spec["annotations"] = {"org.example.whatever": "1"}
    b.write()
    assert rt("run", "-b", b.path, b.id).returncode == 0


def test_root_readonly(rt, bundle):
    """config.md "Root": readonly true → the root filesystem MUST be read-only inside the container."""
    b = bundle(["sh", "-c", "touch /x 2>/dev/null && echo rw || echo ro"])
    assert rt("run", "-b", b.path, b.id).out.strip() == "ro"


def test_process_env_and_cwd(rt, bundle):
    """config.md "Process": cwd is the working directory the process starts in; env is its environment."""
    b = bundle(["sh", "-c", "pwd; echo $K"])
    b.spec["process"]["cwd"] = "/tmp"
    b.spec["process"]["env"].append("K=v")
    b.write()
    assert rt("run", "-b", b.path, b.id).out.split() == ["/tmp", "v"]


def test_state_json_is_valid_json(rt, bundle):
    """runtime.md "Query State": the state MUST be returned as JSON (stdout only)."""
    b = bundle(["sleep", "1000"])
    rt("create", "-b", b.path, b.id, check=True)
    json.loads(rt("state", b.id, check=True).out)
    rt("delete", "-f", b.id, check=True)
