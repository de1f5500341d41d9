"""Run ocirun's target list from the runtime-tools validation suite under pytest.

Skipped unless RUNTIME_TOOLS_DIR points at a built opencontainers/runtime-tools checkout (see
README.md); the runtime is $RUNTIME (default ``ocirun``). One test per validation file, so a
regression names the file and its first failing assertion.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_validation as rv  # noqa: E402


@pytest.fixture(scope="module")
def suite() -> tuple[Path, str]:
    """The built suite and the resolved runtime, or a skip saying why they cannot be used."""
    suite_dir, why = rv.suite_dir_from_env()
    if suite_dir is None:
        pytest.skip(why)
    if os.geteuid() != 0:
        pytest.skip("runtime-tools validation needs root")
    wanted = os.environ.get("RUNTIME", "ocirun")
    runtime = rv.resolve_runtime(wanted)
    if runtime is None:
        pytest.fail(f"RUNTIME_TOOLS_DIR is set but runtime {wanted!r} is not on PATH")
    return suite_dir, runtime


@pytest.mark.parametrize("name", rv.TARGETS)
def test_validation_file(suite: tuple[Path, str], name: str) -> None:
    """One validation/<name>/<name>.t must pass with no failing or orphan diagnostics."""
    suite_dir, runtime = suite
    timeout = float(os.environ.get("RUNTIME_TOOLS_TIMEOUT", rv.DEFAULT_TIMEOUT))
    res = rv.run_one(name, suite_dir, runtime, timeout)
    if not res.passed:
        detail = "\n".join(res.failures)
        pytest.fail(
            f"{name}: {res.ok}/{res.total} ok\n{detail}\n--- stdout ---\n{res.stdout[-4000:]}"
            f"\n--- stderr ---\n{res.stderr[-4000:]}",
            pytrace=False,
        )
