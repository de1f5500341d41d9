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


# --- tools/launcher.c's parsers (a test-only build, tests/cbuild.py) against the runtime's own -----------------

def test_the_launcher_tables_are_the_runtimes() -> None:
    """tools/launcher.c's lists are generated from the package at install (launcher_config.h)."""
    import re

    from ocirun import cli
    from ocirun.cgroups import paths

    h = _tools().launcher_config("/py", "code")
    defines = dict(re.findall(r"^#define (\w+) (.*)$", h, re.M))
    assert re.findall(r'"([^"]*)"', defines["OCIRUN_V1_CONTROLLERS"]) == list(paths.V1_CONTROLLERS)
    assert re.findall(r'"([^"]*)"', defines["OCIRUN_WARM_COMMANDS"]) == list(cli.WARM_COMMANDS)
    flags = {n: int(v) for n, v in re.findall(r'\{"([^"]*)", (\d)\}', defines["OCIRUN_GLOBAL_FLAGS"])}
    assert flags == {n: int(t is True) for n, (_, t) in cli.GLOBAL.items()}
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "launcher.c")) as f:
        src = f.read()
    assert "name=systemd" not in src and '"log-format"' not in src and '"create"' not in src  # no copy kept


@pytest.fixture(scope="module")
def launcher_c():  # noqa: ANN201
    from cbuild import launcher_lib

    return launcher_lib()


def _c_command(launcher_c, argv: list[str]) -> str:  # noqa: ANN001
    args = [launcher_c.ffi.new("char[]", a.encode()) for a in ["ocirun", *argv]]
    argvp = launcher_c.ffi.new("char *[]", [*args, launcher_c.ffi.NULL])
    return launcher_c.ffi.string(launcher_c.lib.command(len(args), argvp)).decode()


COMMAND_LINES = [
    [], ["create", "x"], ["--root", "/r", "create", "x"], ["--root=/r", "run", "x"], ["-root", "/r", "exec", "x"],
    ["---root", "/r", "exec"], ["--log", "create", "state", "x"], ["--log-format", "json", "--debug", "run"],
    ["--debug=false", "create"], ["--systemd-cgroup", "--rootless", "true", "exec", "a"], ["--trace", "run"],
    ["--trace=json", "create"], ["--trace", "json", "create"], ["--criu", "/c", "checkpoint", "x"],
    ["--cgroup-manager", "systemd", "run"], ["-h"], ["--help", "create"], ["-v"], ["state", "create"],
    ["--", "create"], ["-", "create"], ["--bogus", "create"], ["--bogus=1", "run"], ["---", "run"],
    ["--root"], ["", "create"], ["--log-format=text", "--log=/l", "delete", "-f", "x"],
]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=lambda a: " ".join(a) or "(none)")
def test_launcher_finds_the_command_the_cli_runs(launcher_c, argv: list[str]) -> None:  # noqa: ANN001
    """The C launcher forks the warm-up child for the command word ocirun.cli.parse finds; where the CLI
    refuses the line before the command (an unknown flag, "--"), the launcher warms nothing."""
    from ocirun import cli
    from ocirun.errors import OciError

    word = _c_command(launcher_c, argv)
    try:
        _g, cmd, _a = cli.parse(argv)
    except OciError as e:
        if e.what.startswith("command "):  # the global flags are parsed: the command word is refused
            assert not launcher_c.lib.warms(word.encode()), (argv, word)
            return
        cmd = None  # (the command's own flags are refused: its word was found all the same)
    if cmd is not None:
        assert word == cmd, (argv, word, cmd)
    assert bool(launcher_c.lib.warms(word.encode())) == (word in cli.WARM_COMMANDS)


def _c_warm_target(launcher_c, mountinfo: str, cgroup: str) -> str:  # noqa: ANN001
    ffi = launcher_c.ffi
    out = ffi.new("char[]", 4096)
    mi, cg = ffi.new("char[]", mountinfo.encode()), ffi.new("char[]", cgroup.encode())
    return ffi.string(out).decode() if launcher_c.lib.warm_target(mi, cg, out, 4096) == 0 else ""


HYBRID = "\n".join([
    "30 1 8:1 / / rw - ext4 /dev/sda1 rw",
    "31 30 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755",
    "32 31 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate",
    "33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
    "34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory", ""])
