"""A few thousand seeded mutations of a valid config.json, each run by real `ocirun create` or `ocirun run`
(tests/configfuzz.py): success, or exactly one `ocirun: ` line; never a traceback or an internal error; and
nothing left behind (state dir, cgroup, mount, process), nor any host sysctl changed.

OCIRUN_FUZZ_SEED picks another seed (a failure prints the seed and each case, so it reproduces);
OCIRUN_FUZZ_PER_PATH changes how many values each JSON path gets (default 6: ~2800 cases, ~1 min on 2 cores).
"""

from __future__ import annotations

import os

import configfuzz
from ocitest import ocirun_cmd

SEED = int(os.environ.get("OCIRUN_FUZZ_SEED", "20240611"))
PER_PATH = int(os.environ.get("OCIRUN_FUZZ_PER_PATH", "6"))
WATCHED_SYSCTLS = (*configfuzz.BASE_SYSCTLS, "vm.swappiness", "kernel.shmmax", "net.ipv4.ip_forward")


def test_mutated_configs_give_one_line_and_leave_nothing(rootfs_template):  # noqa: ANN001
    cases = configfuzz.make_cases(SEED, PER_PATH)
    assert len(cases) > 2000
    commands = {c.command for c in cases}
    assert commands == {"create", "run"}
    before = {k: configfuzz.host_sysctl(k) for k in WATCHED_SYSCTLS}
    outcomes = configfuzz.run_cases(cases, ocirun_cmd(), rootfs_template, workers=2)
    bad = [o for o in outcomes if o.problems]
    assert not bad, f"seed {SEED}: {len(bad)} of {len(outcomes)} cases failed:\n" + "\n".join(
        repr(o)[:400] for o in bad[:25])
    assert {k: configfuzz.host_sysctl(k) for k in WATCHED_SYSCTLS} == before
    # The mutations reach both sides: configs that run, and configs refused for many different reasons.
    ok = sum(1 for o in outcomes if o.rc == 0)
    paths = {o.err.split(": ")[2] for o in outcomes if o.rc and o.err.startswith("ocirun: config.json: ")}
    assert ok > 300 and len(paths) > 150, (ok, len(paths))
