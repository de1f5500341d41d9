"""ocirun.rlimits: process.rlimits validation."""

import os
import resource
import subprocess
import sys

import pytest

from ocirun import rlimits as rl
from ocirun.errors import OciError


def test_numbers_match_the_running_python():
    """The resource module is built from the system headers: our table must agree with it."""
    for name, num in rl.RLIMITS.items():
        if hasattr(resource, name):
            assert getattr(resource, name) == num, name
    assert len(rl.RLIMITS) == 16 == len(set(rl.RLIMITS.values()))
    assert sorted(rl.RLIMITS.values()) == list(range(16))


def test_parse_in_order():
    got = rl.parse_rlimits([
        {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": rl.RLIM_INFINITY},
        {"type": "RLIMIT_RTTIME", "soft": 5, "hard": 10},
    ])
    assert got == [(7, 1024, 1024), (4, 0, (1 << 64) - 1), (15, 5, 10)]
    assert rl.parse_rlimits(None) == [] == rl.parse_rlimits([])


@pytest.mark.parametrize(
    ("rlimits", "what", "why"),
    [
        ([{"type": "RLIMIT_TEST", "soft": 1024, "hard": 1024}], "process.rlimits[0].type",
         'unknown rlimit "RLIMIT_TEST"'),
        ([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "rlimit_core", "soft": 1, "hard": 1}],
         "process.rlimits[1].type", 'unknown rlimit "rlimit_core"'),
        ([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}],
         "process.rlimits[1].type", 'rlimit "RLIMIT_NOFILE" repeated (first at process.rlimits[0])'),
        ([{"soft": 1, "hard": 1}], "process.rlimits[0].type", "is required"),
        ([{"type": 7, "soft": 1, "hard": 1}], "process.rlimits[0].type", "must be a string, got integer 7"),
        ([{"type": "RLIMIT_CPU", "hard": 1}], "process.rlimits[0].soft", "is required"),
        ([{"type": "RLIMIT_CPU", "soft": 1}], "process.rlimits[0].hard", "is required"),
        ([{"type": "RLIMIT_CPU", "soft": -1, "hard": 1}], "process.rlimits[0].soft",
         "-1 is out of range: must be between 0 and 18446744073709551615"),
        ([{"type": "RLIMIT_CPU", "soft": 1, "hard": 1 << 64}], "process.rlimits[0].hard",
         f"{1 << 64} is out of range: must be between 0 and 18446744073709551615"),
        ([{"type": "RLIMIT_CPU", "soft": 1.5, "hard": 2}], "process.rlimits[0].soft",
         "must be an integer, got number 1.5"),
        ([{"type": "RLIMIT_CPU", "soft": True, "hard": 2}], "process.rlimits[0].soft",
         "must be an integer, got boolean true"),
        ([{"type": "RLIMIT_CPU", "soft": "1", "hard": 2}], "process.rlimits[0].soft",
         'must be an integer, got string "1"'),
        ([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}], "process.rlimits[0]",
         "soft limit 2048 is greater than hard limit 1024"),
        (["RLIMIT_CPU"], "process.rlimits[0]", 'must be an object, got string "RLIMIT_CPU"'),
        ({"type": "RLIMIT_CPU"}, "process.rlimits", 'must be an array, got object {"type": "RLIMIT_CPU"}'),
    ],
)
def test_errors_name_the_json_path(rlimits, what, why):
    with pytest.raises(OciError) as ei:
        rl.parse_rlimits(rlimits, "process.rlimits")
    assert (ei.value.what, ei.value.why) == (what, why)


def test_custom_path():
    with pytest.raises(OciError) as ei:
        rl.parse_rlimits([{"type": "RLIMIT_X", "soft": 0, "hard": 0}], "exec.rlimits")
    assert ei.value.what == "exec.rlimits[0].type"


def test_parsed_values_are_accepted_by_setrlimit():
    """What we return can be handed to setrlimit(2) as is (checked in a child: limits are per process)."""
    cur = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = min(cur[1], 512)
    [(res, s, h)] = rl.parse_rlimits([{"type": "RLIMIT_NOFILE", "soft": soft, "hard": cur[1]}])
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            resource.setrlimit(res, (s, h if h != rl.RLIM_INFINITY else resource.RLIM_INFINITY))
            code = 0 if resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_import_is_cheap():
    code = "import sys, ocirun.rlimits; print([m for m in ('json', 're', 'dataclasses', 'resource') " \
           "if m in sys.modules])"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"
