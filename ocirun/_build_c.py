"""Build the C helper (cffi, API mode) and the container init program.

- `ocirun/_native*.so`: every csrc/*.c but init_main.c, every csrc/*.cdef declared (with its csrc/*.h
  prototypes included).
- `ocirun/ocirun-init` (INIT_NAME): init_main.c with the same plan walker (every csrc/*.c but PARENT_ONLY),
  linked statically. The runtime executes it out of a sealed memfd (csrc/sealed_init.c). musl-gcc first
  (~100 KiB, a few hundred KiB of memory per waiting init), then the system compiler's -static (glibc: larger),
  then a dynamic build as the last resort (it works, but maps the host's libc into every init).

Run `python3 -m ocirun._build_c` to build both in place; setup.py uses `ffibuilder` and `build_init`.
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
INIT_NAME = "ocirun-init"
INIT_MAIN = "init_main.c"
PARENT_ONLY = ("cgroup_devices.c", "mountsrc.c", "seccomp_fd.c")  # called from Python only: never in the init
CFLAGS = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-D_GNU_SOURCE"]

ffibuilder = FFI()
ffibuilder.cdef("\n".join(p.read_text() for p in sorted(CSRC.glob("*.cdef"))))
ffibuilder.set_source(
    "ocirun._native",
    "\n".join(f'#include "{p.stem}.h"' for p in sorted(CSRC.glob("*.cdef"))),
    sources=[str(p.relative_to(ROOT)) for p in sorted(CSRC.glob("*.c")) if p.name != INIT_MAIN],
    include_dirs=[str(CSRC)],
    extra_compile_args=["-O2", *CFLAGS],
)


def init_sources() -> list[str]:
    return [str(p) for p in sorted(CSRC.glob("*.c")) if p.name not in PARENT_ONLY]


def _kernel_headers(shim: str) -> str | None:
    """musl's include path has no kernel headers (linux/*.h): a directory linking the system's uapi ones."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    asm = next((d for d in (f"/usr/include/{arch}/asm", *glob.glob("/usr/include/*/asm"), "/usr/include/asm")
                if os.path.isdir(d)), None)
    if not (os.path.isdir("/usr/include/linux") and asm):
        return None
    os.makedirs(shim, exist_ok=True)
    for name, target in (("linux", "/usr/include/linux"), ("asm", asm), ("asm-generic", "/usr/include/asm-generic")):
        os.symlink(target, os.path.join(shim, name))
    return shim


def _errtab() -> str:
    """strerror's texts as this Python's C library (the runtime's) words them, for a C array."""
    texts = []
    for e in range(200):
        t = os.strerror(e)
        texts.append("0" if t.startswith("Unknown error") else '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"')
    while texts and texts[-1] == "0":
        texts.pop()
    return "static const char *const errtab[] = {\n  " + ",\n  ".join(texts) + "\n};\n"


def _candidates(tmp: str) -> list[tuple[str, list[str]]]:
    """(description, compiler argv prefix), best first."""
    size = ["-Os", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-s",
            "-fno-asynchronous-unwind-tables"]
    out = []
    musl = shutil.which("musl-gcc")
    shim = _kernel_headers(os.path.join(tmp, "kinc")) if musl else None
    if musl and shim:
        errtab = os.path.join(tmp, "errtab.h")
        with open(errtab, "w") as f:
            f.write(_errtab())
        out.append(("musl-gcc, static", [musl, "-static", *size, "-isystem", shim, f'-DOCIRUN_ERRTAB="{errtab}"']))
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc:
        out.append((f"{os.path.basename(cc)}, static", [cc, "-static", *size]))
        out.append((f"{os.path.basename(cc)}, dynamic (no static C library)", [cc, *size]))
    return out


def build_init(dest: str | os.PathLike = ROOT / "ocirun" / INIT_NAME) -> str:
    """Compile the init program to `dest`; returns how it was built. Raises RuntimeError when nothing can."""
    dest = str(dest)
    errors = []
    with tempfile.TemporaryDirectory(prefix="ocirun-init-") as tmp:
        for what, cc in _candidates(tmp):
            out = os.path.join(tmp, INIT_NAME)
            p = subprocess.run([*cc, *CFLAGS, f"-I{CSRC}", "-o", out, *init_sources()], capture_output=True,
                               text=True)
            if p.returncode == 0:
                shutil.copyfile(out, dest + ".tmp")
                os.chmod(dest + ".tmp", 0o755)
                os.replace(dest + ".tmp", dest)
                return f"{what}, {os.path.getsize(dest) // 1024} KiB"
            errors.append(f"{what}: {p.stderr.strip()[-600:]}")
    raise RuntimeError("cannot build the container init:\n" + "\n".join(errors or ["no C compiler found"]))


if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(tmpdir=str(ROOT), verbose=False)
    try:
        print(f"ocirun/{INIT_NAME}: {build_init()}")
    except RuntimeError as e:
        sys.exit(str(e))
