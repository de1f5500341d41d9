"""Make a busybox OCI bundle: rootfs from the static busybox binary, config.json from `ocirun spec`'s default.

    python3 bundles/mkbundle.py DIR [--args 'sh -c ...'] [--terminal] [--rw]
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ocirun.specgen import default_spec  # noqa: E402

BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")


def make_rootfs(rootfs: str) -> None:
    """A rootfs with busybox and one symlink per applet; copies are cheap and reused across tests."""
    bb = next((p for p in BUSYBOX if os.path.exists(p)), None)
    if bb is None:
        raise SystemExit("busybox not found: apt-get install busybox-static")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "run"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(rootfs, "bin", "busybox"))
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        link = os.path.join(rootfs, "bin", a)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnobody:x:65534:\n")
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)


def make_bundle(bundle: str, args: list[str] | None = None, terminal: bool = False, readonly: bool = True,
                rootfs_from: str | None = None) -> dict:
    os.makedirs(bundle, exist_ok=True)
    rootfs = os.path.join(bundle, "rootfs")
    if rootfs_from:
        if not os.path.exists(rootfs):
            shutil.copytree(rootfs_from, rootfs, symlinks=True)
    else:
        make_rootfs(rootfs)
    spec = default_spec()
    spec["process"]["terminal"] = terminal
    spec["process"]["args"] = args or ["sh"]
    spec["root"]["readonly"] = readonly
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)
    return spec


if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv:
        raise SystemExit(__doc__)
    args = None
    if "--args" in argv:
        i = argv.index("--args")
        args = shlex.split(argv[i + 1])
        del argv[i : i + 2]
    terminal = "--terminal" in argv
    rw = "--rw" in argv
    argv = [a for a in argv if a not in ("--terminal", "--rw")]
    make_bundle(argv[0], args, terminal=terminal, readonly=not rw)
    print(f"bundle ready: {argv[0]}")
