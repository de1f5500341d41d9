"""process.execCPUAffinity: csrc/cpulist.c's parser called directly (a test-only build, tests/cbuild.py), and
on real containers."""

import errno
import os

import pytest
from cbuild import csrc_lib


@pytest.fixture(scope="module")
def c():  # noqa: ANN201
    return csrc_lib()


def parse(c, text: str) -> set[int] | int:  # noqa: ANN001
    """The cpus of `text`, or the errno the parser refuses it with."""
    s = c.ffi.new("cpu_set_t *")
    r = c.lib.parse_cpu_list(text.encode(), s)
    if r < 0:
        return -r
    cpus = {k for k in range(c.lib.CPU_SETSIZE) if c.lib.test_cpu_isset(k, s)}
    assert len(cpus) == c.lib.test_cpu_count(s)
    return cpus


@pytest.mark.parametrize(("text", "cpus"), [
    ("0", {0}), ("7", {7}), ("0-3", {0, 1, 2, 3}), ("0-3,6", {0, 1, 2, 3, 6}), ("1,1,1-2", {1, 2}),
    ("5-5", {5}), ("3,1", {1, 3}),
    # runc's rules: spaces around an element and empty elements are allowed
    (" 1 , 2 ", {1, 2}), ("\t0-1\n", {0, 1}), ("0,,1", {0, 1}), (",3,", {3}),
    # cpus past CPU_SETSIZE are left out (the kernel leaves out the cpus a host does not have)
    ("0,5000", {0}), ("1020-4000", {1020, 1021, 1022, 1023}), ("0-4294967295", set(range(1024))),
])
def test_cpu_lists(c, text: str, cpus: set[int]) -> None:  # noqa: ANN001
    assert parse(c, text) == cpus


@pytest.mark.parametrize("text", [
    "", ",", " , ", "0-", "-1", "-", "1,-1", "-5-3", "3-1", "+1", "1-+3", "0x3", "1 2", "1 -2", "1- 2", "a",
    "0-3-5", "1.5", "½", "5000",  # (a list of none of the host's cpus is refused, as sched_setaffinity would)
])
def test_not_cpu_lists(c, text: str) -> None:  # noqa: ANN001
    assert parse(c, text) == errno.EINVAL, text


@pytest.mark.parametrize("text", ["4294967296", "99999999999999999999", "0-99999999999999999999", "1,4294967296"])
def test_numbers_past_32_bits(c, text: str) -> None:  # noqa: ANN001
    assert parse(c, text) == errno.ERANGE


def _allowed(pid: int | str) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("Cpus_allowed_list:"))


def test_container_gets_the_final_cpu_set(rt, bundle) -> None:  # noqa: ANN001
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) < 2:
        pytest.skip("one cpu here: the container's set could not be told from the default")
    b = bundle(["sleep", "1000"])
    b.spec["process"]["execCPUAffinity"] = {"final": f"{mine[-1]}"}
    b.write()
    rt("create", "-b", b.path, b.id, check=True)
    try:
        assert _allowed(rt.state(b.id)["pid"]) == str(mine[-1])
    finally:
        rt("delete", "--force", b.id)


@pytest.mark.parametrize("cpus", ["3-1", "0-", "1,-1"])
def test_a_bad_cpu_list_fails_create_cleanly(rt, bundle, cpus: str) -> None:  # noqa: ANN001
    """Lists that used to mean {0}, {1} or nothing: refused with one line naming the field and the list, by
    the config's syntax check ("0-", "1,-1") or by the init's parser ("3-1"), and nothing is left behind."""
    b = bundle(["true"])
    b.spec["process"]["execCPUAffinity"] = {"final": cpus}
    b.write()
    p = rt("create", "-b", b.path, b.id)
    assert p.returncode != 0
    lines = p.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocirun: ") and "execCPUAffinity" in lines[0], p.err
    assert f'cpu list "{cpus}"' in lines[0], p.err
    assert rt("state", b.id).returncode != 0
