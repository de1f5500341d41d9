import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithInit(build_py):
    """Also build ocirun/ocirun-init, the static container init the C helper executes (see ocirun/_build_c.py):
    the runtime finds it next to _native*.so, so it must be in the wheel beside it."""

    def run(self) -> None:
        super().run()
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from ocirun._build_c import INIT_NAME, build_init

        dest = os.path.join(self.build_lib, "ocirun", INIT_NAME)
        print(f"{INIT_NAME}: {build_init(dest)}")


setup(cffi_modules=["ocirun/_build_c.py:ffibuilder"], cmdclass={"build_py": BuildPyWithInit})
