"""State that is never lost or broken: damaged state files, interrupted creates, a full disk, frozen cgroups.

Every scenario is checked from outside: the init's /proc entry, the cgroup directories, the state directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from ocitest import Runtime, ocirun_cmd
from test_errors import processes_in

from ocirun.state import proc_stat


def alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def cgroup_dirs(b) -> list[str]:  # noqa: ANN001
    """Every directory the bundle's cgroupsPath names, in each mounted hierarchy (v1, hybrid or v2)."""
    out = [f"/sys/fs/cgroup{b.cgroup}"] + [f"/sys/fs/cgroup/{c}{b.cgroup}" for c in os.listdir("/sys/fs/cgroup")]
    return [d for d in out if os.path.isdir(d)]


def container_processes(b) -> list[int]:  # noqa: ANN001
    """Processes of the bundle's container: in its cgroup (pivoted inits show "/" as their root) or rooted in
    its rootfs (before pivot_root)."""
    out = set(processes_in(b.rootfs))
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cgroup") as f:
                    if any(ln.rstrip("\n").split(":", 2)[-1].startswith(b.cgroup) for ln in f):
                        out.add(int(p))
            except OSError:
                pass
    return sorted(pid for pid in out if alive(pid))


def leftovers(rt: Runtime, b, cid: str) -> list[str]:  # noqa: ANN001
    """What a removed container may not leave: its state directory, cgroup directories, processes."""
    left = [f"state dir {cid}"] if os.path.exists(os.path.join(rt.root, cid)) else []
    left += [f"cgroup {d}" for d in cgroup_dirs(b)]
    left += [f"process {p}" for p in container_processes(b)]
    return left


def state_file(rt: Runtime, cid: str) -> str:
    return os.path.join(rt.root, cid, "state.json")


# --- a damaged state.json --------------------------------------------------------------------------------


def _truncate(path: str) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _junk(path: str) -> None:
    with open(path, "wb") as f:
        f.write(b"\x00\xff not json at all")


def _empty(path: str) -> None:
    open(path, "wb").close()


def _wrong_types(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    data["pid"] = str(data["pid"])
    data["cgroup"] = ["not", "an", "object"]
    with open(path, "w") as f:
        json.dump(data, f)


def _not_an_object(path: str) -> None:
    with open(path, "w") as f:
        f.write("[1, 2, 3]")


def _directory(path: str) -> None:
    os.unlink(path)
    os.mkdir(path)
    with open(os.path.join(path, "x"), "w") as f:
        f.write("x")


DAMAGE = {"truncated": _truncate, "junk": _junk, "empty": _empty, "wrong-types": _wrong_types,
          "not-an-object": _not_an_object, "directory": _directory}


@pytest.fixture
def two(rt, bundle):  # noqa: ANN001, ANN201
    """Two running containers; the test damages the first one's state.json."""
    out = []
    for _ in range(2):
        b = bundle(["sleep", "1000"])
        rt("run", "-d", "-b", b.path, b.id, check=True)
        out.append((b, rt.state(b.id)["pid"]))
    return out


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_list_shows_the_others_and_warns(rt, two, damage):
    (bad, bad_pid), (good, good_pid) = two
    DAMAGE[damage](state_file(rt, bad.id))
    for args in (["list"], ["list", "-q"], ["list", "--format", "json"]):
        p = rt(*args)
        assert p.returncode == 0, (args, p.err)
        assert good.id in p.out, (args, p.out)
        warnings = [ln for ln in p.err.splitlines() if ln.startswith("ocirun: warning: ")]
        assert len(warnings) == 1 and bad.id in warnings[0] and "state.json" in warnings[0], (args, p.err)
    rows = {r["id"]: r for r in json.loads(rt("list", "--format", "json").out)}
    assert rows[good.id]["status"] == "running" and rows[good.id]["pid"] == good_pid
    # What create recorded still shows the damaged one, with its live init.
    assert rows[bad.id]["pid"] == bad_pid and rows[bad.id]["status"] == "running"
    p = rt("state", bad.id)
    assert p.returncode == 1 and p.err.startswith("ocirun: ") and "state.json" in p.err and "Traceback" not in p.err
    rt("delete", "-f", bad.id, check=True)
    rt("delete", "-f", good.id, check=True)


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_delete_force_kills_and_removes_a_damaged_container(rt, two, damage):
    (bad, bad_pid), (good, good_pid) = two
    DAMAGE[damage](state_file(rt, bad.id))
    p = rt("delete", "--force", bad.id)
    assert p.returncode == 0, p.err
    assert "Traceback" not in p.err
    assert not alive(bad_pid)
    assert leftovers(rt, bad, bad.id) == []
    assert alive(good_pid) and rt.state(good.id)["status"] == "running"  # the other one untouched
    rt("delete", "-f", good.id, check=True)


@pytest.mark.parametrize("damage", ["truncated", "junk", "directory"])
def test_delete_without_force_refuses_while_the_init_runs(rt, two, damage):
    """It used to return 0 and drop the state while the process ran on, invisible to list and delete."""
    (bad, bad_pid), (good, _) = two
    DAMAGE[damage](state_file(rt, bad.id))
    p = rt("delete", bad.id)
    assert p.returncode == 1, p.err
    lines = p.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'ocirun: container "{bad.id}": '), p.err
    assert "not stopped" in lines[0] and "--force" in lines[0]
    assert alive(bad_pid) and os.path.isdir(os.path.join(rt.root, bad.id))
    assert bad.id in rt("list", "-q").out
    rt("delete", "--force", bad.id, check=True)
    assert not alive(bad_pid) and leftovers(rt, bad, bad.id) == []
    rt("delete", "-f", good.id, check=True)


