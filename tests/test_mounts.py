"""Mounts as Kubernetes clients and runc's users expect them: rootfs propagation (CRI's Bidirectional and
HostToContainer volumes), read-only /dev, and --no-pivot. Each scenario runs on a real container under ocirun
and, when it is installed, under runc with the same bundle: both must show the same thing, from inside (the
container's output) and outside (the host's mountinfo).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from sidebyside import runc_version

SYS_ADMIN = ["CAP_SYS_ADMIN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]


def mountinfo(pid: str | int = "self") -> list[list[str]]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [ln.split() for ln in f]


def mount_at(path: str) -> list[str] | None:
    """The top mount at `path` in our namespace (its mountinfo fields), or None."""
    found = [m for m in mountinfo() if m[4] == path]
    return found[-1] if found else None


def optional_fields(m: list[str]) -> list[str]:
    return m[6:m.index("-")]


@pytest.fixture
def shared_dir(tmp_path):  # noqa: ANN001, ANN201
    """A host directory that is its own shared mount (what a Bidirectional volume's source is on a systemd host)."""
    d = str(tmp_path / "vol")
    os.makedirs(d)
    subprocess.run(["mount", "--bind", d, d], check=True)
    subprocess.run(["mount", "--make-rshared", d], check=True)
    yield d
    while mount_at(d) or any(m[4].startswith(d + "/") for m in mountinfo()):
        subprocess.run(["umount", "-R", "-l", d], check=False)


def with_volume(b, source: str, rootfs_prop: str, vol_prop: str, args: list[str]):  # noqa: ANN001, ANN201
    b.spec["process"]["args"] = args
    b.spec["linux"]["rootfsPropagation"] = rootfs_prop
    b.spec["mounts"].append({"destination": "/vol", "type": "bind", "source": source,
                             "options": ["rbind", vol_prop]})
    for k in ("bounding", "effective", "permitted"):
        b.spec["process"]["capabilities"][k] = SYS_ADMIN
    return b.write()


def test_rshared_volume_mounts_reach_the_host(runtime, bundle, shared_dir):
    """CRI Bidirectional: rootfsPropagation rshared + an rshared bind volume; a tmpfs the container mounts on
    the volume appears on the host (ocirun used to make / rslave first, so the volume became a slave)."""
    b = with_volume(bundle(), shared_dir, "rshared", "rshared",
                    ["sh", "-c", "mkdir -p /vol/sub && mount -t tmpfs from-ctr /vol/sub && echo hi > /vol/sub/f"
                     " && grep ' /vol ' /proc/self/mountinfo"])
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    host_group = [f for f in optional_fields(mount_at(shared_dir)) if f.startswith("shared:")]
    inside = p.out.split()
    assert host_group and host_group[0] in inside and not any(f.startswith("master:") for f in inside), p.out
    m = mount_at(shared_dir + "/sub")
    assert m is not None and m[m.index("-") + 1] == "tmpfs" and m[m.index("-") + 2] == "from-ctr", mountinfo()
    with open(shared_dir + "/sub/f") as f:
        assert f.read() == "hi\n"


def test_rslave_volume_gets_host_mounts_but_keeps_its_own(runtime, bundle, shared_dir):
    """CRI HostToContainer: rootfsPropagation rslave + an rslave volume; a host mount made while the container
    runs shows inside, the container's own mount on the volume stays out of the host."""
    script = ("mkdir -p /vol/own && mount -t tmpfs from-ctr /vol/own && touch /vol/ready"
              " && while [ ! -e /vol/go ]; do sleep 0.05; done; grep ' /vol/' /proc/self/mountinfo")
    b = with_volume(bundle(), shared_dir, "rslave", "rslave", ["sh", "-c", script])
    proc = runtime.popen("run", "-b", b.path, b.id)
    try:
        end = time.monotonic() + 20
        while not os.path.exists(shared_dir + "/ready") and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert os.path.exists(shared_dir + "/ready"), proc.communicate(timeout=5)
        assert mount_at(shared_dir + "/own") is None  # the container's mount did not come back
        os.makedirs(shared_dir + "/fromhost")
        subprocess.run(["mount", "-t", "tmpfs", "from-host", shared_dir + "/fromhost"], check=True)
        open(shared_dir + "/go", "w").close()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = {ln.split()[4]: ln.split() for ln in out.splitlines()}
    assert "/vol/fromhost" in lines and "from-host" in lines["/vol/fromhost"], out
    assert "/vol/own" in lines, out


@pytest.mark.parametrize("prop", ["rprivate", "rslave", "runbindable", "private", "slave", "shared", "unbindable"])
def test_every_rootfs_propagation_is_accepted(runtime, bundle, prop):
    """The spec's four values and runc's recursive forms; the container's / gets what was asked for: shared
    and unbindable are applied to the new / after pivot_root, as runc ≥ 1.2 does."""
    if runtime.name == "runc" and prop.lstrip("r") in ("shared", "unbindable") and runc_version() < (1, 2):
        pytest.skip("runc < 1.2 does not apply shared/unbindable to the new / (nor make the rootfs's mount bindable)")
    b = bundle(["awk", "$5 == \"/\"", "/proc/self/mountinfo"])
    b.spec["linux"]["rootfsPropagation"] = prop
    if prop == "runbindable":  # nothing under / can be bound then: no cgroup dirs, readonly or masked paths
        b.spec["mounts"] = [m for m in b.spec["mounts"] if m["type"] != "cgroup"]
        b.spec["linux"]["readonlyPaths"] = b.spec["linux"]["maskedPaths"] = []
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    fields = p.out.split()
    opt = fields[6:fields.index("-")]
    if prop.lstrip("r") == "shared":
        assert any(f.startswith("shared:") for f in opt), p.out
    elif prop.lstrip("r") == "unbindable":
        assert "unbindable" in opt, p.out
    else:  # private, or a slave of nothing (the host's / is private here; a slave of it elsewhere)
        assert not any(f.startswith("shared:") for f in opt), p.out


def test_private_rootfs_propagation_is_refused_without_pivot(rt, bundle):
    """runc: "rootfsPropagation of [r]private is not safe without pivot_root"."""
    b = bundle(["true"])
    b.spec["linux"]["rootfsPropagation"] = "rprivate"
    b.write()
    p = rt("run", "--no-pivot", "-b", b.path, b.id)
    assert p.returncode == 1 and "rootfsPropagation" in p.err and "pivot" in p.err, p.err
    assert p.err.count("\n") == 1 and "Traceback" not in p.err


def test_unknown_rootfs_propagation(rt, bundle):
    b = bundle(["true"])
    b.spec["linux"]["rootfsPropagation"] = "rsharedd"
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 1 and 'linux.rootfsPropagation: invalid value "rsharedd": must be one of' in p.err, p.err
    assert not os.listdir(rt.root) if os.path.isdir(rt.root) else True


def mount_options_of(pid: int, path: str) -> list[str]:
    found = [m for m in mountinfo(pid) if m[4] == path]
    assert found, f"nothing mounted at {path} in {pid}"
    return found[-1][5].split(",")


def test_read_only_dev(runtime, bundle):
    """A /dev tmpfs with "ro": its nodes, links, /dev/pts, shm and mqueue are made first, then it turns
    read-only (it used to fail at "/dev/pts: Read-only file system")."""
    b = bundle(["sh", "-c", "{ ls -d /dev/null /dev/pts/ptmx /dev/ptmx /dev/shm /dev/mqueue && echo nodes;"
                " touch /dev/x || echo dev-ro; } >/dev/shm/out 2>&1; touch /dev/shm/done; sleep 1000"])
    dev = next(m for m in b.spec["mounts"] if m["destination"] == "/dev")
    dev["options"].append("ro")
    b.write()
    p = runtime("run", "-d", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    pid = runtime.pid(b.id)
    end = time.monotonic() + 10
    while not os.path.exists(f"/proc/{pid}/root/dev/shm/done") and time.monotonic() < end:
        time.sleep(0.02)
    with open(f"/proc/{pid}/root/dev/shm/out") as f:
        out = f.read().split("\n")
    assert "ro" in mount_options_of(pid, "/dev")  # from outside: the init's mount table
    assert "rw" in mount_options_of(pid, "/dev/pts") and "rw" in mount_options_of(pid, "/dev/shm")
    assert out[5] == "nodes" and "Read-only file system" in out[6] and out[7] == "dev-ro", out
    runtime("delete", "-f", b.id)


def test_mounts_under_a_read_only_tmpfs(runtime, bundle, tmp_path):
    """A read-only tmpfs with a bind mount and a copied-up directory under it: it is made read-only last."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("from host\n")
    b = bundle(["sh", "-c", "cat /data/sub/f; touch /data/x 2>/dev/null || echo data-ro"])
    b.spec["mounts"] += [{"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=755"]},
                         {"destination": "/data/sub", "type": "bind", "source": str(src), "options": ["rbind"]}]
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert p.out.split("\n")[:2] == ["from host", "data-ro"], p.out


def test_bound_dev_gets_no_nodes(runtime, bundle, tmp_path):
    """A bind mount on /dev brings its own nodes: the runtime creates none in it (it may be the host's)."""
    devdir = tmp_path / "devdir"
    devdir.mkdir()
    (devdir / "marker").write_text("")
    os.mknod(devdir / "null", 0o20666, os.makedev(1, 3))  # masked files are bound from the container's own
    b = bundle(["ls", "/dev"])
    b.spec["mounts"] = [m for m in b.spec["mounts"] if not m["destination"].startswith("/dev")]
    b.spec["mounts"].append({"destination": "/dev", "type": "bind", "source": str(devdir), "options": ["rbind"]})
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert p.out.split() == ["marker", "null"] and sorted(os.listdir(devdir)) == ["marker", "null"]


# ---------------------------------------------------------------- user namespaces, id-mapped mounts

HOST_ROOT = 100000  # what the containers' user namespaces map their root to


def in_userns(b, host: int = HOST_ROOT) -> None:  # noqa: ANN001
    """A user namespace mapping root to an unprivileged host uid: the rootfs becomes its own, pytest's 0700
    dirs searchable (the bind sources below them are not made so)."""
    b.spec["linux"]["namespaces"].append({"type": "user"})
    b.spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": host, "size": 65536}]
    b.spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": host, "size": 65536}]
    os.chown(b.rootfs, host, host)
    d = b.path
    while d != "/":
        os.chmod(d, os.stat(d).st_mode | 0o055)
        d = os.path.dirname(d)


@pytest.fixture
def hidden_source(tmp_path):  # noqa: ANN001, ANN201
    """<tmp>/secret (0700, root's) / data / f: out of reach of the mapped root."""
    d = tmp_path / "secret" / "data"
    d.mkdir(parents=True)
    (d / "f").write_text("behind a 0700 dir\n")
    os.chmod(d, 0o755)
    os.chmod(d / "f", 0o644)
    os.chmod(tmp_path / "secret", 0o700)
    return str(d)


@pytest.mark.parametrize("option", ["bind", "rbind"])
def test_userns_bind_source_out_of_reach(runtime, bundle, hidden_source, option):
    """The mapped root may not search <tmp>/secret: the runtime opens the source first (open_tree) and the
    init attaches that copy (it used to fail with EACCES), as runc."""
    b = bundle(["sh", "-c", "cat /data/f; awk '$5 == \"/data\" {print $4}' /proc/self/mountinfo"])
    in_userns(b)
    b.spec["mounts"].append({"destination": "/data", "type": "bind", "source": hidden_source, "options": [option]})
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    out = p.out.split("\n")
    # mountinfo's root: the source's path inside its filesystem (all of it when that is /'s)
    assert out[0] == "behind a 0700 dir" and hidden_source.endswith(out[1]) and out[1].endswith("/secret/data"), out


def test_userns_reachable_bind_keeps_its_locks(rt, bundle, tmp_path):
    """A source the mapped root can reach is bound by the init itself, from the copy of the host's mount its
    namespace got: the host's read-only flag stays locked (the container's root can't remount it rw)."""
    src = tmp_path / "open"
    src.mkdir()
    os.chmod(src, 0o755)
    subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(src)], check=True)
    try:
        b = bundle(["sh", "-c", "mount -o remount,bind,rw /data 2>&1 || echo still-ro"])
        in_userns(b)
        b.spec["mounts"].append({"destination": "/data", "type": "bind", "source": str(src), "options": ["bind"]})
        for k in ("bounding", "effective", "permitted"):
            b.spec["process"]["capabilities"][k] = SYS_ADMIN
        b.write()
        p = rt("run", "-b", b.path, b.id)
        assert p.returncode == 0 and "still-ro" in p.out, (p.out, p.err)
    finally:
        subprocess.run(["umount", "-l", str(src)], check=False)


def test_userns_bind_source_the_runtime_cannot_open_either(rt, bundle, hidden_source):
    """The runtime opens a requested source inside the init's root without magic links: a source reached
    through /proc/self/root fails create with one line naming the mount, and leaves nothing behind."""
    b = bundle(["true"])
    in_userns(b)
    src = "/proc/self/root" + hidden_source
    b.spec["mounts"].append({"destination": "/data", "type": "bind", "source": src, "options": ["rbind"]})
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 1, p.err
    assert p.err.startswith(f"ocirun: mounts[7].source: {src}: ") and p.err.count("\n") == 1, p.err
    assert not [n for n in os.listdir(rt.root) if not n.startswith(".")]


def test_userns_out_of_reach_source_keeps_its_locks(rt, bundle, hidden_source):
    """Bound from the fd the runtime opened in the init's namespace: still that namespace's (locked) copy of
    the host's read-only mount, so the container's root can't make it writable."""
    os.chmod(hidden_source, 0o777)  # only the mount's read-only flag stands in the way of a write
    subprocess.run(["mount", "--bind", "-o", "ro", hidden_source, hidden_source], check=True)
    try:
        b = bundle(["sh", "-c", "cat /data/f; mount -o remount,bind,rw /data 2>/dev/null || echo still-ro;"
                    " touch /data/x 2>/dev/null || echo not-writable"])
        in_userns(b)
        b.spec["mounts"].append({"destination": "/data", "type": "bind", "source": hidden_source,
                                 "options": ["bind"]})
        for k in ("bounding", "effective", "permitted"):
            b.spec["process"]["capabilities"][k] = SYS_ADMIN
        b.write()
        p = rt("run", "-b", b.path, b.id)
        assert p.returncode == 0, p.err
        assert p.out.split("\n")[:3] == ["behind a 0700 dir", "still-ro", "not-writable"], p.out
    finally:
        subprocess.run(["umount", "-l", hidden_source], check=False)


@pytest.fixture
def owned_tree(tmp_path):  # noqa: ANN001, ANN201
    """<tmp>/idsrc with files owned by host ids 0:0, 1:1 and 1000:1001, and a submount <tmp>/idsrc/sub (a
    file 0:0) bound there from elsewhere."""
    d = tmp_path / "idsrc"
    (d / "sub").mkdir(parents=True)
    for name, (u, g) in {"root.txt": (0, 0), "one.txt": (1, 1), "user.txt": (1000, 1001)}.items():
        (d / name).write_text(name)
        os.chown(d / name, u, g)
    other = tmp_path / "other"
    other.mkdir()
    (other / "inner.txt").write_text("inner")
    subprocess.run(["mount", "--bind", str(other), str(d / "sub")], check=True)
    for p in (tmp_path, d, other):
        os.chmod(p, 0o755)
    yield str(d)
    subprocess.run(["umount", "-l", str(d / "sub")], check=False)


def needs_idmap(runtime, source: str) -> None:  # noqa: ANN001
    if runtime.name == "runc" and runc_version() < (1, 2):
        pytest.skip("runc < 1.2 has no id-mapped mounts")
    from ocirun._native import lib

    fd = lib.ocirun_open_tree(source.encode(), 0)
    ns = lib.ocirun_userns_fd(b"0 100000 1\n", b"0 100000 1\n")
    r = lib.ocirun_idmap_mount(fd, ns, 0) if fd >= 0 and ns >= 0 else min(fd, ns)
    for x in (fd, ns):
        if x >= 0:
            os.close(x)
    if r < 0:
        pytest.skip(f"this kernel or the test directory's filesystem has no id-mapped mounts: {os.strerror(-r)}")


STAT = "for f in /m/root.txt /m/one.txt /m/user.txt /m/sub/inner.txt; do stat -c '%n=%u:%g' $f; done"


def idmap_mount(source: str, options: list[str], uid: list | None = None, gid: list | None = None) -> dict:
    m = {"destination": "/m", "type": "bind", "source": source, "options": options}
    if uid is not None:
        m["uidMappings"] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in uid]
    if gid is not None:
        m["gidMappings"] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in gid]
    return m


