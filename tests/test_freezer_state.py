"""A paused container reads as paused while a task that just joined its frozen cgroup (an `exec
--ignore-paused` child) is still freezing: v1's freezer.state says FREEZING and v2's cgroup.events "frozen 0"
for that moment, which on a loaded machine lasts long enough for `resume` to find the container "running"
(runc's GetState waits the same way). Pure logic: the cgroup files are fakes that change as they are read."""

from __future__ import annotations

import pytest

from ocirun.cgroups import v1, v2


class FakeDir:
    """A cgroup directory whose files give the next of their values on each read (the last one sticks)."""

    def __init__(self, files: dict[str, list[str]]) -> None:
        self.files = {k: list(v) for k, v in files.items()}
        self.reads = 0

    def __enter__(self) -> FakeDir:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read(self, name: str) -> str:
        self.reads += 1
        vals = self.files[name]
        return vals.pop(0) if len(vals) > 1 else vals[0]

    def read_opt(self, name: str) -> str | None:
        return self.read(name) if name in self.files else None


@pytest.mark.parametrize(("states", "frozen"), [
    (["FROZEN\n"], True),
    (["THAWED\n"], False),
    (["FREEZING\n", "FREEZING\n", "FROZEN\n"], True),  # settles: frozen
    (["FREEZING\n", "THAWED\n"], False),  # a resume won meanwhile
    (["FREEZING\n"], True),  # never settles: the pause asked for stands
])
def test_v1_freezing_settles_before_it_is_reported(monkeypatch, tmp_path, states, frozen):
    fake = FakeDir({"freezer.state": states})
    m = v1.V1Manager("/c", {"freezer": str(tmp_path)}, {}, hybrid=False)
    monkeypatch.setattr(m, "_freezer", lambda: fake)
    monkeypatch.setattr(v1.time, "sleep", lambda s: None)
    assert m.is_frozen() is frozen
    assert fake.reads >= len(states)


@pytest.mark.parametrize(("events", "freeze", "frozen"), [
    (["populated 1\nfrozen 1\n"], ["1\n"], True),
    (["populated 1\nfrozen 0\n"], ["0\n"], False),  # not paused at all
    (["populated 1\nfrozen 0\n", "populated 1\nfrozen 0\n", "populated 1\nfrozen 1\n"], ["1\n"], True),
    (["populated 1\nfrozen 0\n"], ["1\n", "0\n"], False),  # thawed meanwhile
    (["populated 1\nfrozen 0\n"], ["1\n"], True),  # asked to freeze, never settles
])
def test_v2_frozen_waits_while_a_freeze_is_asked_for(monkeypatch, tmp_path, events, freeze, frozen):
    fake = FakeDir({"cgroup.events": events, "cgroup.freeze": freeze})
    m = v2.V2Manager(str(tmp_path), root=str(tmp_path.parent))
    monkeypatch.setattr(v2.fsutil, "CgroupDir", lambda path: fake)
    monkeypatch.setattr(v2.time, "sleep", lambda s: None)
    assert m.is_frozen() is frozen
