"""Reuse the integration fixtures (rt, bundle) of tests/conftest.py for the MUST-clause tests."""

from __future__ import annotations

import importlib.util
import os
import sys

_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
_spec = importlib.util.spec_from_file_location("ocirun_fixtures", os.path.join(_TESTS, "conftest.py"))
fixtures = importlib.util.module_from_spec(_spec)
sys.modules["ocirun_fixtures"] = fixtures
_spec.loader.exec_module(fixtures)

rt = fixtures.rt
bundle = fixtures.bundle
rootfs_template = fixtures.rootfs_template
