"""Pure logic of ocirun.cgroups: path cleaning/resolution, mountinfo parsing, systemd refusal, import cost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ocirun.cgroups import detect_mode, from_state, open_manager, paths
from ocirun.errors import OciError

MOUNTINFO_HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 35 0:32 / /mnt/again rw,relatime - cgroup cgroup rw,memory
"""

PROC_CGROUP = """\
9:name=systemd:/user.slice
4:memory:/jobs/42
1:cpu,cpuacct:/
0::/user.slice/session-1.scope
"""


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("/a/b", "/a/b"),
        ("/a/../../b", "/b"),
        ("//a//./b/", "/a/b"),
        ("a/b", "a/b"),
        ("../../etc", "etc"),
        ("./x/../y", "y"),
        ("", ""),
    ],
)
def test_clean_path_never_climbs(raw: str, clean: str) -> None:
    assert paths.clean_path(raw) == clean


def test_resolve_inner_defaults_to_relative_id_like_runc() -> None:
    assert paths.resolve_inner(None, "c1") == "c1"
    assert paths.resolve_inner("", "c1") == "c1"
    assert paths.resolve_inner("/x/../y/c1", "c1") == "/y/c1"


@pytest.mark.parametrize("bad", ["/", "/..", "../"])
def test_resolve_inner_refuses_root(bad: str) -> None:
    with pytest.raises(OciError) as e:
        paths.resolve_inner(bad, "c1")
    assert e.value.what == "cgroupsPath"


def test_resolve_inner_refuses_bad_id() -> None:
    with pytest.raises(OciError):
        paths.resolve_inner(None, "a/b")


def test_cgroup_mounts_parses_comounted_named_and_v2() -> None:
    v1, v2, v2root = paths.cgroup_mounts(MOUNTINFO_HYBRID)
    assert v1["cpu"] == ("/sys/fs/cgroup/cpu,cpuacct", "/")
    assert v1["cpuacct"] == ("/sys/fs/cgroup/cpu,cpuacct", "/")
    assert v1["memory"] == ("/sys/fs/cgroup/memory", "/")  # first mount wins over the bind mount
    assert v1["name=systemd"] == ("/sys/fs/cgroup/systemd", "/")
    assert "xattr" not in v1
    assert (v2, v2root) == ("/sys/fs/cgroup/unified", "/")


def test_own_cgroups() -> None:
    own = paths.own_cgroups(PROC_CGROUP)
    assert own == {
        "name=systemd": "/user.slice", "memory": "/jobs/42", "cpu": "/", "cpuacct": "/",
        "": "/user.slice/session-1.scope",
    }


def test_mounts_is_the_one_mountinfo_parser() -> None:
    """Fields unescaped as the kernel escapes them (an octal byte), optional fields skipped, broken lines too."""
    text = ("36 35 98:0 /a\\040b /mnt/x\\011y\\012z\\134w rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=x\n"
            "garbage\n\n37 36 0:1 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
            "38 36 0:2 / /lit\\9 rw - tmpfs t rw\n")
    assert paths.mounts(text) == [("/mnt/x\ty\nz\\w", "/a b", "ext3", "rw,errors=x"),
                                  ("/sys/fs/cgroup/cpu", "/", "cgroup", "rw,cpu"), ("/lit\\9", "/", "tmpfs", "rw")]
    assert paths.mounts("1 2 3:4 / /m rw - cgroup2") == []  # (no super options: not a whole line)


def test_own_cgroups_first_line_wins() -> None:
    """As the C launcher reads it (a controller never appears twice in the kernel's file)."""
    assert paths.own_cgroups("0::/a\n0::/b\n2:cpu:/c\n3:cpu,memory:/d\n") == {"": "/a", "cpu": "/c", "memory": "/d"}


def test_warm_target() -> None:
    v2 = "/sys/fs/cgroup/unified/user.slice/session-1.scope/cgroup.procs"
    assert paths.warm_target(MOUNTINFO_HYBRID, PROC_CGROUP) == v2
    no_v2 = PROC_CGROUP.replace("0::/user.slice/session-1.scope\n", "")
    assert paths.warm_target(MOUNTINFO_HYBRID, no_v2) == "/sys/fs/cgroup/cpu,cpuacct/cgroup.procs"  # first v1 mount
    assert paths.warm_target(MOUNTINFO_HYBRID.replace(" / /", " /x /"), PROC_CGROUP) == ""  # none at its root


