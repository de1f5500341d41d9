"""Reuse the integration fixtures (rt, bundle) of tests/ocitest.py for the MUST-clause tests."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from ocitest import bundle, rootfs_template, rt  # noqa: E402, F401