def test_delete_without_force_removes_a_damaged_stopped_container(rt, bundle):
    b = bundle(["true"])
    rt("create", "-b", b.path, b.id, check=True)
    pid = rt.state(b.id)["pid"]
    rt("start", b.id, check=True)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    _junk(state_file(rt, b.id))
    p = rt("delete", b.id)
    assert p.returncode == 0, p.err
    assert leftovers(rt, b, b.id) == []


def test_old_state_files_still_load(rt, bundle):
    """A state.json as earlier versions wrote it (no create journal beside it) still works for every command."""
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    d = os.path.join(rt.root, b.id)
    for name in os.listdir(d):
        if name not in ("state.json", "notify.sock"):
            os.unlink(os.path.join(d, name))
    with open(state_file(rt, b.id)) as f:
        data = json.load(f)
    data.pop("paused", None)
    with open(state_file(rt, b.id), "w") as f:
        json.dump(data, f)  # (json's own key order and spacing, not ours)
    st = rt.state(b.id)
    assert st["status"] == "running" and st["pid"] == data["pid"]
    rt("pause", b.id, check=True)
    assert rt.state(b.id)["status"] == "paused"
    rt("resume", b.id, check=True)
    rt("exec", b.id, "true", check=True)
    rt("kill", b.id, "KILL", check=True)
    rt("delete", "-f", b.id, check=True)
    assert leftovers(rt, b, b.id) == []


# --- create killed at any point ----------------------------------------------------------------------------


def test_sigkill_of_create_at_any_point_is_found_and_removed(rt, bundle):
    """SIGKILL `create` at many delays across its whole run; whatever it left must be visible to `list` and
    removed by `delete --force`: no process, no cgroup, no state directory (runc: 0 of 106 kills leak)."""
    b = bundle(["sleep", "1000"])
    env = dict(os.environ)
    argv = [*ocirun_cmd(), "--root", rt.root, "create", "-b", b.path, b.id]
    t0 = time.monotonic()
    rt("create", "-b", b.path, b.id, check=True)
    took = time.monotonic() - t0
    rt("delete", "-f", b.id, check=True)
    n = 64
    found_live = 0
    for i in range(n):
        delay = took * 1.3 * i / n
        with open(os.devnull, "wb") as null:
            p = subprocess.Popen(argv, stdout=null, stderr=null, env=env)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
        d = os.path.join(rt.root, b.id)
        live = container_processes(b)
        if live:
            found_live += 1
            # A live init must be visible: its state directory exists and `list` shows the container.
            assert os.path.isdir(d), (delay, live)
            assert b.id in rt("list", "-q").out.split(), (delay, live)
        q = rt("delete", "--force", b.id)
        assert q.returncode == 0, (delay, q.err)
        assert leftovers(rt, b, b.id) == [], (delay, leftovers(rt, b, b.id))
    # The sweep reached the end of create at least sometimes (else it tested nothing past the clone).
    print(f"sweep: {found_live} of {n} kills left a live init, all found and removed")
    assert found_live > 0


