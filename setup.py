from setuptools import setup

setup(cffi_modules=["ocirun/_build_c.py:ffibuilder"])
