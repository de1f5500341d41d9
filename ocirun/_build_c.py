"""cffi (API mode) builder for the C helper: every csrc/*.c is compiled, every csrc/*.cdef declared
(with its csrc/*.h prototypes included).

Run `python3 -m ocirun._build_c` to build ocirun/_native*.so in place; setup.py uses `ffibuilder`.
"""

from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"

ffibuilder = FFI()
ffibuilder.cdef("\n".join(p.read_text() for p in sorted(CSRC.glob("*.cdef"))))
ffibuilder.set_source(
    "ocirun._native",
    "\n".join(f'#include "{p.stem}.h"' for p in sorted(CSRC.glob("*.cdef"))),
    sources=[str(p.relative_to(ROOT)) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC)],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-D_GNU_SOURCE"],
)

if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    ffibuilder.compile(tmpdir=str(ROOT), verbose=False)
