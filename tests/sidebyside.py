"""Run one scenario under ocirun and under runc with the same bundle (runc parity): the `runtime` fixture is
parametrized over both and skips runc where it is not installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from ocitest import ocirun_cmd

RUNC = shutil.which("runc")
RUNTIMES = ["ocirun", "runc"]


class Runner:
    """One runtime on a private --root: runtime(args...) → CompletedProcess with .out/.err, like the rt fixture."""

    def __init__(self, name: str, root: str) -> None:
        if name == "runc" and not RUNC:
            pytest.skip("runc is not installed: no side-by-side run")
        self.name = name
        self.root = root
        self.argv = [*(ocirun_cmd() if name == "ocirun" else [RUNC]), "--root", root]

    def __call__(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
            p = subprocess.run([*self.argv, *args], stdout=fo, stderr=fe, timeout=timeout, stdin=subprocess.DEVNULL)
            fo.seek(0)
            fe.seek(0)
            p.out, p.err = fo.read().decode(errors="replace"), fe.read().decode(errors="replace")
        return p

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)

    def cleanup(self, cid: str) -> None:
        self("delete", "--force", cid)

    def pid(self, cid: str) -> int:
        p = self("state", cid)
        assert p.returncode == 0, p.err
        return json.loads(p.out)["pid"]


@pytest.fixture(params=RUNTIMES)
def runtime(request, tmp_path, bundle):  # noqa: ANN001, ANN201
    """Set up after `bundle`, so its containers are gone before bundle checks that nothing is left."""
    r = Runner(request.param, str(tmp_path / f"root-{request.param}"))
    yield r
    if os.path.isdir(r.root):
        for cid in os.listdir(r.root):
            if not cid.startswith("."):
                r.cleanup(cid)


def runc_version() -> tuple[int, ...]:
    """runc's version as numbers ((0,) when unknown): some behaviour is newer than the runc installed."""
    out = subprocess.run([RUNC, "--version"], capture_output=True, text=True).stdout.split()
    return tuple(int(x) for x in out[2].split("+")[0].split("-")[0].split(".")) if len(out) > 2 else (0,)
