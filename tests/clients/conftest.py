"""Real clients (podman + conmon, containerd + shim + ctr) driving ocirun, and runc beside it for comparison.

Everything runs on private state: podman gets its own storage, runroot, tmp dir, locks, events log and
containers.conf; containerd its own config, root, state and unix sockets (no TCP listener), and each runtime its
own --root under containerd. A small busybox image is built locally (no registry). A summary at the end of the
session shows each scenario under each runtime, so a difference between ocirun and runc is seen at a glance.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator

import pytest
from ocitest import make_rootfs, ocirun_cmd

from .clientlib import IMAGE, Ctr, Podman, runtime_list

RUNC = shutil.which("runc")
RUNTIMES = ["ocirun"] + (["runc"] if RUNC else [])

# (scenario, runtime) -> outcome, filled by pytest_runtest_makereport and printed by pytest_terminal_summary.
RESULTS: dict[tuple[str, str], str] = {}


def runtime_path(name: str) -> str:
    """The binary the clients exec: this checkout's launcher (clients need a path, not a module)."""
    path = ocirun_cmd()[0] if name == "ocirun" else RUNC
    if not path:
        pytest.skip(f"{name} is not installed (make install)")
    return path


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Every client scenario runs once per runtime: ocirun, and runc when installed."""
    return request.param


# ---------------------------------------------------------------- packages


_installed: dict[str, str | None] = {}


def ensure_packages(binaries: dict[str, str]) -> None:
    """Install the Debian packages of missing binaries ({binary: package}); skip with the reason when impossible."""
    missing = sorted({pkg for b, pkg in binaries.items() if not shutil.which(b)})
    if not missing:
        return
    key = " ".join(missing)
    if key not in _installed:
        _installed[key] = _apt_install(missing)
    if _installed[key] is not None:
        pytest.skip(f"cannot install {key}: {_installed[key]}")
    still = [b for b in binaries if not shutil.which(b)]
    if still:
        pytest.skip(f"installed {key} but {still} still missing")


def _apt_install(pkgs: list[str]) -> str | None:
    """apt-get install; returns None on success, else why not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root or no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *pkgs]
    try:
        if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                return (p.stderr.strip().splitlines() or ["apt-get failed"])[-1]
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None


# ---------------------------------------------------------------- image


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The busybox rootfs as an uncompressed layer tar: input to `podman import` and to the OCI layout."""
    d = tmp_path_factory.mktemp("clients-image")
    rootfs = str(d / "rootfs")
    make_rootfs(rootfs)
    tar = str(d / "rootfs.tar")
    with tarfile.open(tar, "w") as tf:
        for name in sorted(os.listdir(rootfs)):
            tf.add(os.path.join(rootfs, name), arcname=name)
    shutil.rmtree(rootfs)
    return tar


def write_oci_archive(layer_tar: str, out: str, name: str) -> None:
    """An OCI image layout in a tar, by hand: one uncompressed layer, a config, a manifest, an index."""
    import hashlib

    with tarfile.open(out, "w") as tf:

        def blob(data: bytes) -> tuple[str, int]:
            digest = hashlib.sha256(data).hexdigest()
            add(f"blobs/sha256/{digest}", data)
            return "sha256:" + digest, len(data)

        def add(path: str, data: bytes) -> None:
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        with open(layer_tar, "rb") as f:
            layer_digest, layer_size = blob(f.read())
        platform = {"architecture": _goarch(), "os": "linux"}
        config = {**platform, "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
                  "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}
        cfg_digest, cfg_size = blob(json.dumps(config).encode())
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest,
                               "size": cfg_size},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                                "size": layer_size}]}
        man_digest, man_size = blob(json.dumps(manifest).encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_size,
            "platform": platform,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}}]}
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())


def _goarch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)


# ---------------------------------------------------------------- shared helpers


def _unmount_under(path: str) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f if ln.split()[4].startswith(path + "/")]
    for mp in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


# ---------------------------------------------------------------- podman


def _podman_limits() -> tuple[int, int]:
    """The hard nofile/nproc podman's children get: without CAP_SYS_RESOURCE no runtime can raise a limit above
    them, and podman's default 1048576 fails. Podman 4.x caps its own RLIMIT_NPROC at 32768 early in main."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    cap = 32768
    return nofile, (cap if nproc == resource.RLIM_INFINITY else min(nproc, cap))


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: str) -> Iterator[Podman]:
    ensure_packages({"podman": "podman", "conmon": "conmon"})
    # Short and under /tmp: podman refuses a runroot longer than 50 characters (pytest's tmp paths grow).
    base = tempfile.mkdtemp(prefix="ocirun-podman-", dir="/tmp")
    for d in ("storage", "runroot", "tmp", "networks"):
        os.makedirs(f"{base}/{d}")
    nofile, nproc = _podman_limits()
    ocirun = ocirun_cmd()[0]
    with open(f"{base}/containers.conf", "w") as f:
        f.write(f"""[containers]
netns = "none"
log_driver = "k8s-file"
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[network]
network_config_dir = "{base}/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
lock_type = "file"
tmp_dir = "{base}/tmp"
static_dir = "{base}/storage/libpod"
volume_path = "{base}/storage/volumes"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "ocirun"]
# (podman 4.3's containers/common reads this key without the final "s" that its man page gives it)
runtime_supports_nocgroup = ["crun", "krun", "ocirun"]
runtime_supports_nocgroups = ["crun", "krun", "ocirun"]

[engine.runtimes]
ocirun = ["{ocirun}"]
""")
    with open(f"{base}/storage.conf", "w") as f:
        f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/storage"\nrunroot = "{base}/runroot"\n')
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": base,
           "CONTAINERS_CONF": f"{base}/containers.conf", "CONTAINERS_STORAGE_CONF": f"{base}/storage.conf",
           "CONTAINERS_REGISTRIES_CONF": f"{base}/registries.conf"}
    with open(f"{base}/registries.conf", "w") as f:
        f.write("unqualified-search-registries = []\n")
    pm = Podman(base, env)
    r = pm("import", "--change", "CMD=/bin/sh", "--change", "ENV=PATH=/bin", rootfs_tar, IMAGE, timeout=120)
    if r.returncode != 0:
        pytest.skip(f"podman import failed: {r.err.strip()}")
    yield pm
    pm("rm", "--all", "--force", "--time", "0", timeout=120)
    pm("rmi", "--all", "--force", timeout=120)
    _unmount_under(base)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def podman(podman_env: Podman, runtime: str) -> Iterator[Podman]:
    """podman bound to one runtime; afterwards every container is removed, and the runtime must have forgotten
    each one (its default root: podman passes no --root)."""
    podman_env.runtime_name = runtime
    podman_env.runtime = runtime_path(runtime)
    yield podman_env
    ids = podman_env("ps", "--all", "--quiet", "--no-trunc").out.split()
    if ids:
        podman_env("rm", "--force", "--time", "0", *ids, timeout=120)
    left = set(ids) & set(runtime_list(podman_env.runtime))
    podman_env.runtime = ""
    assert not left, f"{runtime} still knows containers podman removed: {left}"


