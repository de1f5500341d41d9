"""Shared test helpers and fixtures: a private --root, busybox bundles, and a check that nothing is left behind.

Imported by name (`from ocitest import …`) so that several conftest.py files can share it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bundles"))

from mkbundle import make_rootfs  # noqa: E402

from ocirun.specgen import default_spec  # noqa: E402

_LAUNCHER: list[str] = []
_LAUNCHER_KIND: list[str] = []


def ocirun_cmd() -> list[str]:
    """A launcher for this checkout (the same fast one `make install` writes), so the tests exercise this
    tree even when /usr/local/bin/ocirun points at another."""
    if not _LAUNCHER:
        import tempfile

        sys.path.insert(0, os.path.join(ROOT, "tools"))
        from install_launcher import main as install

        dest = os.path.join(tempfile.mkdtemp(prefix="ocirun-launcher-"), "ocirun")
        _LAUNCHER_KIND.append(install(dest))
        _LAUNCHER.append(dest)
    return list(_LAUNCHER)


def launcher_kind() -> str:
    """How ocirun_cmd()'s launcher was built: "embedded interpreter", "static launcher", "launcher" or "#! script"."""
    ocirun_cmd()
    return _LAUNCHER_KIND[0].split("(", 1)[1].split(";", 1)[0]


class Runtime:
    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = False, input: bytes | None = None, timeout: float = 30,
                 **kw: object) -> subprocess.CompletedProcess:
        import tempfile

        env = dict(os.environ, PYTHONPATH=ROOT)
        # Files, not pipes: a created container's init inherits stdio and would hold a pipe open forever.
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
            p = subprocess.run([*ocirun_cmd(), "--root", self.root, *args], stdout=fo, stderr=fe,
                               input=input, timeout=timeout, env=env, **kw)
            fo.seek(0)
            fe.seek(0)
            p.stdout, p.stderr = fo.read(), fe.read()
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"ocirun {' '.join(args)} failed ({p.returncode}): {p.err}")
        return p

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid, check=True).out)

    def internal(self, cid: str) -> dict:
        with open(os.path.join(self.root, cid, "state.json")) as f:
            return json.load(f)


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = str(tmp_path_factory.mktemp("rootfs") / "rootfs")
    make_rootfs(d)
    return d


@pytest.fixture
def rt(tmp_path) -> Runtime:  # noqa: ANN001
    root = str(tmp_path / "root")
    r = Runtime(root)
    yield r
    # Whatever a test left, remove it, then fail the test if anything had been left.
    leftovers = [n for n in (os.listdir(root) if os.path.isdir(root) else []) if not n.startswith(".")]
    for cid in leftovers:
        r("delete", "--force", cid)
    assert not leftovers, f"containers left behind: {leftovers}"


class Bundle:
    def __init__(self, path: str, spec: dict) -> None:
        self.path = path
        self.spec = spec
        self.id = "t" + uuid.uuid4().hex[:10]
        self.cgroup = f"/ocirun-test/{self.id}"
        spec["linux"]["cgroupsPath"] = self.cgroup

    @property
    def rootfs(self) -> str:
        return os.path.join(self.path, "rootfs")

    def write(self) -> Bundle:
        with open(os.path.join(self.path, "config.json"), "w") as f:
            json.dump(self.spec, f, indent=1)
        return self


@pytest.fixture
def bundle(tmp_path, rootfs_template: str):  # noqa: ANN001, ANN201
    """A factory: bundle(args=[...], **process overrides) → Bundle with its own rootfs copy."""
    made: list[Bundle] = []

    def make(args: list[str] | None = None, terminal: bool = False, readonly: bool = True) -> Bundle:
        path = str(tmp_path / f"bundle{len(made)}")
        os.makedirs(path)
        subprocess.run(["cp", "-a", rootfs_template, os.path.join(path, "rootfs")], check=True)
        spec = default_spec()
        spec["process"]["terminal"] = terminal
        spec["process"]["args"] = args or ["sleep", "1000"]
        spec["root"]["readonly"] = readonly
        b = Bundle(path, spec).write()
        made.append(b)
        return b

    yield make
    for b in made:
        assert not _mounted_under(b.path), f"mounts left under {b.path}"
        assert not os.path.exists(f"/sys/fs/cgroup{b.cgroup}"), f"cgroup left: {b.cgroup}"
        for ctrl in os.listdir("/sys/fs/cgroup"):
            assert not os.path.exists(f"/sys/fs/cgroup/{ctrl}{b.cgroup}"), f"cgroup left: {ctrl}{b.cgroup}"


def _mounted_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(path)]


def ns_inode(pid: int | str, ns: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{ns}")


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)


def wait_stopped(rt: Runtime, cid: str, timeout: float = 10) -> None:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if rt.state(cid)["status"] == "stopped":
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} did not stop")
