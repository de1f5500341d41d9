"""Write the `ocirun` launcher: python -I -S with the project and its dependencies put on sys.path directly.

`site` costs ~6 ms on every call and pip's console-script wrapper more; the runtime is timed per command,
so the launcher skips both and names the paths it needs. `-X frozen_modules=on` (one shebang argument:
`-ISXfrozen_modules=on`) takes os, io, codecs... from the interpreter's frozen copies (~6 ms less on an
interpreter where it defaults off, as this pyenv build). The package's bytecode is compiled here, because
the launcher must never pay for compiling (and a read-only checkout could not cache it).

The launcher itself is a small C program (tools/launcher.c) that execs the interpreter with that start code
(`python -ISXfrozen_modules=on -c ...`): for create/run/exec it first forks a child that starts the first
cgroup attach's RCU grace period, so the wait overlaps the interpreter's start-up. Without a C compiler the
launcher is the equivalent `#!` script (the runtime then starts the grace period itself, in a thread).
"""

from __future__ import annotations

import os
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(dest: str) -> None:
    import _cffi_backend  # noqa: F401  (must be importable: it is what the C helper's module loads)

    site = os.path.dirname(_cffi_backend.__file__)
    paths = [ROOT, site]
    purelib = sysconfig.get_paths()["purelib"]
    if purelib not in paths:
        paths.append(purelib)
    import compileall

    compileall.compile_dir(os.path.join(ROOT, "ocirun"), quiet=1)
    code = f"import sys\nsys.path[0:0] = {paths!r}\nfrom ocirun.cli import main\nmain("
    tmp = dest + ".tmp"
    if not _build_c_launcher(tmp, sys.executable, code):
        with open(tmp, "w") as f:
            f.write(f"#!{sys.executable} -ISXfrozen_modules=on\n{code})\n")
    os.chmod(tmp, 0o755)
    os.rename(tmp, dest)
    print(f"installed {dest}")


def _c_string(s: str) -> str:
    """A C string literal for any text (octal escapes for everything but plain printable ASCII)."""
    out = []
    for b in s.encode():
        ch = chr(b)
        out.append(ch if 32 <= b < 127 and ch not in '"\\?' else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _build_c_launcher(out: str, python: str, code: str) -> bool:
    """Compile tools/launcher.c with the interpreter and start code built in; False when there is no compiler."""
    import shutil
    import subprocess
    import tempfile

    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return False
    with tempfile.TemporaryDirectory(prefix="ocirun-launcher-") as tmpd:
        with open(os.path.join(tmpd, "launcher_config.h"), "w") as f:
            f.write(f"#define OCIRUN_PYTHON {_c_string(python)}\n#define OCIRUN_CODE {_c_string(code)}\n")
        src = os.path.join(ROOT, "tools", "launcher.c")
        base = [cc, "-O2", "-Wall", "-Werror", "-I", tmpd, "-o", out, src]
        # Static: no dynamic loader work before the interpreter's own; dynamic when there is no libc.a.
        for extra in (["-static"], []):
            if subprocess.run(base + extra, capture_output=True).returncode == 0:
                return True
    return False


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/local/bin/ocirun")
