"""The systemd driver's pure parts (runs anywhere): the D-Bus wire format, cgroupsPath/slice parsing, the
resource -> property mapping, the device allow-list emulation, and the manager's D-Bus conversation
against a scripted fake systemd on a unix socket (start, job results, UnitExists retry, stop, timeouts).
Against the real systemd: tests/test_systemd_driver.py in the systemd guest.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from ocirun.cgroups import dbus, devices, paths, systemd_props
from ocirun.cgroups.base import Manager
from ocirun.cgroups.systemd import SystemdManager
from ocirun.errors import OciError

# ------------------------------------------------------------------------------------------------ wire format


def test_signature_split() -> None:
    assert dbus.split_signature("ssa(sv)a(sa(sv))") == ["s", "s", "a(sv)", "a(sa(sv))"]
    assert dbus.split_signature("a{sv}uo") == ["a{sv}", "u", "o"]
    for bad in ("(s", "a", "z"):
        with pytest.raises(ValueError):
            dbus.split_signature(bad)


def test_known_message_bytes() -> None:
    """A method call laid out by hand from the specification's rules (header fields array at 12, each
    struct 8-aligned, body 8-aligned; strings length-prefixed and NUL-terminated)."""
    got = dbus.message(dbus.METHOD_CALL, 1, {1: "/a", 3: "M"}, "su", ("hi", 7))
    want = (b"l\x01\x00\x01" + (12).to_bytes(4, "little") + (1).to_bytes(4, "little")
            + (40).to_bytes(4, "little")  # the fields array: offsets 16 to 56
            + b"\x01\x01o\x00" + (2).to_bytes(4, "little") + b"/a\x00" + b"\x00" * 5
            + b"\x03\x01s\x00" + (1).to_bytes(4, "little") + b"M\x00" + b"\x00" * 6
            + b"\x08\x01g\x00" + b"\x02su\x00"
            + (2).to_bytes(4, "little") + b"hi\x00" + b"\x00" + (7).to_bytes(4, "little"))
    assert got == want


@pytest.mark.parametrize(("sig", "values"), [
    ("ssa(sv)a(sa(sv))", ("u.scope", "replace", [("PIDs", ("au", [1, 2])), ("Delegate", ("b", True)),
                                                 ("MemoryMax", ("t", 2**64 - 1)), ("AllowedCPUs", ("ay", [3, 1])),
                                                 ("DeviceAllow", ("a(ss)", [("/dev/char/1:3", "rwm")]))], [])),
    ("uoss", (7, "/org/freedesktop/systemd1/job/7", "x.scope", "done")),
    ("a{sv}x", ({"a": ("i", -5), "b": ("s", "")}, -(2**63))),
    ("yngqb", (255, -2, "sig", 65535, False)),
])
def test_marshal_round_trip(sig: str, values: tuple) -> None:
    data = dbus.message(dbus.SIGNAL, 9, {1: "/p", 2: "i.f", 3: "m"}, sig, values)
    assert dbus.message_length(data[:16]) == len(data)
    m = dbus.parse(data)
    assert m.kind == dbus.SIGNAL and m.serial == 9 and m.member == "m" and m.interface == "i.f"
    assert m.body == values


def test_big_endian_messages_are_read() -> None:
    """A peer may send big-endian ('B'): header and body are read in its order."""
    body = (3).to_bytes(4, "big") + b"abc\x00"
    fields = (b"\x08\x01g\x00" + b"\x01s\x00")
    head = b"B\x02\x00\x01" + len(body).to_bytes(4, "big") + (5).to_bytes(4, "big") + len(fields).to_bytes(4, "big")
    data = head + fields + b"\x00" * (-(len(head) + len(fields)) % 8) + body
    m = dbus.parse(data)
    assert m.kind == dbus.METHOD_RETURN and m.serial == 5 and m.body == ("abc",)


def test_bus_addresses() -> None:
    assert dbus._bus_path("unix:path=/run/user/1000/bus") == "/run/user/1000/bus"
    assert dbus._bus_path("tcp:host=x;unix:path=/a%2cb,guid=1") == "/a,b"
    assert dbus._bus_path("unix:abstract=/tmp/dbus-x") == "\0/tmp/dbus-x"
    with pytest.raises(OciError):
        dbus._bus_path("tcp:host=localhost,port=1")


def test_host_uid_through_the_uid_map() -> None:
    euid = os.geteuid()
    assert dbus.host_uid("         0          0 4294967295\n") == euid
    assert dbus.host_uid(f"{euid} 1234 1\n") == 1234
    assert dbus.host_uid(f"0 100000 {euid + 1}\n") == 100000 + euid
    assert dbus.host_uid("") == euid


def test_candidates_prefer_the_private_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    if os.geteuid() == 0:
        assert dbus.candidates(False) == [("/run/systemd/private", False), ("/run/dbus/system_bus_socket", True)]
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/42")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/x/bus")
    assert dbus.candidates(True) == [("/run/user/42/systemd/private", False), ("/x/bus", True)]


def test_connect_failure_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setattr(dbus, "candidates", lambda user: [(str(tmp_path / "none"), False)])
    with pytest.raises(OciError) as e:
        dbus.connect()
    assert str(e.value).startswith("systemd cgroup driver: cannot reach systemd: ")
    assert "no such file" in str(e.value)


# ------------------------------------------------------------------------------------------------ paths


def test_expand_slice_like_runc() -> None:
    assert paths.expand_slice("system.slice") == "/system.slice"
    assert paths.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert paths.expand_slice("-.slice") == "/"
    for bad in ("a", ".slice", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice"):
        with pytest.raises(OciError):
            paths.expand_slice(bad)


def test_parse_systemd_path() -> None:
    assert paths.parse_systemd("machine.slice:libpod:abc", "x", "system.slice") == \
        ("machine.slice", "libpod-abc.scope", "/machine.slice")
    assert paths.parse_systemd(None, "c1", "system.slice") == ("system.slice", "ocirun-c1.scope", "/system.slice")
    assert paths.parse_systemd(":p:n", "c", "user.slice") == ("user.slice", "p-n.scope", "/user.slice")
    for bad in ("/a/b", "a.slice:b", "a.slice:p:", "a.slice:p/q:n", "a.slice:p:n.slice", "nope:p:n", "a:b:c:d"):
        with pytest.raises(OciError) as e:
            paths.parse_systemd(bad, "c", "system.slice")
        assert e.value.what == "cgroupsPath"


def test_slice_path_without_the_driver_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths.fspath, "isdir", lambda p: True)
    with pytest.raises(OciError) as e:
        paths.check_systemd("system.slice:a:b", False)
    assert "--systemd-cgroup" in str(e.value)
    paths.check_systemd("system.slice:a:b", True)
    paths.check_systemd("/plain", False)


# ------------------------------------------------------------------------------------------------ properties


def names(props: list) -> dict:
    return {n: v for n, v in props}


def test_range_to_bits() -> None:
    assert systemd_props.range_to_bits("0", "x") == b"\x01"
    assert systemd_props.range_to_bits("1,3-5", "x") == b"\x3a"
    assert systemd_props.range_to_bits("8", "x") == b"\x00\x01"
    for bad in ("", "a", "3-1", ","):
        with pytest.raises(OciError):
            systemd_props.range_to_bits(bad, "x")


def test_cpu_quota_rounds_up_to_systemd_steps() -> None:
    props, q = systemd_props.cpu_quota(12345, 100000, 252)
    assert names(props) == {"CPUQuotaPeriodUSec": ("t", 100000), "CPUQuotaPerSecUSec": ("t", 130000)}
    assert q == 13000
    props, q = systemd_props.cpu_quota(50000, None, 252)
    assert names(props) == {"CPUQuotaPerSecUSec": ("t", 500000)} and q == 50000
    props, _ = systemd_props.cpu_quota(-1, 50000, 241)  # no period property before 242; -1: no limit
    assert names(props) == {"CPUQuotaPerSecUSec": ("t", 2**64 - 1)}
    assert systemd_props.cpu_quota(None, None, 252) == ([], None)


def test_resource_properties_v2() -> None:
    res = {"memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 200 << 20},
           "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0-1", "mems": "0"},
           "pids": {"limit": -1}, "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                                              "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
           "unified": {"memory.high": "max", "pids.max": "0"}}
    props, files = systemd_props.resource_properties(res, v2=True, version=252)
    p = names(props)
    assert p["MemoryMax"] == ("t", 100 << 20) and p["MemoryLow"] == ("t", 50 << 20)
    assert p["MemorySwapMax"] == ("t", 100 << 20)  # v2's swap alone: memory+swap - memory
    assert p["CPUWeight"] == ("t", 39)  # the linear conversion the cgroupfs writer uses
    assert p["CPUQuotaPerSecUSec"] == ("t", 200000)
    assert p["AllowedCPUs"] == ("ay", b"\x03") and p["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert p["TasksMax"] == ("t", 1)  # unified pids.max=0: systemd refuses 0 (runc's 1), later than pids.limit
    assert p["IOWeight"][1] == 1 + (490 * 9999) // 990
    assert p["IODeviceWeight"] == ("a(st)", [("/dev/block/8:0", 1)])
    assert p["IOReadBandwidthMax"] == ("a(st)", [("/dev/block/8:0", 1000)])
    assert p["MemoryHigh"] == ("t", 2**64 - 1)
    assert files == res  # no rounding needed


def test_resource_properties_v1_and_partial() -> None:
    props, files = systemd_props.resource_properties({"memory": {"limit": 1 << 30}, "cpu": {"shares": 512,
                                                      "quota": 1234}}, v2=False, version=252)
    p = names(props)
    assert p == {"MemoryLimit": ("t", 1 << 30), "CPUShares": ("t", 512), "CPUQuotaPerSecUSec": ("t", 20000)}
    assert files["cpu"]["quota"] == 2000  # rounded for the cgroupfs write too
    assert systemd_props.resource_properties({"pids": {"limit": 0}}, v2=True, version=252)[0] == []
    with pytest.raises(OciError) as e:
        systemd_props.resource_properties({"memory": {"limit": "1g"}}, v2=True, version=252)
    assert e.value.what == "linux.resources.memory.limit"


def test_cpu_idle_is_cpu_weight_zero_from_252() -> None:
    assert names(systemd_props.resource_properties({"cpu": {"idle": 1, "shares": 100}}, v2=True,
                                                   version=252)[0]) == {"CPUWeight": ("t", 0)}
    assert "CPUWeight" in names(systemd_props.resource_properties({"cpu": {"idle": 1, "shares": 100}}, v2=True,
                                                                 version=251)[0])


def rules(*spec: tuple) -> list:
    return devices.build_rules([{"allow": a, "type": t, "major": ma, "minor": mi, "access": acc}
                                for a, t, ma, mi, acc in spec], ())


def test_device_properties_whitelist() -> None:
    r = rules((False, "a", None, None, "rwm"), (True, "c", None, None, "m"), (True, "c", 1, 3, "rwm"),
              (True, "c", 136, None, "rwm"), (True, "b", 8, 0, "r"), (False, "c", 1, 3, "w"))
    p = systemd_props.device_properties(r, v2=True)
    assert p[0] == ("DevicePolicy", ("s", "strict")) and p[1] == ("DeviceAllow", ("a(ss)", []))
    assert p[2] == ("DeviceAllow", ("a(ss)", [("char-*", "m"), ("/dev/char/1:3", "rm"), ("char-136", "rwm"),
                                              ("/dev/block/8:0", "r")]))


def test_device_properties_allow_all_and_holes() -> None:
    allow_all = rules((True, "a", None, None, "rwm"))
    assert systemd_props.device_properties(allow_all, v2=True) == [("DevicePolicy", ("s", "auto")),
                                                                  ("DeviceAllow", ("a(ss)", []))]
    holes = rules((True, "a", None, None, "rwm"), (False, "c", 1, 3, "rwm"))
    assert systemd_props.emulate_allow_list(holes)[1] is False
    assert systemd_props.device_properties(holes, v2=True)[0] == ("DevicePolicy", ("s", "auto"))
    assert systemd_props.device_properties(holes, v2=False) == [("DevicePolicy", ("s", "strict")),
                                                               ("DeviceAllow", ("a(ss)", []))]
    wild_major = rules((True, "c", None, 5, "rwm"))
    assert systemd_props.device_properties(wild_major, v2=True)[0] == ("DevicePolicy", ("s", "auto"))


# ------------------------------------------------------------------------------------------------ fake systemd


class FakeSystemd:
    """A scripted systemd on a unix socket (peer to peer, like /run/systemd/private): answers each call
    with what `script[member]` returns: a body tuple, ("error", name, text), or a callable; it can emit
    JobRemoved signals. Records the calls."""

    def __init__(self, path: str, script: dict) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.script = script
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        self.serial = 1000

    def serve(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c: socket.socket) -> None:
        buf = b""
        while b"BEGIN\r\n" not in buf:
            chunk = c.recv(4096)
            if not chunk:
                return
            buf += chunk
        c.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
        buf = buf.split(b"BEGIN\r\n", 1)[1]
        while True:
            while len(buf) < 16 or len(buf) < dbus.message_length(buf[:16]):
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
            n = dbus.message_length(buf[:16])
            m, buf = dbus.parse(buf[:n]), buf[n:]
            self.calls.append((m.member, m.body))
            answer = self.script.get(m.member, ())
            if callable(answer):
                answer = answer(m.body)
            signals = []
            if isinstance(answer, dict):
                signals, answer = answer.get("signals", []), answer["reply"]
            self.serial += 1
            if isinstance(answer, tuple) and answer[:1] == ("error",):
                c.sendall(dbus.message(dbus.ERROR, self.serial, {4: answer[1], 5: m.serial}, "s", (answer[2],)))
            else:
                sig = "".join(s for s, _ in answer)
                c.sendall(dbus.message(dbus.METHOD_RETURN, self.serial, {5: m.serial}, sig, [v for _, v in answer]))
            for body in signals:
                self.serial += 1
                c.sendall(dbus.message(dbus.SIGNAL, self.serial, {1: "/org/freedesktop/systemd1",
                          2: "org.freedesktop.systemd1.Manager", 3: "JobRemoved"}, "uoss", body))

    def close(self) -> None:
        self.srv.close()


class RecordingFs(Manager):
    """Stands in for the scope directory's cgroupfs manager: records what the driver asks of it."""

    mode = "v2"

    def __init__(self) -> None:
        self.log: list = []

    def to_state(self) -> dict:
        return {"mode": "v2", "path": "/sys/fs/cgroup/x.slice/u.scope", "root": "/sys/fs/cgroup"}

    def open_dirs(self) -> None:
        self.log.append("open")

    def add_pid(self, pid: int) -> None:
        self.log.append(("add_pid", pid))

    def apply(self, resources: dict, *, device_allow: list[dict] | tuple = ()) -> None:
        self.log.append(("apply", resources))

    def destroy(self) -> None:
        self.log.append("destroy")


