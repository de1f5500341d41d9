"""`make install` is self-contained: the package, the C helper and the module archive live under PREFIX, so the
runtime keeps working when the checkout it was built from is gone; `--uninstall` removes all of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from ocitest import ROOT

from ocirun.specgen import default_spec


def _build_tree_copy(dest: str) -> None:
    """What an install needs from a built checkout: the package (with its built helper) and tools/."""
    shutil.copytree(os.path.join(ROOT, "ocirun"), os.path.join(dest, "ocirun"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "tools"), os.path.join(dest, "tools"),
                    ignore=shutil.ignore_patterns("__pycache__"))


def test_install_survives_the_checkout_and_uninstalls(tmp_path, rootfs_template):
    build, prefix = str(tmp_path / "build"), str(tmp_path / "prefix")
    _build_tree_copy(build)
    installer = os.path.join(build, "tools", "install_launcher.py")
    p = subprocess.run([sys.executable, installer, "--prefix", prefix], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    shutil.rmtree(build)  # nothing of the build tree may be needed from here on

    ocirun = os.path.join(prefix, "bin", "ocirun")
    lib = os.path.join(prefix, "lib", "ocirun", "ocirun")
    assert any(n.startswith("_native") and n.endswith(".so") for n in os.listdir(lib))
    assert os.listdir(os.path.join(lib, "__pycache__")), "no module archive or bytecode installed"
    assert os.path.isfile(os.path.join(prefix, "share", "man", "man8", "ocirun.8"))
    with open(ocirun, "rb") as f:
        assert build.encode() not in f.read()

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copytree(rootfs_template, bundle / "rootfs", symlinks=True)
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh", "-c", "echo installed-ok"]
    import json

    (bundle / "config.json").write_text(json.dumps(spec))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # no PYTHONPATH: only what the install holds
    r = subprocess.run([ocirun, "--root", str(tmp_path / "state"), "run", "--bundle", str(bundle),
                        "inst" + os.urandom(4).hex()], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and r.stdout == "installed-ok\n", r.stderr

    u = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "install_launcher.py"), "--uninstall",
                        "--prefix", prefix], capture_output=True, text=True, timeout=60)
    assert u.returncode == 0, u.stderr
    left = [os.path.join(d, f) for d, _dirs, files in os.walk(prefix) for f in files]
    assert left == [] and not os.path.exists(os.path.dirname(lib))