# ---------------------------------------------------------------- containerd


def _containerd_config(base: str) -> str:
    """containerd on private root/state/sockets; CRI and other listeners off, so nothing binds TCP."""
    disabled = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
    return f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = {json.dumps(disabled)}

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[debug]
  address = "{base}/debug.sock"

[metrics]
  address = ""
"""


@pytest.fixture(scope="session")
def containerd_env(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: str) -> Iterator[Ctr]:
    ensure_packages({"containerd": "containerd", "ctr": "containerd", "containerd-shim-runc-v2": "containerd"})
    # A short base: unix socket paths are limited to 108 bytes.
    import tempfile

    base = tempfile.mkdtemp(prefix="ocirun-ctrd-", dir="/tmp")
    with open(f"{base}/config.toml", "w") as f:
        f.write(_containerd_config(base))
    log = open(f"{base}/containerd.log", "wb")  # noqa: SIM115
    daemon = subprocess.Popen(["containerd", "--config", f"{base}/config.toml"], stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    ctr = Ctr(base)
    try:
        end = time.monotonic() + 30
        while ctr("version").returncode != 0:
            if daemon.poll() is not None or time.monotonic() > end:
                with open(f"{base}/containerd.log") as f:
                    pytest.skip(f"containerd did not start: {f.read()[-500:]}")
            time.sleep(0.1)
        archive = f"{base}/image.tar"
        write_oci_archive(rootfs_tar, archive, IMAGE)
        ctr("images", "import", archive, timeout=120, check=True)
        yield ctr
    finally:
        for cid in ctr("containers", "ls", "--quiet").out.split():
            ctr("task", "delete", "--force", cid)
            ctr("containers", "delete", cid)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ctr(containerd_env: Ctr, runtime: str) -> Iterator[Ctr]:
    """ctr bound to one runtime with its own --runc-root; afterwards every task and container is deleted, and
    the runtime's root must be empty."""
    containerd_env.runtime = runtime_path(runtime)
    containerd_env.runtime_root = f"{containerd_env.base}/runtime-{runtime}"
    yield containerd_env
    for cid in containerd_env("containers", "ls", "--quiet").out.split():
        containerd_env("task", "delete", "--force", cid)
        containerd_env("containers", "delete", cid)
    left = runtime_list(containerd_env.runtime, containerd_env.runtime_root)
    assert not left, f"{runtime} root still holds {left}"


# ---------------------------------------------------------------- summary


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    if callspec is None or "runtime" not in callspec.params or item.get_closest_marker("clients") is None:
        return
    rt = callspec.params["runtime"]
    scenario = f"{item.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}::{item.originalname[5:]}"
    key = (scenario, rt)
    if rep.when == "call" or rep.outcome != "passed":
        if hasattr(rep, "wasxfail"):
            state = "xfail" if rep.skipped else "XPASS"
        else:
            state = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}[rep.outcome]
        if rep.when == "teardown" and rep.outcome == "failed":
            state = "FAIL(teardown)"
        if key not in RESULTS or rep.outcome != "passed":
            RESULTS[key] = state


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ANN001
    if not RESULTS:
        return
    scenarios = sorted({s for s, _ in RESULTS})
    width = max(len(s) for s in scenarios) + 2
    tr = terminalreporter
    tr.section("client scenarios: ocirun vs runc")
    tr.write_line("scenario".ljust(width) + "".join(r.ljust(16) for r in RUNTIMES))
    for s in scenarios:
        cells = [RESULTS.get((s, r), "-") for r in RUNTIMES]
        mark = "   <-- differs" if len(set(cells)) > 1 else ""
        tr.write_line(s.ljust(width) + "".join(c.ljust(16) for c in cells) + mark)
