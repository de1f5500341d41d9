"""linux.sysctl: only sysctls of a namespace the container has to itself, as runc allows them; never the host's.

Unit tests of the rules (ocirun/sysctl.py), then real containers under ocirun and runc side by side: what is
refused is refused by both, what is allowed lands in the container, and the host's value never changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ocirun import sysctl

NEW = {"ipc": "", "network": "", "uts": "", "user": ""}  # every namespace new
NONE: dict[str, str | None] = {"ipc": None, "network": None, "uts": None, "user": None}


@pytest.mark.parametrize(("key", "ns", "fields", "why"), [
    ("kernel.shmmax", NEW, {}, ""),
    ("kernel.shm_rmid_forced", NEW, {}, ""),
    ("fs.mqueue.msg_max", NEW, {}, ""),
    ("net.ipv4.ip_forward", NEW, {}, ""),
    ("net.ipv4.conf.eth0/100.rp_filter", NEW, {}, ""),
    ("kernel.domainname", NEW, {}, ""),
    ("kernel.hostname", NEW, {"hostname": ""}, ""),
    ("kernel.hostname", NEW, {"hostname": "same"}, ""),  # equal: no contradiction (runc refuses it anyway)
    ("user.max_user_namespaces", NEW, {}, ""),
    ("vm.swappiness", NEW, {}, "is not in a separate kernel namespace: setting it would change the host's value"),
    ("kernel.pid_max", NEW, {}, "is not in a separate kernel namespace: setting it would change the host's value"),
    ("kernel.shmmax", {**NEW, "ipc": None}, {},
     "needs an ipc namespace: without one it would change the host's value"),
    ("fs.mqueue.queues_max", {**NEW, "ipc": None}, {},
     "needs an ipc namespace: without one it would change the host's value"),
    ("net.core.somaxconn", {**NEW, "network": None}, {},
     "needs a network namespace: without one it would change the host's value"),
    ("kernel.domainname", {**NEW, "uts": None}, {},
     "needs a uts namespace: without one it would change the host's value"),
    ("kernel.hostname", NEW, {"hostname": "box"}, 'conflicts with the "hostname" field'),
    ("kernel.domainname", NEW, {"domainname": "a.test"}, 'conflicts with the "domainname" field'),
    ("user.max_user_namespaces", NONE, {},
     "needs a user namespace: without one it would change the host's value"),
])
def test_rules(key, ns, fields, why):
    assert sysctl.refusal(key, "same", ns, fields) == why


def test_a_joined_namespace_counts_unless_it_is_the_runtimes_own():
    own = f"/proc/{os.getpid()}/ns/net"
    assert sysctl.refusal("net.ipv4.ip_forward", "1", {"network": own}, {}) == (
        f"needs a network namespace other than the host's: {own} is the runtime's own")
    p = _other_netns()
    try:
        assert sysctl.refusal("net.ipv4.ip_forward", "1", {"network": f"/proc/{p.pid}/ns/net"}, {}) == ""
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize(("given", "dotted", "path"), [
    ("net.ipv4.ip_forward", "net.ipv4.ip_forward", "net/ipv4/ip_forward"),
    ("net/ipv4/ip_forward", "net.ipv4.ip_forward", "net/ipv4/ip_forward"),
    ("net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0/100.rp_filter", "net/ipv4/conf/eth0.100/rp_filter"),
    ("net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.eth0/100.rp_filter", "net/ipv4/conf/eth0.100/rp_filter"),
])
def test_names_in_both_forms(given, dotted, path):
    """sysctl.d(5): the first separator decides; the C helper opens proc_path() under /proc/sys."""
    assert sysctl.dotted(given) == dotted and sysctl.proc_path(dotted) == path and not sysctl.bad_name(dotted)


@pytest.mark.parametrize("key", ["", "net..x", ".net", "net.", "net./..", "net/../../etc", "..", "net.ipv4./"])
def test_bad_names(key):
    assert sysctl.bad_name(sysctl.dotted(key))


# ---------------------------------------------------------------- real containers, ocirun beside runc


def _other_netns() -> subprocess.Popen:
    """A process in a network namespace of its own (unshare execs sleep: its pid is ours to use)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare(1) not installed")
    p = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    for _ in range(200):
        try:
            if os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                return p
        except OSError:
            pass
        subprocess.run(["sleep", "0.01"])
    p.kill()
    raise AssertionError("unshare --net did not start")


def host(key: str) -> str:
    with open("/proc/sys/" + sysctl.proc_path(sysctl.dotted(key))) as f:
        return f.read().strip()


def other_value(key: str) -> str:
    """A valid value that differs from the host's (so a leak would show)."""
    return str(int(host(key)) - 1)


def without(b, kind: str) -> None:  # noqa: ANN001
    b.spec["linux"]["namespaces"] = [n for n in b.spec["linux"]["namespaces"] if n["type"] != kind]