# --- a full disk -----------------------------------------------------------------------------------------


@pytest.fixture
def tiny_root(tmp_path):  # noqa: ANN001, ANN201
    """A small tmpfs as --root; fill(pages) leaves that many free pages."""
    d = tmp_path / "tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(d)], check=True)

    def fill(pages: int) -> None:
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
        with open(d / "filler", "wb") as f:
            f.write(b"x" * max(0, free - pages * st.f_frsize))
        assert os.statvfs(d).f_bavail == pages

    try:
        yield str(d / "root"), fill
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.mark.parametrize("free_pages", [0, 1])
def test_full_disk_while_saving_state(tiny_root, bundle, free_pages):
    """0 free pages: the first state write fails; 1: the journal fits and state.json does not."""
    root, fill = tiny_root
    os.makedirs(root)
    fill(free_pages)
    rt = Runtime(root)
    b = bundle(["sleep", "1000"])
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode == 1
    lines = p.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocirun: "), p.err
    assert "no space left on device" in lines[0] and "internal error" not in lines[0], lines[0]
    assert os.listdir(root) == [] or os.listdir(root) == [".seccomp-cache"]
    assert leftovers(rt, b, b.id) == []


def test_full_disk_while_pausing(tiny_root, bundle):
    """pause rewrites state.json: a full disk fails it with one line, and the container is left running."""
    root, fill = tiny_root
    rt = Runtime(root)
    b = bundle(["sleep", "1000"])
    rt("run", "-d", "-b", b.path, b.id, check=True)
    fill(0)
    p = rt("pause", b.id)
    assert p.returncode == 1 and "no space left on device" in p.err and "internal error" not in p.err, p.err
    assert rt.state(b.id)["status"] == "running"
    os.unlink(os.path.join(os.path.dirname(root), "filler"))
    rt("delete", "-f", b.id, check=True)
    assert leftovers(rt, b, b.id) == []


# --- frozen cgroups ----------------------------------------------------------------------------------------


def freezers(rt: Runtime, cid: str) -> dict[str, str]:
    """How this host can freeze the container from outside: {kind: file to write}."""
    cg = rt.internal(cid)["cgroup"]
    out = {}
    if cg["mode"] == "v2":
        out["cgroup.freeze"] = os.path.join(cg["path"], "cgroup.freeze")
    else:
        if "freezer" in cg["paths"]:
            out["freezer.state"] = os.path.join(cg["paths"]["freezer"], "freezer.state")
        if "unified" in cg["paths"] and os.path.exists(os.path.join(cg["paths"]["unified"], "cgroup.freeze")):
            out["cgroup.freeze"] = os.path.join(cg["paths"]["unified"], "cgroup.freeze")
    return out


FROZEN = {"freezer.state": "FROZEN", "cgroup.freeze": "1"}


@pytest.mark.parametrize("kind", ["freezer.state", "cgroup.freeze"])
@pytest.mark.parametrize("started", [True, False])
def test_delete_force_of_a_container_frozen_from_outside(rt, bundle, kind, started):
    b = bundle(["sh", "-c", "sleep 1000 & sleep 1000"])
    rt("create", "-b", b.path, b.id, check=True)
    if started:
        rt("start", b.id, check=True)
    pid = rt.state(b.id)["pid"]
    where = freezers(rt, b.id)
    if kind not in where:
        rt("delete", "-f", b.id)
        pytest.skip(f"no {kind} for this container's cgroup here")
    with open(where[kind], "w") as f:
        f.write(FROZEN[kind])
    # (a hang bound, not a timing assertion: the broken delete waited 10 s for a frozen init, then failed)
    p = rt("delete", "-f", b.id, timeout=8)
    assert p.returncode == 0, p.err
    assert not alive(pid) and leftovers(rt, b, b.id) == []


