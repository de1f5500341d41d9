"""ocirun.features: the features.md document, checked against the spec, runc, and our own parsers."""

import json
import shutil
import subprocess

import pytest

from ocirun import SPEC_VERSION, features, seccomp
from ocirun.capabilities import caps_to_mask

# Property names runtime-spec v1.2.0 defines (specs-go/features/features.go); features.md forbids others.
TOP_KEYS = {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations",
            "potentiallyUnsafeConfigAnnotations"}
LINUX_KEYS = {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux", "intelRdt",
              "mountExtensions"}
CGROUP_KEYS = {"v1", "v2", "systemd", "systemdUser", "rdma"}
SECCOMP_KEYS = {"enabled", "actions", "operators", "archs", "knownFlags", "supportedFlags"}


@pytest.fixture(scope="module")
def feat() -> dict:
    return features.features()


@pytest.fixture(scope="module")
def runc_feat() -> dict:
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not installed")
    return json.loads(subprocess.run([runc, "features"], capture_output=True, text=True, check=True).stdout)


def test_only_properties_defined_by_the_spec(feat):
    assert set(feat) <= TOP_KEYS
    assert set(feat["linux"]) <= LINUX_KEYS
    assert set(feat["linux"]["cgroup"]) <= CGROUP_KEYS
    assert set(feat["linux"]["seccomp"]) <= SECCOMP_KEYS
    assert set(feat["linux"]["mountExtensions"]) == {"idmap"}  # lower-case "idmap" in the spec's JSON


def test_versions(feat):
    assert feat["ociVersionMin"] == "1.0.0"
    assert feat["ociVersionMax"] == SPEC_VERSION == "1.2.0"


def test_fixed_values(feat):
    lx = feat["linux"]
    assert lx["cgroup"] == {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": True}
    assert lx["apparmor"] == {"enabled": False} and lx["selinux"] == {"enabled": False}
    assert lx["intelRdt"] == {"enabled": False}
    assert lx["mountExtensions"] == {"idmap": {"enabled": True}}  # id-mapped binds (as runc ≥ 1.2)
    assert feat["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                             "poststop"]
    assert feat["annotations"]["io.github.ocirun.version"]
    assert not any(k.startswith("org.opencontainers.runc.") for k in feat["annotations"])


def test_json_serialisable_and_stable(feat):
    assert json.loads(json.dumps(feat)) == feat == features.features()


def test_mount_options_are_recognised_by_the_plan_compiler(feat):
    plan = pytest.importorskip("ocirun.plan")
    opts = feat["mountOptions"]
    assert opts == sorted(set(opts))
    for o in ("rro", "rnosuid", "rnodev", "rnoexec", "rbind", "rprivate", "ro", "nosuid", "bind"):
        assert o in opts
    for o in ("idmap", "ridmap", "tmpcopyup"):
        assert o in opts  # not mount(2) options: steps of their own (mountExtensions.idmap is true)
    for o in opts:
        # Recognised means: turned into flags/propagation/attributes, never passed through as fs data.
        assert plan.parse_mount_options([o], "mounts[0]")[2] == "", o


def test_namespaces_and_capabilities(feat):
    lx = feat["linux"]
    assert lx["namespaces"] == sorted(["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"])
    assert len(lx["capabilities"]) == 41
    assert caps_to_mask(lx["capabilities"], "x") == (1 << 41) - 1


def test_seccomp_lists_are_what_the_compiler_accepts(feat):
    s = feat["linux"]["seccomp"]
    assert s["enabled"] is True
    assert set(s["supportedFlags"]) <= set(s["knownFlags"])
    assert s["knownFlags"] == ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                               "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    for action in s["actions"]:
        if action != "SCMP_ACT_NOTIFY":
            seccomp._parse({"defaultAction": action}, "s")
    section = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": s["archs"],
        "flags": s["knownFlags"],
        "listenerPath": "/x",
        "syscalls": [
            {"names": ["getcwd"], "action": a, "args": [{"index": 0, "value": 1, "op": op}]}
            for a in s["actions"] for op in s["operators"]
        ],
    }
    seccomp._parse(section, "s")  # every advertised name passes validation


def test_seccomp_disabled_without_libseccomp(monkeypatch):
    monkeypatch.setattr(seccomp, "libseccomp_version", lambda: None)
    f = features.features()
    assert f["linux"]["seccomp"]["enabled"] is False and f["linux"]["seccomp"]["supportedFlags"] == []
    assert "io.github.seccomp.libseccomp.version" not in f["annotations"]


def test_against_runc_features(feat, runc_feat):
    """Same vocabulary as runc wherever both implement a feature."""
    ours, theirs = feat["linux"], runc_feat["linux"]
    assert feat["ociVersionMin"] == runc_feat["ociVersionMin"]
    assert feat["hooks"] == runc_feat["hooks"]
    assert ours["capabilities"] == theirs["capabilities"]
    assert set(theirs["namespaces"]) <= set(ours["namespaces"])
    assert ours["seccomp"]["actions"] == theirs["seccomp"]["actions"]
    assert ours["seccomp"]["operators"] == theirs["seccomp"]["operators"]
    assert set(theirs["seccomp"]["archs"]) <= set(ours["seccomp"]["archs"])
    assert set(theirs["seccomp"].get("knownFlags", [])) <= set(ours["seccomp"]["knownFlags"])
    # Every recursive / propagation option runc knows, we know; and we invent none of our own.
    runc_opts = set(runc_feat["mountOptions"])
    assert {o for o in runc_opts if o.startswith("r") and o not in ("remount", "relatime", "ro", "rw")} <= set(
        feat["mountOptions"])
    newer = {"idmap", "ridmap"} - runc_opts  # runc < 1.2 has no id-mapped mounts
    assert set(feat["mountOptions"]) - newer <= runc_opts
    if "io.github.seccomp.libseccomp.version" in runc_feat["annotations"]:
        assert feat["annotations"]["io.github.seccomp.libseccomp.version"] == \
            runc_feat["annotations"]["io.github.seccomp.libseccomp.version"]
