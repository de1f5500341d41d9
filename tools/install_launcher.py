"""Write the `ocirun` launcher: python -I -S with the project and its dependencies put on sys.path directly.

`site` costs ~6 ms on every call and pip's console-script wrapper more; the runtime is timed per command,
so the launcher skips both and names the paths it needs. `-X frozen_modules=on` (one shebang argument:
`-ISXfrozen_modules=on`) takes os, io, codecs... from the interpreter's frozen copies (~6 ms less on an
interpreter where it defaults off, as this pyenv build). The package's bytecode is compiled here, because
the launcher must never pay for compiling (and a read-only checkout could not cache it).
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
    text = (
        f"#!{sys.executable} -ISXfrozen_modules=on\n"
        f"import sys\nsys.path[0:0] = {paths!r}\n"
        "from ocirun.cli import main\nmain()\n"
    )
    tmp = dest + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.rename(tmp, dest)
    print(f"installed {dest}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/local/bin/ocirun")
