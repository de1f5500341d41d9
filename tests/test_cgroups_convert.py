"""v1 -> v2 value conversions (runc/crun formulas) and device rule normalization: pure logic."""

from __future__ import annotations

import pytest

from ocirun.cgroups import convert, devices
from ocirun.errors import OciError


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(0, 0), (1, 1), (2, 1), (1024, 39), (262144, 10000), (10**9, 10000), (512, 20)],
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert convert.shares_to_weight(shares) == weight
    if shares:
        assert convert.shares_to_weight(shares) == 1 + ((min(max(shares, 2), 262144) - 2) * 9999) // 262142


@pytest.mark.parametrize(("blkio", "io"), [(0, 0), (10, 1), (1000, 10000), (500, 4950), (5, 1)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert convert.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize(
    ("swap", "limit", "out"),
    [
        (None, None, None),
        (None, -1, -1),  # unlimited memory -> unlimited swap
        (0, 100, None),
        (-1, 100, -1),
        (300, 100, 200),  # memory+swap -> swap alone
        (100, 100, 0),  # equal: no swap at all
        (500, -1, 500),
    ],
)
def test_swap_to_v2(swap: int | None, limit: int | None, out: int | None) -> None:
    assert convert.swap_to_v2(swap, limit) == out


def test_swap_to_v2_errors() -> None:
    with pytest.raises(OciError, match="without a memory limit"):
        convert.swap_to_v2(100, None)
    with pytest.raises(OciError, match=">= the memory limit"):
        convert.swap_to_v2(50, 100)


def test_cpu_max() -> None:
    assert convert.cpu_max(50000, 100000) == "50000 100000"
    assert convert.cpu_max(None, 20000) == "max 20000"
    assert convert.cpu_max(-1, None) == "max 100000"
    assert convert.max_str(-1) == "max" and convert.max_str(7) == "7"


def test_device_rules_normalize_and_order() -> None:
    rules = devices.build_rules(
        [{"allow": False, "access": "rwm"},
         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"}],
        [{"type": "c", "major": 5, "minor": None, "access": "rwm"}],
    )
    assert rules == [
        devices.Rule(False, "a", -1, -1, "rwm"),
        devices.Rule(True, "c", 1, 3, "rw"),
        devices.Rule(True, "c", 5, -1, "rwm"),
    ]
    assert devices.v1_writes(rules) == [
        ("devices.deny", "a"),
        ("devices.deny", "a *:* rwm"),
        ("devices.allow", "c 1:3 rw"),
        ("devices.allow", "c 5:* rwm"),
    ]


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"access": "rwm"}, "linux.resources.devices[0].allow"),
        ({"allow": True, "type": "x"}, "linux.resources.devices[0].type"),
        ({"allow": True, "access": "rwx"}, "linux.resources.devices[0].access"),
        ({"allow": True, "major": -5}, "linux.resources.devices[0].major"),
        ({"allow": True, "minor": "1"}, "linux.resources.devices[0].minor"),
    ],
)
def test_device_rule_errors_name_the_json_path(rule: dict, where: str) -> None:
    with pytest.raises(OciError) as e:
        devices.build_rules([rule], [])
    assert e.value.what == where
