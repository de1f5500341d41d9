"""Serve the ocirun package from the module archive written at install: one file instead of a path search and a .pyc per
module.

tools/install_launcher.py compiles this file and every module of the package (docstrings stripped) into one
file: an 8-byte header length, then marshal((this code, TABLE)), then each module's marshalled code. The
launcher's start code reads the header and execs this with TABLE = {module: (is_package, source path,
source mtime_ns, source size, offset, length)} and FD, the archive open read-only: a module's code is read
with one pread when it is imported, so modules a command does not import cost neither time nor memory.
Entries with offset -1 are extension modules, loaded from the file they name.
A module whose source changed since the install (or is gone) is left to the normal path finder, so an
edited tree never runs stale code.
"""

import sys
from posix import pread, stat

TABLE: dict = globals().get("TABLE", {})
FD: int = globals().get("FD", -1)
_Spec = type(sys.__spec__)


class BundleFinder:
    @classmethod
    def find_spec(cls, name: str, path: object = None, target: object = None) -> object:
        entry = TABLE.get(name)
        if entry is None:
            return None
        is_pkg, filename, mtime_ns, size = entry[:4]
        try:
            st = stat(filename)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None
        if entry[4] < 0:  # an extension module: its file, without a search of every sys.path directory
            loader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader(name, filename)
            spec = _Spec(name, loader, origin=filename)
            spec.has_location = True
            return spec
        spec = _Spec(name, cls, origin=filename, is_package=is_pkg)
        spec.has_location = True
        if is_pkg:
            spec.submodule_search_locations = [filename.rpartition("/")[0]]
        return spec

    @staticmethod
    def create_module(spec: object) -> None:
        return None

    @staticmethod
    def exec_module(module: object) -> None:
        import marshal

        offset, length = TABLE[module.__spec__.name][4:]
        exec(marshal.loads(pread(FD, length, offset)), module.__dict__)  # noqa: S102


sys.meta_path.insert(0, BundleFinder)
