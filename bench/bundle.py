"""Build a minimal busybox OCI bundle for benchmarking runtimes.

The config is `runc spec`'s output (ocirun.specgen, with runc's hostname) adapted: no terminal and the given
args. It does not depend on runc being installed and is identical for every runtime under test (ociVersion
1.1.0: crun 1.8.1 refuses anything newer).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ocirun.specgen import default_spec  # noqa: E402  (runc's `spec` output, the same for every runtime)

DEFAULT_OCI_VERSION = "1.1.0"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

# Applets linked into rootfs/bin; anything else can still be run as `/bin/busybox <applet>`.
APPLETS = ("sh", "true", "false", "sleep", "cat", "echo", "ls", "ps", "id", "env", "mount", "hostname")

def find_busybox() -> str:
    """Return a statically linked busybox: a dynamic one would not run inside the bare rootfs."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path) and _is_static(path):
            return path
    raise FileNotFoundError("no static busybox found (apt-get install busybox-static)")


def _is_static(path: str) -> bool:
    """An ELF without a PT_INTERP program header is static; parse the header rather than depend on file(1)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only, which is all we run on
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(
        int.from_bytes(table[i * phentsize : i * phentsize + 4], "little") != 3  # PT_INTERP
        for i in range(phnum)
    )


def make_config(
    args: list[str], oci_version: str = DEFAULT_OCI_VERSION, memory_limit: int | None = None
) -> dict[str, Any]:
    """`runc spec` adapted for unattended runs: no terminal, given args, optional memory limit."""
    config = default_spec()
    config["hostname"] = "runc"
    config["ociVersion"] = oci_version
    config["process"]["terminal"] = False
    config["process"]["args"] = list(args)
    if memory_limit is not None:
        config["linux"]["resources"]["memory"] = {"limit": int(memory_limit)}
    return config


def write_config(bundle: str, config: dict[str, Any]) -> None:
    """Write config.json atomically so a runtime never reads a half-written file."""
    tmp = os.path.join(bundle, ".config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(config, f, indent=1)
    os.replace(tmp, os.path.join(bundle, "config.json"))


def make_rootfs(rootfs: str, busybox: str | None = None) -> None:
    """Copy a static busybox into rootfs/bin with applet symlinks, plus the mount points the config uses."""
    busybox = busybox or find_busybox()
    bindir = os.path.join(rootfs, "bin")
    os.makedirs(bindir, exist_ok=True)
    shutil.copy2(busybox, os.path.join(bindir, "busybox"))
    available = _applets(busybox)
    for applet in APPLETS:
        if available and applet not in available:
            continue
        link = os.path.join(bindir, applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)


def _applets(busybox: str) -> set[str]:
    """`busybox --list`, or an empty set (= link everything) if this build cannot list."""
    try:
        out = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    return set(out.split())


def make_bundle(
    dir: str,
    args: list[str],
    oci_version: str = DEFAULT_OCI_VERSION,
    memory_limit: int | None = None,
    busybox: str | None = None,
) -> str:
    """Create (or refresh the config of) a busybox bundle in `dir` and return its path."""
    os.makedirs(dir, exist_ok=True)
    rootfs = os.path.join(dir, "rootfs")
    if not os.path.exists(os.path.join(rootfs, "bin", "busybox")):
        make_rootfs(rootfs, busybox)
    write_config(dir, make_config(args, oci_version, memory_limit))
    return dir


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 3:
        sys.exit("usage: bundle.py DIR ARG...")
    print(make_bundle(sys.argv[1], sys.argv[2:]))