def test_v1_dir_absolute_and_relative() -> None:
    own = paths.own_cgroups(PROC_CGROUP)
    assert paths.v1_dir("/a/b", "memory", "/sys/fs/cgroup/memory", "/", own) == "/sys/fs/cgroup/memory/a/b"
    # relative: under the caller's own cgroup of that hierarchy
    mem = "/sys/fs/cgroup/memory"
    assert paths.v1_dir("c1", "memory", mem, "/", own) == mem + "/jobs/42/c1"
    cpu = "/sys/fs/cgroup/cpu,cpuacct"
    assert paths.v1_dir("c1", "cpu", cpu, "/", own) == cpu + "/c1"
    # inside a cgroupns / bind mount of /jobs the mount root is stripped
    assert paths.v1_dir("c1", "memory", mem, "/jobs", own) == mem + "/42/c1"


def test_v2_dir_relative_goes_under_parent_of_own_cgroup() -> None:
    own = paths.own_cgroups(PROC_CGROUP)
    assert paths.v2_dir("/a", "/sys/fs/cgroup", "/", own) == "/sys/fs/cgroup/a"
    assert paths.v2_dir("c1", "/sys/fs/cgroup", "/", own) == "/sys/fs/cgroup/user.slice/c1"
    assert paths.v2_dir("c1", "/sys/fs/cgroup", "/", {"": "/"}) == "/sys/fs/cgroup/c1"


@pytest.mark.parametrize("path", ["system.slice:ocirun:c1", "machine.slice:x:y"])
def test_systemd_path_needs_systemd(path: str) -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is running here")
    with pytest.raises(OciError) as e:
        open_manager(path, "c1")
    assert e.value.what == "cgroupsPath"
    assert "systemd cgroup driver needs systemd running" in e.value.why


def test_systemd_flag_needs_systemd() -> None:
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is running here")
    with pytest.raises(OciError, match="needs systemd running"):
        open_manager("/plain/path", "c1", systemd=True)


def test_detect_mode_matches_the_mounts() -> None:
    v1, v2, _ = paths.cgroup_mounts()
    mode = detect_mode()
    if v2 == "/sys/fs/cgroup":
        assert mode == "v2"
    elif v2 == "/sys/fs/cgroup/unified":
        assert mode == "hybrid"
    else:
        assert mode == "v1" and v1


def test_state_round_trip_without_touching_the_fs() -> None:
    m = open_manager("/ocirun-never-created/x", "x")
    again = from_state(m.to_state())
    assert again.paths() == m.paths()
    assert again.to_state() == m.to_state()
    assert not any(os.path.exists(p) for p in m.paths().values())


def test_from_state_refuses_garbage() -> None:
    with pytest.raises(OciError):
        from_state({"mode": "v3"})
    with pytest.raises(OciError):
        from_state({"mode": "v1"})


def test_import_is_cheap() -> None:
    code = (
        "import sys; before = set(sys.modules); "
        "import ocirun.cgroups as c; m = c.open_manager('/x', 'x'); m.to_state(); "
        "new = set(sys.modules) - before; "
        "bad = sorted(n for n in ('json', 're', 'subprocess', 'typing', 'dataclasses') if n in new); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == ""


def test_mkdir_p_removes_what_it_made_when_a_level_fails():
    import os
    import uuid

    import pytest

    from ocirun.cgroups import fsutil
    from ocirun.errors import OciError

    root = "/sys/fs/cgroup/pids" if os.path.isdir("/sys/fs/cgroup/pids") else "/sys/fs/cgroup"
    top = f"ocirun-rollback-{uuid.uuid4().hex[:8]}"
    with pytest.raises(OciError):
        fsutil.mkdir_p(root, [top, "ok", ".."])
    assert not os.path.exists(f"{root}/{top}")
