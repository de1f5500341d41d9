"""ocirun.specgen: `ocirun spec` must match `runc spec` field by field (hostname and version aside)."""

import json
import os
import shutil
import subprocess

import pytest

from ocirun import SPEC_VERSION, specgen

SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ocirun", "schema",
                      "config.schema.json")


def runc_spec(tmp_path, *args: str) -> dict:
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc not installed")
    subprocess.run([runc, "spec", *args], cwd=tmp_path, check=True, capture_output=True)
    return json.loads((tmp_path / "config.json").read_text())


def normalise_runc(spec: dict) -> dict:
    """Apply the documented differences: ours is runc >= 1.2 with hostname "ocirun"."""
    spec["ociVersion"] = SPEC_VERSION
    spec["hostname"] = "ocirun"
    # runc < 1.2 also filled the ambient set (runc commit 0de195333 removed it).
    spec["process"]["capabilities"].pop("ambient", None)
    return spec


def as_text(d: dict) -> str:
    return json.dumps(d, indent=1)  # key order matters too: the output should diff cleanly against runc's


@pytest.mark.parametrize("rootless", [False, True])
def test_matches_runc_spec(tmp_path, rootless):
    want = normalise_runc(runc_spec(tmp_path, *(["--rootless"] if rootless else [])))
    # runc (since 1.0.0-rc91) adds a cgroup namespace on cgroup v2 hosts only; we decide the same way.
    got = specgen.default_spec(rootless)
    assert as_text(got) == as_text(want)


def test_explicit_fields():
    s = specgen.default_spec()
    p = s["process"]
    assert s["ociVersion"] == SPEC_VERSION and s["hostname"] == "ocirun"
    assert p["terminal"] is True and p["args"] == ["sh"] and p["cwd"] == "/" and p["noNewPrivileges"] is True
    assert p["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert p["capabilities"] == {"bounding": caps, "effective": caps, "permitted": caps}
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert s["root"] == {"path": "rootfs", "readonly": True}
    assert [m["destination"] for m in s["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    assert s["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "/proc/kcore" in s["linux"]["maskedPaths"] and "/proc/sys" in s["linux"]["readonlyPaths"]
    assert len(s["linux"]["maskedPaths"]) == 10 and len(s["linux"]["readonlyPaths"]) == 5


def test_cgroup_namespace_choice(tmp_path, monkeypatch):
    types = lambda s: [n["type"] for n in s["linux"]["namespaces"]]  # noqa: E731
    assert types(specgen.default_spec(cgroupns=True)) == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert types(specgen.default_spec(cgroupns=False)) == ["pid", "network", "ipc", "uts", "mount"]
    assert types(specgen.default_spec(True, cgroupns=True)) == ["pid", "ipc", "uts", "mount", "cgroup", "user"]
    monkeypatch.setattr(specgen, "cgroup2_unified", lambda: True)
    assert "cgroup" in types(specgen.default_spec())
    monkeypatch.setattr(specgen, "cgroup2_unified", lambda: False)
    assert "cgroup" not in types(specgen.default_spec())


def test_cgroup2_unified_detection(tmp_path):
    assert not specgen.cgroup2_unified(str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert specgen.cgroup2_unified(str(tmp_path))


def test_rootless_maps_the_caller(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1234)
    monkeypatch.setattr(os, "getegid", lambda: 5678)
    s = specgen.default_spec(rootless=True, cgroupns=False)
    lx = s["linux"]
    assert list(lx)[:2] == ["uidMappings", "gidMappings"]
    assert lx["uidMappings"] == [{"containerID": 0, "hostID": 1234, "size": 1}]
    assert lx["gidMappings"] == [{"containerID": 0, "hostID": 5678, "size": 1}]
    assert [n["type"] for n in lx["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert "resources" not in lx
    pts = next(m for m in s["mounts"] if m["destination"] == "/dev/pts")
    assert not any(o.startswith(("gid=", "uid=")) for o in pts["options"])
    sys_ = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert sys_ == {"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}


def test_rootless_drops_emptied_options():
    spec = {"linux": {"namespaces": []}, "mounts": [{"destination": "/x", "type": "tmpfs", "source": "t",
                                                     "options": ["uid=1", "gid=2"]}]}
    specgen._to_rootless(spec)
    assert spec["mounts"] == [{"destination": "/x", "type": "tmpfs", "source": "t"}]


def test_returns_fresh_objects():
    a = specgen.default_spec()
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["linux"]["maskedPaths"].clear()
    a["mounts"][1]["options"].append("x")
    b = specgen.default_spec()
    assert "CAP_SYS_ADMIN" not in b["process"]["capabilities"]["bounding"]
    assert b["linux"]["maskedPaths"] and "x" not in b["mounts"][1]["options"]


@pytest.mark.parametrize("rootless", [False, True])
def test_valid_against_our_schema(rootless):
    jsonschema = pytest.importorskip("jsonschema")
    with open(SCHEMA) as f:  # (the package's own: never missing)
        schema = json.load(f)
    jsonschema.validators.validator_for(schema)(schema).validate(specgen.default_spec(rootless, cgroupns=True))


@pytest.mark.parametrize("rootless", [False, True])
def test_our_config_loader_accepts_it(tmp_path, rootless):
    """`ocirun spec`'s config loads, and reads back as what it says (a loader that dropped fields would pass a
    bare "it loads" check)."""
    from ocirun import config

    spec = specgen.default_spec(rootless, cgroupns=True)
    (tmp_path / "config.json").write_text(json.dumps(spec))
    (tmp_path / "rootfs").mkdir()
    cfg = config.load(str(tmp_path))
    assert cfg.root_path == str(tmp_path / "rootfs") and cfg.root_readonly is spec["root"]["readonly"]
    assert cfg.process.args == spec["process"]["args"] and cfg.process.env == spec["process"]["env"]
    assert cfg.process.terminal is spec["process"]["terminal"] and cfg.hostname == spec["hostname"]
    assert [n.type for n in cfg.linux.namespaces] == [n["type"] for n in spec["linux"]["namespaces"]]
    assert ("user" in [n.type for n in cfg.linux.namespaces]) is rootless and cfg.has_new_ns("cgroup")
    assert [(m.destination, m.type) for m in cfg.mounts] == [(m["destination"], m["type"]) for m in spec["mounts"]]
    assert cfg.linux.masked_paths == spec["linux"]["maskedPaths"]
    assert [(u.container_id, u.host_id, u.size) for u in cfg.linux.uid_mappings] == [
        (u["containerID"], u["hostID"], u["size"]) for u in spec["linux"].get("uidMappings", [])]