def job(n: int) -> str:
    return f"/org/freedesktop/systemd1/job/{n}"


@pytest.fixture
def fake(tmp_path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    made = []

    def start(script: dict) -> FakeSystemd:
        path = str(tmp_path / f"private{len(made)}")
        f = FakeSystemd(path, {"Get": lambda body: [("v", ("s", "252.39-1"))], **script})
        monkeypatch.setattr(dbus, "candidates", lambda user: [(path, False)])
        made.append(f)
        return f

    yield start
    for f in made:
        f.close()


def manager() -> tuple[SystemdManager, RecordingFs]:
    fs = RecordingFs()
    return SystemdManager("ocitest-c.scope", "ocitest.slice", fs, user=False, started=False), fs


def test_start_sends_runc_properties_then_uses_cgroupfs(fake) -> None:  # noqa: ANN001
    f = fake({"StartTransientUnit": {"reply": [("o", job(5))], "signals": [(5, job(5), "ocitest-c.scope", "done")]}})
    m, fs = manager()
    m.apply({"memory": {"limit": 1 << 30}, "cpu": {"quota": 12345}}, device_allow=())
    m.add_pid(4242)
    start = [body for member, body in f.calls if member == "StartTransientUnit"]
    assert len(start) == 1
    unit, mode, props, aux = start[0]
    assert (unit, mode, aux) == ("ocitest-c.scope", "replace", [])
    p = dict(props)
    assert p["PIDs"] == ("au", [4242]) and p["Delegate"] == ("b", True) and p["Slice"] == ("s", "ocitest.slice")
    assert p["DefaultDependencies"] == ("b", False) and p["CollectMode"] == ("s", "inactive-or-failed")
    assert p["MemoryMax"] == ("t", 1 << 30) and p["CPUQuotaPerSecUSec"] == ("t", 130000)
    assert fs.log == ["open", ("add_pid", 4242), ("apply", {"memory": {"limit": 1 << 30},
                                                            "cpu": {"quota": 13000}})]
    m.add_pid(4243)  # the init that followed (pid namespace): a cgroupfs join, no second unit
    assert fs.log[-1] == ("add_pid", 4243)
    assert sum(1 for member, _ in f.calls if member == "StartTransientUnit") == 1
    m.close()


def test_failed_job_is_an_error_and_reset(fake) -> None:  # noqa: ANN001
    f = fake({"StartTransientUnit": {"reply": [("o", job(6))], "signals": [(5, job(5), "other.scope", "done"),
                                                                          (6, job(6), "ocitest-c.scope", "failed")]},
              "StopUnit": {"reply": [("o", job(9))], "signals": [(9, job(9), "ocitest-c.scope", "done")]}})
    m, fs = manager()
    with pytest.raises(OciError) as e:
        m.add_pid(1)
    assert str(e.value) == ("systemd unit ocitest-c.scope: starting: the job's result is 'failed' "
                            "(journalctl -u ocitest-c.scope)")
    assert [c for c, _ in f.calls][-1] == "ResetFailedUnit" and fs.log == []
    m.destroy()  # the unit was queued: stopped (and reset) before the cgroupfs cleanup
    assert "StopUnit" in [c for c, _ in f.calls] and fs.log == ["destroy"]


def test_unit_exists_is_reset_and_retried_once(fake) -> None:  # noqa: ANN001
    tries = []

    def start(body: tuple) -> object:
        tries.append(body[0])
        if len(tries) == 1:
            return ("error", "org.freedesktop.systemd1.UnitExists", "Unit ocitest-c.scope already exists.")
        return {"reply": [("o", job(7))], "signals": [(7, job(7), "ocitest-c.scope", "done")]}

    f = fake({"StartTransientUnit": start})
    m, _fs = manager()
    m.add_pid(1)
    assert [c for c, _ in f.calls if c != "Get"] == ["StartTransientUnit", "ResetFailedUnit", "StartTransientUnit"]


def test_unit_exists_twice_is_the_error(fake) -> None:  # noqa: ANN001
    fake({"StartTransientUnit": ("error", "org.freedesktop.systemd1.UnitExists", "Unit u already exists.")})
    m, fs = manager()
    with pytest.raises(OciError) as e:
        m.add_pid(1)
    assert str(e.value) == ("systemd unit ocitest-c.scope: starting: Unit u already exists. "
                            "(org.freedesktop.systemd1.UnitExists)")
    m.destroy()  # never queued: no StopUnit, only the cgroupfs cleanup
    assert fs.log == ["destroy"]


def test_job_timeout(fake, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import ocirun.cgroups.systemd as sdmod

    monkeypatch.setattr(sdmod, "JOB_TIMEOUT", 0.2)
    fake({"StartTransientUnit": [("o", job(8))]})  # the job never ends
    m, _fs = manager()
    with pytest.raises(OciError) as e:
        m.add_pid(1)
    assert str(e.value) == "systemd unit ocitest-c.scope: starting: no result from systemd within 0.2 s"


def test_destroy_of_a_gone_unit(fake) -> None:  # noqa: ANN001
    f = fake({"StopUnit": ("error", "org.freedesktop.systemd1.NoSuchUnit", "Unit u not loaded.")})
    m = SystemdManager("ocitest-c.scope", "ocitest.slice", RecordingFs(), user=False, started=True)
    m.destroy()
    assert [c for c, _ in f.calls] == ["StopUnit"]  # gone already: nothing to reset
    assert m.fs.log == ["destroy"]  # type: ignore[attr-defined]


def test_update_sets_unit_properties(fake) -> None:  # noqa: ANN001
    f = fake({})
    m = SystemdManager("ocitest-c.scope", "ocitest.slice", RecordingFs(), user=False, started=True)
    m.apply({"pids": {"limit": 10}})
    (body,) = [b for c, b in f.calls if c == "SetUnitProperties"]
    assert body == ("ocitest-c.scope", True, [("TasksMax", ("t", 10))])
    assert m.fs.log == [("apply", {"pids": {"limit": 10}})]  # type: ignore[attr-defined]


def test_state_round_trip() -> None:
    from ocirun import cgroups

    m = SystemdManager("u.scope", "x.slice", RecordingFs(), user=False, started=True)
    st = m.to_state()
    assert st["driver"] == "systemd" and st["mode"] == "v2" and st["unit"] == "u.scope"
    back = cgroups.from_state(st)
    assert isinstance(back, SystemdManager) and back.unit == "u.scope" and back.slice == "x.slice"
    assert back.fs.to_state() == m.fs.to_state()


def test_cgroupfs_driver_does_not_load_the_systemd_driver(rt, bundle) -> None:  # noqa: ANN001
    """The systemd driver's modules stay off the cgroupfs driver's hot path."""
    from test_hot_path import _imports

    b = bundle(["true"])
    seen = _imports(rt.root, "run", "-b", b.path, b.id)
    assert "ocirun.cgroups.v1" in seen or "ocirun.cgroups.v2" in seen  # the probe sees the cgroupfs manager
    assert not seen & {"ocirun.cgroups.systemd", "ocirun.cgroups.dbus", "ocirun.cgroups.systemd_props"}


def test_annotation_properties_like_runc() -> None:
    got = systemd_props.annotation_properties({
        "org.systemd.property.TimeoutStopSec": "uint64 7", "org.systemd.property.CollectMode": "'inactive'",
        "org.systemd.property.Delegate": "false", "org.systemd.property.After": "['a.service', 'b,c.service']",
        "org.systemd.property.CPUQuotaPerSecUSec": "uint64 5000", "org.systemd.property.RuntimeMaxSec": "2.5",
        "org.other": "x"})
    assert names(got) == {"TimeoutStopUSec": ("t", 7000000), "CollectMode": ("s", "inactive"),
                          "Delegate": ("b", False), "After": ("as", ["a.service", "b,c.service"]),
                          "CPUQuotaPerSecUSec": ("t", 5000), "RuntimeMaxUSec": ("t", 2500000)}
    assert systemd_props.parse_gvariant("42", "w") == ("i", 42)
    for key, value in (("org.systemd.property.lower", "true"), ("org.systemd.property.A-B", "true"),
                       ("org.systemd.property.TimeoutStopSec", "'soon'"), ("org.systemd.property.X", "nonsense"),
                       ("org.systemd.property.X", "['a', 1]"), ("org.systemd.property.X", "['a]")):
        with pytest.raises(OciError) as e:
            systemd_props.annotation_properties({key: value})
        assert e.value.what == f"annotations.{key}"


def test_annotation_properties_go_into_the_unit(fake) -> None:  # noqa: ANN001
    f = fake({"StartTransientUnit": {"reply": [("o", job(5))], "signals": [(5, job(5), "ocitest-c.scope", "done")]}})
    m, _fs = manager()
    m.extra = systemd_props.annotation_properties({"org.systemd.property.TimeoutStopSec": "uint64 3"})
    m.add_pid(1)
    (body,) = [b for c, b in f.calls if c == "StartTransientUnit"]
    assert ("TimeoutStopUSec", ("t", 3000000)) in body[2]


def test_user_instance_ignores_device_filter_errors(fake) -> None:  # noqa: ANN001
    """Rootless (the user's systemd): the device filter cannot be loaded, as in runc that is not an error;
    every other resource still is written, and for root a device error still fails."""
    class Refusing(RecordingFs):
        def apply(self, resources: dict, *, device_allow: list[dict] | tuple = ()) -> None:
            super().apply(resources, device_allow=device_allow)
            if "devices" in resources or device_allow:
                raise OciError("linux.resources.devices", "loading the BPF device filter: Operation not permitted")

    fake({"StartTransientUnit": {"reply": [("o", job(5))], "signals": [(5, job(5), "u.scope", "done")]}})
    fs = Refusing()
    m = SystemdManager("u.scope", "user.slice", fs, user=True, started=False)
    m.apply({"pids": {"limit": 5}, "devices": [{"allow": False, "access": "rwm"}]}, device_allow=())
    m.add_pid(1)
    assert ("apply", {"pids": {"limit": 5}}) in fs.log
    root = SystemdManager("u.scope", "system.slice", Refusing(), user=False, started=True)
    with pytest.raises(OciError):
        root._apply_files({"devices": [{"allow": False, "access": "rwm"}]}, ())
