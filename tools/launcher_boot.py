"""Serve the ocirun package from the install-time bundle: one read instead of a lookup and a .pyc per module.

tools/install_launcher.py compiles this file and every module of the package (docstrings stripped) into one
marshalled file; the launcher's start code execs this with TABLE set to {module: (is_package, source path,
source mtime_ns, source size, marshalled code)}. A module whose source changed since the install (or is
gone) is left to the normal path finder, so an edited tree never runs stale code.
"""

import sys
from posix import stat

TABLE: dict = globals().get("TABLE", {})
_Spec = type(sys.__spec__)


class BundleFinder:
    @classmethod
    def find_spec(cls, name: str, path: object = None, target: object = None) -> object:
        entry = TABLE.get(name)
        if entry is None:
            return None
        is_pkg, filename, mtime_ns, size, _code = entry
        try:
            st = stat(filename)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None
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

        exec(marshal.loads(TABLE[module.__spec__.name][4]), module.__dict__)  # noqa: S102


sys.meta_path.insert(0, BundleFinder)