def _precreate_frozen(b, kind: str) -> str:  # noqa: ANN001
    """Make the bundle's cgroup before the container and freeze it; returns the directory frozen."""
    from ocirun import cgroups

    mode = cgroups.detect_mode()
    if kind == "freezer.state":
        d = f"/sys/fs/cgroup/freezer{b.cgroup}"
        if mode == "v2" or not os.path.isdir("/sys/fs/cgroup/freezer"):
            pytest.skip("no v1 freezer here")
    else:
        d = f"/sys/fs/cgroup{b.cgroup}" if mode == "v2" else f"/sys/fs/cgroup/unified{b.cgroup}"
        if mode == "v1":
            pytest.skip("no cgroup2 mount here")
    os.makedirs(d)
    with open(os.path.join(d, kind), "w") as f:
        f.write(FROZEN[kind])
    return d


def _thaw_and_remove(d: str, kind: str) -> None:
    with open(os.path.join(d, kind), "w") as f:
        f.write("THAWED" if kind == "freezer.state" else "0")
    for sub, _, _ in sorted(os.walk(d), reverse=True):
        os.rmdir(sub)
    parent = os.path.dirname(d)
    try:
        os.rmdir(parent)  # /…/ocirun-test, if nothing else is in it
    except OSError:
        pass


@pytest.mark.parametrize("kind", ["freezer.state", "cgroup.freeze"])
@pytest.mark.parametrize("cmd", [["run", "-d"], ["create"]])
def test_a_frozen_target_cgroup_is_refused(rt, bundle, kind, cmd):
    """As runc (libcontainer.Create, since 1.1.0): "container's cgroup unexpectedly frozen", instead of a
    child that freezes in its cgroup and a `run -d` that never returns."""
    b = bundle(["sleep", "1000"])
    d = _precreate_frozen(b, kind)
    try:
        p = rt(*cmd, "-b", b.path, b.id, timeout=15)
        assert p.returncode == 1, p.err
        assert p.err.strip() == f'ocirun: container "{b.id}": container\'s cgroup unexpectedly frozen', p.err
        assert not os.path.exists(os.path.join(rt.root, b.id))
        assert container_processes(b) == []
        assert os.path.isdir(d)  # not ours to remove: it was there before
    finally:
        _thaw_and_remove(d, kind)


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed")
def test_a_frozen_target_cgroup_runc_says_the_same(tmp_path, bundle):
    b = bundle(["sleep", "1000"])
    d = _precreate_frozen(b, "freezer.state")
    try:
        p = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-d", "-b", b.path, b.id],
                           capture_output=True, text=True, timeout=15)
        assert p.returncode == 1 and "container's cgroup unexpectedly frozen" in p.stderr, p.stderr
    finally:
        _thaw_and_remove(d, "freezer.state")


def test_malformed_json_is_an_error_without_the_json_module():
    """The _json scanner reports errors through json.decoder, which the runtime does not import: a truncated
    document used to end as "internal error: SystemError"."""
    from ocitest import ROOT

    code = ("import sys; from ocirun import jsonio\n"
            "for t in ('{\"a\": [1, 2', '{\"a\" 1}', '{\"x\": \"cut'):\n"
            "    try: jsonio.loads(t, 'f')\n"
            "    except Exception as e: print(type(e).__name__, e)\n"
            "print('json' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    lines = p.stdout.splitlines()
    assert len(lines) == 4 and all(ln.startswith("OciError f: line 1 column ") for ln in lines[:3]), p.stdout
    assert lines[3] == "False", p.stdout  # (nor does the error path import it: see ocirun/jsonio.py)