def runc_run(b, tmp_path) -> subprocess.CompletedProcess:  # noqa: ANN001
    """The same bundle under runc (the fixture's cgroupsPath is the bundle's own: runc removes it again)."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not installed")
    root, cid = str(tmp_path / "runc-root"), b.id + "-runc"
    b.write()
    try:
        return subprocess.run([runc, "--root", root, "run", "-b", b.path, cid], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([runc, "--root", root, "delete", "-f", cid], capture_output=True)


def ocirun_run(rt, b):  # noqa: ANN001, ANN201
    b.write()
    return rt("run", "-b", b.path, b.id)


REFUSED = [
    # (sysctl, namespace taken away or None, ocirun's reason, words of runc's)
    ("vm.swappiness", None, "is not in a separate kernel namespace", "is not in a separate kernel namespace"),
    ("kernel.shmmni", "ipc", "needs an ipc namespace", "is not allowed in the hosts ipc namespace"),
    ("net.ipv4.ip_default_ttl", "network", "needs a network namespace", "not allowed in host network namespace"),
]


@pytest.mark.parametrize(("key", "kind", "ours", "theirs"), REFUSED, ids=[r[0] for r in REFUSED])
def test_host_sysctls_are_refused_and_never_change(rt, bundle, tmp_path, key, kind, ours, theirs):
    """They used to be written into the host's namespaces (vm.swappiness changed the host's value)."""
    before = host(key)
    value = other_value(key)
    b = bundle(["true"])
    b.spec["linux"]["sysctl"] = {key: value}
    if kind:
        without(b, kind)
    try:
        p = ocirun_run(rt, b)
        assert p.returncode == 1 and p.err.startswith(f'ocirun: config.json: linux.sysctl["{key}"]: {ours}'), p.err
        assert p.err.count("\n") == 1 and not os.path.exists(os.path.join(rt.root, b.id))
        assert host(key) == before
        r = runc_run(b, tmp_path)
        assert r.returncode != 0 and theirs in r.stderr, r.stderr
        assert host(key) == before
    finally:
        if host(key) != before:  # a regression: put the host back as it was, then fail
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(before)


ALLOWED = [("kernel.shmmni", None), ("net.ipv4.ip_default_ttl", None), ("net/ipv4/ip_default_ttl", None),
           ("kernel.domainname", "fuzz.example")]


@pytest.mark.parametrize(("key", "value"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_namespaced_sysctls_land_in_the_container_only(rt, bundle, tmp_path, key, value):
    before = host(key)
    value = value or other_value(key)
    b = bundle(["cat", "/proc/sys/" + sysctl.proc_path(sysctl.dotted(key))])
    b.spec["linux"]["sysctl"] = {key: value}
    p = ocirun_run(rt, b)
    assert p.returncode == 0 and p.out.strip() == value, p.err
    r = runc_run(b, tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == value, r.stderr
    assert host(key) == before


def test_joined_network_namespace(rt, bundle, tmp_path):
    """net.* in a joined network namespace: allowed unless it is the runtime's own (runc: isHostNetNS)."""
    before = host("net.ipv4.ip_default_ttl")
    b = bundle(["cat", "/proc/sys/net/ipv4/ip_default_ttl"])
    without(b, "network")
    b.spec["linux"]["sysctl"] = {"net.ipv4.ip_default_ttl": "77"}
    b.spec["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{os.getpid()}/ns/net"})
    p = ocirun_run(rt, b)
    assert p.returncode == 1 and "needs a network namespace other than the host's" in p.err, p.err
    r = runc_run(b, tmp_path)
    assert r.returncode != 0 and "not allowed in host network namespace" in r.stderr, r.stderr
    other = _other_netns()
    try:
        b.spec["linux"]["namespaces"][-1]["path"] = f"/proc/{other.pid}/ns/net"
        p = ocirun_run(rt, b)
        assert p.returncode == 0 and p.out.strip() == "77", p.err
        if shutil.which("nsenter"):  # the value is the joined namespace's now
            seen = subprocess.run(["nsenter", f"--net=/proc/{other.pid}/ns/net", "cat",
                                   "/proc/sys/net/ipv4/ip_default_ttl"], capture_output=True, text=True)
            assert seen.stdout.strip() == "77"
    finally:
        other.kill()
        other.wait()
    assert host("net.ipv4.ip_default_ttl") == before


def test_hostname_sysctl_may_not_contradict_the_field(rt, bundle, tmp_path):
    b = bundle(["true"])
    b.spec["hostname"] = "box"
    b.spec["linux"]["sysctl"] = {"kernel.hostname": "other"}
    p = ocirun_run(rt, b)
    assert p.returncode == 1 and p.err == \
        'ocirun: config.json: linux.sysctl["kernel.hostname"]: conflicts with the "hostname" field\n'
    r = runc_run(b, tmp_path)
    assert r.returncode != 0 and 'conflicts with the OCI \\"hostname\\" field' in r.stderr, r.stderr
