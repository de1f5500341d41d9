"""What the lifecycle commands import: every module costs start-up time on each call (containerd and conmon
run one process per command), so the hot path keeps off the slow ones. Checked on real commands, through the
launcher's own start code, with `python -X importtime`."""

import os
import subprocess
import sys
import tempfile

import pytest
from ocitest import ROOT, ocirun_cmd

# os: 1.2-2 ms (it builds _collections_abc's ABCs; ocirun.fspath + posix instead); json/re/enum/typing...
# several ms each; tracer, seccomp compilation and jsonschema only when asked for.
SLOW = {"os", "_collections_abc", "json", "re", "enum", "typing", "dataclasses", "argparse", "subprocess",
        "contextlib", "collections", "functools", "threading", "struct", "ctypes", "pyseccomp", "jsonschema",
        "ocirun.tracer", "ocirun.validate", "ocirun.specgen", "ocirun.hooks", "ocirun.tty", "ocirun.seccomp"}


def _imports(root: str, *args: str) -> set[str]:
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import _cffi_backend
    import install_launcher as il

    ocirun_cmd()  # installs this checkout's launcher, which writes the archive (its extension module paths too)
    code = il.start_code([ROOT, os.path.dirname(_cffi_backend.__file__)], il.archive_path())
    code += "from ocirun.cli import main\nmain()"
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: a created init keeps stderr open
        p = subprocess.run([sys.executable, "-ISXfrozen_modules=on", "-X", "importtime", "-c", code, "--root", root,
                            *args], stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        text = err.read()
    assert p.returncode == 0, text
    lines = text.splitlines()
    return {ln.rsplit("|", 1)[1].strip() for ln in lines if ln.startswith("import time:") and "|" in ln} - {
        "imported package"}


def test_lifecycle_commands_import_nothing_slow(rt, bundle) -> None:  # noqa: ANN001
    b = bundle(["sleep", "1000"])
    seen: dict[str, set[str]] = {}
    for cmd in (["create", "-b", b.path, b.id], ["state", b.id], ["start", b.id], ["list"], ["exec", b.id, "true"],
                ["kill", b.id, "KILL"]):
        seen[cmd[0]] = _imports(rt.root, *cmd)
    subprocess.run(["sleep", "0.2"])
    seen["delete"] = _imports(rt.root, "delete", "--force", b.id)
    r = bundle(["true"])
    seen["run"] = _imports(rt.root, "run", "-b", r.path, r.id)
    assert "ocirun.create" in seen["create"] and "ocirun._native" in seen["run"]  # the probe sees imports
    slow = {cmd: sorted(mods & SLOW) for cmd, mods in seen.items() if mods & SLOW}
    assert not slow, slow
    # The C helper (and _cffi_backend) is for the commands that start processes: the plan and the sync
    # protocol read their values from it (ocirun/_build_c.py), the others must not come to need it.
    native = {cmd for cmd, mods in seen.items() if {"ocirun._native", "_cffi_backend"} & mods}
    assert native == {"create", "run", "exec"}, native


@pytest.mark.parametrize("module", ["ocirun.cli", "ocirun.commands", "ocirun.create", "ocirun.run",
                                    "ocirun.lifecycle", "ocirun.execute", "ocirun.cgroups.v1", "ocirun.cgroups.v2"])
def test_hot_modules_do_not_import_os(module: str) -> None:
    import _cffi_backend  # (where it is: the launcher puts that directory on the path, -S does not)

    site = os.path.dirname(_cffi_backend.__file__)
    code = (f"import sys; sys.path.append({site!r}); import {module}; "
            f"print(sorted(m for m in {sorted(SLOW)!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
