"""Test-only builds of the C code, never shipped: cffi modules compiled in the test session (into a temporary
directory) from the same sources as the runtime's, exposing what its module does not. `csrc_lib()`:
resolve_in_root (csrc/fs.c), parse_cpu_list (csrc/cpulist.c) and the plan walker's step table (csrc/steps.c);
`launcher_lib()`: tools/launcher.c's parsers (warm_target, command), built with -DOCIRUN_LAUNCHER_TEST and the
launcher_config.h the installer writes.

Imported by name (`from cbuild import csrc_lib`), as ocitest.py.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
_BUILT: dict[str, object] = {}
_DIR: list[str] = []

_CSRC_CDEF = """
#define CPU_SETSIZE ...
typedef struct { ...; } cpu_set_t;
int resolve_in_root(int root_fd, const char *path, int create, int want_file, int *err);
int parse_cpu_list(const char *list, cpu_set_t *set);
int test_cpu_isset(int cpu, const cpu_set_t *set);
int test_cpu_count(const cpu_set_t *set);
const char *test_step_args(unsigned int op);
"""
# steps.c is compiled into this file (not beside it) so that its static step table is in reach.
_CSRC_SOURCE = """
#include "steps.c"
int test_cpu_isset(int cpu, const cpu_set_t *set) { return CPU_ISSET(cpu, set); }
int test_cpu_count(const cpu_set_t *set) { return CPU_COUNT(set); }
const char *test_step_args(unsigned int op) { return op < OP_MAX && STEPS[op].run ? STEPS[op].args : NULL; }
"""

_LAUNCHER_CDEF = """
int warm_target(char *mi, char *cg, char *out, size_t size);
const char *command(int argc, char **argv);
int warms(const char *cmd);
"""


def _tmpdir() -> str:
    if not _DIR:
        _DIR.append(tempfile.mkdtemp(prefix="ocirun-ctest-"))
        atexit.register(shutil.rmtree, _DIR[0], True)
    return _DIR[0]


def _build(name: str, cdef: str, source: str, sources: list[str], include_dirs: list[str],
           macros: list[tuple[str, str | None]]) -> object:
    from cffi import FFI

    from ocirun._build_c import CFLAGS

    if name in _BUILT:
        return _BUILT[name]
    ffi = FFI()
    ffi.cdef(cdef)
    ffi.set_source(name, source, sources=sources, include_dirs=include_dirs, define_macros=macros,
                   extra_compile_args=["-O1", *CFLAGS])
    so = ffi.compile(tmpdir=_tmpdir(), verbose=False)
    spec = importlib.util.spec_from_file_location(name, so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _BUILT[name] = mod
    return mod


def csrc_lib() -> object:
    """The C helper's sources (but init_main.c's main) with resolve_in_root, parse_cpu_list and the step table."""
    sources = [os.path.join(CSRC, f) for f in sorted(os.listdir(CSRC))
               if f.endswith(".c") and f not in ("init_main.c", "steps.c")]
    return _build("_ocirun_ctest", _CSRC_CDEF, _CSRC_SOURCE, sources, [CSRC], [])


def launcher_lib() -> object:
    """tools/launcher.c's command-word and cgroup-target parsers, with the tables the installer writes."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import install_launcher
    finally:
        sys.path.remove(os.path.join(ROOT, "tools"))
    inc = os.path.join(_tmpdir(), "launcher-include")
    os.makedirs(inc, exist_ok=True)
    with open(os.path.join(inc, "launcher_config.h"), "w") as f:
        f.write(install_launcher.launcher_config(sys.executable, "pass\n"))
    source = f'#include "{os.path.join(ROOT, "tools", "launcher.c")}"'
    return _build("_ocirun_launcher_test", _LAUNCHER_CDEF, source, [], [inc], [("OCIRUN_LAUNCHER_TEST", None)])
