"""Fixtures for the integration tests live in ocitest.py (shared with spec-conformance/)."""

from ocitest import bundle, rootfs_template, rt  # noqa: F401
from sidebyside import runtime  # noqa: F401