OWN = "4:memory:/m\n3:cpu,cpuacct:/c\n1:name=systemd:/s\n0::/u/s.scope\n"
WARM_CASES = {
    "hybrid: the unified mount": (HYBRID, OWN),
    "v1 only": (HYBRID.replace("cgroup2 cgroup2", "tmpfs tmpfs"), OWN),
    "unified mount not at its root: v1": (HYBRID.replace("0:29 / ", "0:29 /sub "), OWN),
    "no v2 line in /proc/self/cgroup": (HYBRID, OWN.replace("0::/u/s.scope\n", "")),
    "first v1 controller not at its root": (HYBRID.replace("0:30 / ", "0:30 /x ").replace("0:29 / ", "0:29 /y "),
                                            OWN),
    "none at its root": (HYBRID.replace(" / /sys/fs/cgroup/", " /q /sys/fs/cgroup/"), OWN),
    "pure v2": ("30 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 30 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                "0::/init.scope\n"),
    "own cgroup is the root": (HYBRID, "0::/\n"),
    "escaped mount point": (HYBRID.replace("/sys/fs/cgroup/unified", "/sys/fs/cgroup/uni\\040fied\\134x"), OWN),
    "cgroup2 mounted twice, the first not at its root": (
        HYBRID + "36 31 0:29 /sub /mnt/v2 rw - cgroup2 cgroup2 rw\n", OWN),
    "a bind of the v2 root later": (HYBRID.replace("32 31 0:29 / /sys/fs/cgroup/unified", "32 31 0:29 /sub /a")
                                    + "37 31 0:29 / /b rw - cgroup2 cgroup2 rw\n", OWN),
    "no trailing newlines, blank lines": ("\n\n" + HYBRID.strip() + "\n\n", OWN.strip()),
    "short and odd lines": ("garbage\n1 2 3 - x\n - cgroup2 cgroup2 rw\n" + HYBRID, "x\n::\n0:\n" + OWN),
    "own path with colons and spaces": (HYBRID, "0::/a:b c/d\n"),
    "duplicate cgroup lines: the first wins": (HYBRID, "0::/first\n0::/second\n" + OWN),
    "name=systemd only": ("31 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n",
                          "1:name=systemd:/s\n"),
    "unknown controller": ("31 30 0:30 / /sys/fs/cgroup/x rw - cgroup cgroup rw,bogus\n", "1:bogus:/s\n"),
    "mount point with trailing slash": (HYBRID.replace("/sys/fs/cgroup/unified", "/u//"), "0::/x//\n"),
    "long paths": (HYBRID.replace("/sys/fs/cgroup/unified", "/" + "u" * 2000), "0::/" + "s" * 2000 + "\n"),
}


@pytest.mark.parametrize("case", sorted(WARM_CASES))
def test_launcher_warms_the_cgroup_python_would(launcher_c, case: str) -> None:  # noqa: ANN001
    """The same mountinfo and /proc/self/cgroup texts, the same cgroup.procs from the C launcher and from
    ocirun.cgroups.paths.warm_target (the runtime's own warm-up without the launcher)."""
    from ocirun.cgroups import paths

    mountinfo, cgroup = WARM_CASES[case]
    py = paths.warm_target(mountinfo, cgroup)
    assert _c_warm_target(launcher_c, mountinfo, cgroup) == py
    if case in ("hybrid: the unified mount", "pure v2", "escaped mount point", "own cgroup is the root",
                "v1 only", "first v1 controller not at its root"):
        assert py, case  # (cases where there is one)
    if case == "none at its root":
        assert py == "", case


def test_launcher_warms_the_cgroup_python_would_on_this_host(launcher_c) -> None:  # noqa: ANN001
    from ocirun.cgroups import paths

    with open("/proc/self/mountinfo") as f, open("/proc/self/cgroup") as g:
        mountinfo, cgroup = f.read(), g.read()
    assert _c_warm_target(launcher_c, mountinfo, cgroup) == paths.warm_target(mountinfo, cgroup)


def test_launcher_and_python_agree_on_scrambled_texts(launcher_c) -> None:  # noqa: ANN001
    """Random mixes of plausible and broken lines (seeded: the same every run)."""
    import random

    from ocirun.cgroups import paths

    rnd = random.Random(15)
    pieces = HYBRID.splitlines() + [
        "50 31 0:40 /x /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
        "51 31 0:41 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
        "52 31 0:42 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio",
        "53 31 0:29 / /sys/fs/cgroup/a\\040b rw - cgroup2 cgroup2 rw", "54 - cgroup2", "", " - - - ",
        "55 31 0:43 / /m shared:5 master:2 - cgroup cgroup rw,freezer"]
    own = ["0::/a", "0::/", "0::", "2:pids:/p", "5:freezer:/f", "3:net_cls,net_prio:/n", "9:cpu:/c", "x:y",
           "4:memory:/m/", "0::/../up"]
    for _ in range(400):
        mi = "\n".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 8)))
        cg = "\n".join(rnd.choice(own) for _ in range(rnd.randint(0, 4)))
        assert _c_warm_target(launcher_c, mi, cg) == paths.warm_target(mi, cg), (mi, cg)
