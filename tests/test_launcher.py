"""The C launcher (tools/launcher.c): it execs the interpreter, and for create/run/exec on a host with v1
hierarchies first forks the child that warms the cgroup attach lock; the runtime stops and reaps it."""

import os
import subprocess

import pytest
from ocitest import launcher_kind, ocirun_cmd

PURE_V2 = os.path.exists("/sys/fs/cgroup/cgroup.procs")


def _is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def test_launcher_is_native_and_passes_arguments() -> None:
    launcher = ocirun_cmd()[0]
    if not _is_elf(launcher):
        pytest.skip("no C compiler: the launcher is the #! script")
    p = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("ocirun version "), p.stderr
    p = subprocess.run([launcher, "--root", "/nonexistent", "state", "no-such-id"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and 'container "no-such-id"' in p.stderr


@pytest.mark.skipif(PURE_V2, reason="pure cgroup v2: clone3 joins the cgroup, nothing to warm")
def test_run_and_exec_stop_the_warm_up_child(rt, bundle) -> None:  # noqa: ANN001
    if not _is_elf(ocirun_cmd()[0]):
        pytest.skip("no C compiler: the launcher is the #! script")
    b = bundle(["sleep", "1000"])
    p = rt("--trace", "run", "-d", "-b", b.path, b.id)
    try:
        assert p.returncode == 0, p.err
        warm = [ln for ln in p.err.splitlines() if "cgroup.prewarm" in ln]
        assert warm and "warm-up child" in warm[0], p.err
        runtime = [ln.split()[7] for ln in p.err.splitlines() if ln.startswith("ocirun trace:") and " runtime " in ln]
        assert runtime.index("cgroup.prewarm") < runtime.index("clone"), runtime  # stopped before the clone
        p = rt("--trace", "exec", b.id, "true")
        assert p.returncode == 0, p.err
        assert "warm-up child" in p.err
    finally:
        rt("delete", "--force", b.id, check=True)


def _tools():  # noqa: ANN202
    import sys

    tools = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import install_launcher

    return install_launcher


_PROBE = """
import pkgx.mod
loader = pkgx.mod.__spec__.loader
loader = getattr(loader, "__name__", type(loader).__name__)
import _json
print(loader, pkgx.mod.answer(), pkgx.mod.__doc__, pkgx.mod.__file__ == {path!r}, _json.__file__, pkgx.__path__)
"""


def test_module_archive_serves_the_package_and_never_stale_code(tmp_path) -> None:  # noqa: ANN001
    """The launcher's module archive: modules come from it (docstrings stripped, __file__ and __path__ as from the
    source), and a module edited after the install comes from its source instead."""
    import sys

    il = _tools()
    pkg = tmp_path / "pkgx"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    mod = pkg / "mod.py"
    mod.write_text('"""Doc."""\n\ndef answer():\n    return 42\n')
    import _json
    import shutil

    ext = str(tmp_path / os.path.basename(_json.__file__))  # a copy: only the archive's entry names this file
    shutil.copy(_json.__file__, ext)
    archive = il.write_archive(str(tmp_path), "pkgx", ext={"_json": ext})
    code = il.start_code([str(tmp_path)], archive) + _PROBE.format(path=str(mod))

    def probe() -> list[str]:
        p = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return p.stdout.split(maxsplit=5)

    out = probe()
    assert out[:5] == ["BundleFinder", "42", "None", "True", ext] and str(pkg) in out[5], out
    mod.write_text('"""Doc."""\n\ndef answer():\n    return 43\n')  # edited after the install
    out = probe()
    assert out[:4] == ["SourceFileLoader", "43", "Doc.", "True"], out
    os.utime(ext, ns=(0, 0))  # an extension module changed since: found by the path search again
    assert probe()[4] == _json.__file__
    os.unlink(archive)  # an unreadable archive: everything from source
    assert probe()[:2] == ["SourceFileLoader", "43"]


def test_launcher_interpreter_loads_the_helper(monkeypatch) -> None:  # noqa: ANN001
    """pick_python only chooses an interpreter of this version that imports the C helper's module; the one it
    picks is statically linked when it is not the installing interpreter."""
    import sys

    il = _tools()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    python, why, ext, _embed = il.pick_python([root, *sys.path])
    assert set(ext) == set(il.EXT_MODULES) and all(os.path.isfile(f) for f in ext.values()), ext
    p = subprocess.run([python, "-IS", "-c", f"import sys; sys.path += {[root, *sys.path]!r}; import ocirun._native;"
                        "print(sys.implementation.cache_tag); print(open('/proc/self/maps').read())"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    tag, maps = p.stdout.split("\n", 1)
    assert tag == sys.implementation.cache_tag
    if python != os.path.realpath(sys.executable):
        assert why == "statically linked libpython" and "/libpython" not in maps, (python, why)
    monkeypatch.setenv("OCIRUN_PYTHON", "/nonexistent/python")
    assert il.pick_python([root]) == ("/nonexistent/python", "OCIRUN_PYTHON", {}, {})


def test_start_code_turns_the_cycle_collector_off(tmp_path) -> None:  # noqa: ANN001
    import sys

    il = _tools()
    code = il.start_code([str(tmp_path)], str(tmp_path / "no-archive")) + "import gc; print(gc.isenabled())"
    p = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr


def test_runtime_maps_no_locale_and_the_container_gets_only_its_own_environment(rt, bundle) -> None:  # noqa: ANN001
    """The interpreter runs in the C locale (UTF-8 mode): no locale archive in the runtime's memory, whatever
    the caller's LANG; the container's environment is config.json's. With the interpreter linked in, the
    running runtime is the launcher itself."""
    import time

    if not _is_elf(ocirun_cmd()[0]):
        pytest.skip("no C compiler: the launcher is the #! script")
    b = bundle(["sleep", "1000"])
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    with open(os.devnull, "wb") as null:
        p = subprocess.Popen([*ocirun_cmd(), "--root", rt.root, "run", "-b", b.path, b.id], stdout=null,
                             stderr=null, env=env)
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(rt.root, b.id, "state.json")) and rt.state(b.id)["status"] == "running":
                break
            time.sleep(0.05)
        with open(f"/proc/{p.pid}/maps") as f:  # (an exec'd interpreter keeps the launcher's pid)
            maps = f.read()
        assert "locale" not in maps and "/libpython" not in maps
        if launcher_kind() == "embedded interpreter":
            assert os.readlink(f"/proc/{p.pid}/exe") == ocirun_cmd()[0]
        with open(f"/proc/{rt.state(b.id)['pid']}/environ", "rb") as f:
            # config.json's, and HOME from the rootfs's passwd when it has none (as runc)
            assert f.read().split(b"\0")[:-1] == [e.encode() for e in b.spec["process"]["env"]] + [b"HOME=/root"]
    finally:
        rt("kill", b.id, "KILL")
        p.wait(timeout=30)


def test_interpreter_is_linked_in_when_a_static_libpython_is_there() -> None:
    """The fast path is not silently lost: with a static libpython and a compiler the launcher embeds the
    interpreter (encodings frozen in); the fallback, a launcher that execs the interpreter, still builds."""
    import shutil
    import sys
    import tempfile

    il = _tools()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    python, _why, _ext, embed = il.pick_python([root, *sys.path])
    if not (embed and os.path.isfile(embed["lib"]) and shutil.which("cc")):
        pytest.skip("no static libpython for the chosen interpreter (or no compiler)")
    assert launcher_kind() == "embedded interpreter"
    assert [name for name, _pkg, _code in embed["frozen"]] == list(il.FROZEN_STDLIB)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ocirun")
        assert il._build_c_launcher(out, python, "import sys\nprint(sys.argv[1:])\nraise SystemExit(", None) in (
            "static launcher", "launcher")
        p = subprocess.run([out, "a", "b"], capture_output=True, text=True, timeout=30)
        assert p.stdout.strip() == "['a', 'b']" and p.returncode == 0, p
