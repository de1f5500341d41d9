"""ocirun.capabilities: name table, masks, and the kernel's last capability."""

import os
import subprocess
import sys

import pytest

from ocirun import capabilities as caps
from ocirun.errors import OciError

# Spot checks against include/uapi/linux/capability.h, so a shifted table cannot pass.
KERNEL_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13,
    "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
    "CAP_SYSLOG": 34, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}


def test_table_matches_kernel_numbers():
    assert len(caps.CAP_NAMES) == 41 == len(set(caps.CAP_NAMES))
    assert caps.CAP_LAST_KNOWN == 40
    for name, num in KERNEL_NUMBERS.items():
        assert caps.CAPS[name] == num
        assert caps.CAP_NAMES[num] == name
    assert all(n.startswith("CAP_") for n in caps.CAP_NAMES)


def test_table_matches_libcap_names():
    """libcap's cap_to_name agrees with every entry the running kernel knows."""
    import ctypes
    import ctypes.util

    path = ctypes.util.find_library("cap")
    if path is None:
        pytest.skip("libcap not installed")
    libcap = ctypes.CDLL(path)
    libcap.cap_to_name.restype = ctypes.c_void_p
    libcap.cap_free.argtypes = [ctypes.c_void_p]
    for num in range(min(caps.last_cap(), caps.CAP_LAST_KNOWN) + 1):
        p = libcap.cap_to_name(num)
        name = ctypes.string_at(p).decode()
        libcap.cap_free(p)
        assert name.upper() == caps.CAP_NAMES[num]  # libcap says "cap_chown"


def test_caps_to_mask():
    assert caps.caps_to_mask([], "p") == 0
    assert caps.caps_to_mask(None, "p") == 0
    assert caps.caps_to_mask(["CAP_CHOWN"], "p") == 1
    assert caps.caps_to_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"], "p") == (
        1 << 29 | 1 << 5 | 1 << 10
    )
    assert caps.caps_to_mask(["CAP_KILL", "CAP_KILL"], "p") == 1 << 5
    assert caps.caps_to_mask(list(caps.CAP_NAMES), "p") == (1 << 41) - 1


def test_mask_round_trip():
    names = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"]
    assert caps.mask_to_caps(caps.caps_to_mask(names, "p")) == names
    assert caps.mask_to_caps(1 << 63 | 1) == ["CAP_CHOWN"]


@pytest.mark.parametrize(
    ("names", "what", "why"),
    [
        (["CAP_KILL", "CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_TEST"], "process.capabilities.bounding[3]",
         'unknown capability "CAP_TEST"'),
        (["cap_chown"], "process.capabilities.bounding[0]", 'unknown capability "cap_chown"'),
        (["CHOWN"], "process.capabilities.bounding[0]", 'unknown capability "CHOWN"'),
        ([""], "process.capabilities.bounding[0]", 'unknown capability ""'),
        (["CAP_KILL", 5], "process.capabilities.bounding[1]", "must be a string, got integer 5"),
        ("CAP_KILL", "process.capabilities.bounding", 'must be an array, got string "CAP_KILL"'),
        ({"CAP_KILL": 1}, "process.capabilities.bounding", 'must be an array, got object {"CAP_KILL": 1}'),
    ],
)
def test_errors_name_the_element(names, what, why):
    with pytest.raises(OciError) as ei:
        caps.caps_to_mask(names, "process.capabilities.bounding")
    assert ei.value.what == what
    assert ei.value.why == why
    assert str(ei.value) == f"{what}: {why}"


def test_cap_number():
    assert caps.cap_number("CAP_BPF", "x") == 39
    with pytest.raises(OciError, match=r'^x: unknown capability "CAP_NOPE"$'):
        caps.cap_number("CAP_NOPE", "x")


def test_last_cap_reads_proc():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())


def test_last_cap_from_file_and_fallback(tmp_path):
    p = tmp_path / "cap_last_cap"
    p.write_text("37\n")
    assert caps.last_cap(str(p)) == 37
    p.write_text("garbage\n")
    assert caps.last_cap(str(p)) == caps.CAP_LAST_KNOWN
    assert caps.last_cap(str(tmp_path / "missing")) == caps.CAP_LAST_KNOWN


def test_all_caps_mask():
    assert caps.all_caps_mask(0) == 1
    assert caps.all_caps_mask(37) == (1 << 38) - 1
    assert caps.all_caps_mask(63) == (1 << 41) - 1  # kernel newer than the table: only what we can name
    assert caps.all_caps_mask() == (1 << (min(caps.last_cap(), 40) + 1)) - 1


def test_import_is_cheap():
    code = "import sys, ocirun.capabilities; print([m for m in ('json', 're', 'dataclasses', 'typing') " \
           "if m in sys.modules])"
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"