def stat_out(out: str) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in out.split() if ln.startswith("/m/"))


def test_idmapped_mount_without_userns(runtime, bundle, owned_tree):
    """Files owned by host ids 0, 1, 1000 appear as hostID + (id - containerID): 100000, 100001, 101000."""
    needs_idmap(runtime, owned_tree)
    b = bundle(["sh", "-c", f"({STAT}) > /dev/shm/out; touch /dev/shm/done; sleep 1000"])
    b.spec["mounts"].append(idmap_mount(owned_tree, ["rbind"], [(0, 100000, 65536)], [(0, 200000, 65536)]))
    b.write()
    p = runtime("run", "-d", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    pid = runtime.pid(b.id)
    end = time.monotonic() + 10
    while not os.path.exists(f"/proc/{pid}/root/dev/shm/done") and time.monotonic() < end:
        time.sleep(0.02)
    with open(f"/proc/{pid}/root/dev/shm/out") as f:
        st = stat_out(f.read())
    assert st["/m/root.txt"] == "100000:200000" and st["/m/one.txt"] == "100001:200001"
    assert st["/m/user.txt"] == "101000:201001"
    assert st["/m/sub/inner.txt"] == "0:0"  # idmap (not ridmap): the submount keeps its ids
    # From outside: the init's mount table has /m id-mapped, the submount not; the host's files are unchanged.
    assert "idmapped" in mount_options_of(pid, "/m") and "idmapped" not in mount_options_of(pid, "/m/sub")
    assert os.stat(os.path.join(owned_tree, "root.txt")).st_uid == 0
    runtime("delete", "-f", b.id)


def test_idmapped_mount_in_userns(runtime, bundle, owned_tree):
    """With the container's own mapping (0 → 100000): the container sees the host's 0 and 1000 as 0 and 1000,
    and what it writes lands on disk as itself (0:0 for its root)."""
    needs_idmap(runtime, owned_tree)
    b = bundle(["sh", "-c", STAT + "; touch /m/new && stat -c '/m/new=%u:%g' /m/new"])
    in_userns(b)
    b.spec["mounts"].append(idmap_mount(owned_tree, ["rbind"], [(0, HOST_ROOT, 65536)], [(0, HOST_ROOT, 65536)]))
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    st = stat_out(p.out)
    assert st["/m/root.txt"] == "0:0" and st["/m/user.txt"] == "1000:1001" and st["/m/new"] == "0:0", p.out
    assert st["/m/sub/inner.txt"] == "65534:65534"  # not mapped: host root is nobody in the userns
    new = os.stat(os.path.join(owned_tree, "new"))
    assert (new.st_uid, new.st_gid) == (0, 0)


@pytest.mark.parametrize("option, inner", [("idmap", "65534:65534"), ("ridmap", "0:0")])
def test_idmap_option_takes_the_containers_mapping(runtime, bundle, owned_tree, option, inner):
    """idmap/ridmap with no mapping of their own map through the container's user namespace; ridmap maps
    the submounts of an rbind too."""
    needs_idmap(runtime, owned_tree)
    b = bundle(["sh", "-c", STAT])
    in_userns(b)
    b.spec["mounts"].append(idmap_mount(owned_tree, ["rbind", option]))
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    st = stat_out(p.out)
    assert st["/m/root.txt"] == "0:0" and st["/m/one.txt"] == "1:1" and st["/m/sub/inner.txt"] == inner, p.out


@pytest.mark.parametrize("mount, why", [
    ({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
     "mounts[7]: id-mapped mounts are only supported for bind mounts"),
    ({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["bind"],
      "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
     "mounts[7]: id-mapped mounts must have both uidMappings and gidMappings"),
    ({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]},
     "mounts[7]: id-mapped mounts must have both uidMappings and gidMappings (or a user namespace)"),
    ({"destination": "/m", "type": "bind", "source": "/proc", "options": ["bind"],
      "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
      "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
     "mounts[7]: id-mapping /proc: invalid argument (the filesystem may not support id-mapped mounts)"),
    ({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["bind"],
      "uidMappings": [{"containerID": 0, "hostID": 4294967295, "size": 2}],
      "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
     "mounts[7].uidMappings: a user namespace for the id mapping: invalid argument"),
])
def test_idmapped_mount_errors(rt, bundle, mount, why):
    b = bundle(["true"])
    b.spec["mounts"].append(mount)
    b.write()
    p = rt("run", "-b", b.path, b.id)
    assert p.returncode == 1 and p.err in (f"ocirun: config.json: {why}\n", f"ocirun: {why}\n"), p.err
    assert not [n for n in os.listdir(rt.root) if not n.startswith(".")] if os.path.isdir(rt.root) else True


# ---------------------------------------------------------------- --no-pivot

ATTACK = "mount -t proc none /proc && echo fresh-proc-mounted"


@pytest.mark.parametrize("no_pivot", [False, True])
def test_no_pivot_does_not_expose_a_bare_proc(runtime, bundle, no_pivot):
    """unshare -mrpf (new user, mount and pid namespaces) then a fresh procfs: the kernel allows it only
    when a full, unmasked proc mount is visible in the mount namespace. With --no-pivot the host's /proc
    is still there behind the chroot unless the runtime takes it away (runc's msMoveRoot does)."""
    b = bundle(["unshare", "-mrpf", "sh", "-c", ATTACK])
    for k in ("bounding", "permitted", "effective"):
        b.spec["process"]["capabilities"][k].append("CAP_SETFCAP")  # unshare -r maps root
    b.write()
    p = runtime("run", *(["--no-pivot"] if no_pivot else []), "-b", b.path, b.id)
    assert "fresh-proc-mounted" not in p.out, (p.out, p.err)
    assert p.returncode != 0 and "permission denied" in (p.out + p.err).lower(), (p.out, p.err)


def test_no_pivot_container_still_works(runtime, bundle):
    """With the host's proc and sysfs detached before the move, the container's own /proc and /sys serve."""
    b = bundle(["sh", "-c", "cat /proc/self/stat >/dev/null && ls /sys/kernel >/dev/null && echo ok;"
                " awk '$9 == \"proc\" || $9 == \"sysfs\" {print $5}' /proc/self/mountinfo"])
    p = runtime("run", "--no-pivot", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    out = p.out.split()
    assert out[0] == "ok" and "/proc" in out and "/sys" in out, p.out
