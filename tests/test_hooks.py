"""Hooks as runc runs them: the environment of a hook without `env`, the working directory and path resolution
of createContainer, what the container-side hooks read on stdin, and startContainer under the seccomp filter.

Each scenario runs the same bundle under ocirun and (when installed) runc; where runc differs by version the
docstring says so and the assertion is ocirun's alone.
"""

from __future__ import annotations

import json
import os

import pytest
from sidebyside import PROBE_C, install, read_probe, static_program

RUNTIME_HOOKS = ("prestart", "createRuntime", "poststart", "poststop")


def caller_env(**extra: str) -> dict[str, str]:
    """A small, known environment for the runtime, so what a hook inherits can be compared exactly."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOOKTEST": "from the caller", **extra}


@pytest.mark.parametrize("kind", RUNTIME_HOOKS)
@pytest.mark.parametrize("mode", ["absent", "absent+LC_ALL", "null", "empty", "given"])
def test_runtime_hook_environment(runtime, bundle, tmp_path, kind, mode):
    """Without `env` (absent or null) a runtime-namespace hook gets the runtime's own environment (Go's
    exec.Cmd with a nil Env in runc, environ in crun); `[]` is an empty one; a list is exactly that list. The
    caller's LC_ALL comes back too (ocirun's launcher runs the interpreter under LC_ALL=C)."""
    probe = static_program("probe", PROBE_C)
    out = tmp_path / f"{kind}.out"
    hook = {"path": probe, "args": ["probe", str(out)]}
    if mode == "null":
        hook["env"] = None
    elif mode == "empty":
        hook["env"] = []
    elif mode == "given":
        hook["env"] = ["ONLY=this", "AND=that"]
    env = caller_env(LC_ALL="C.UTF-8") if mode == "absent+LC_ALL" else caller_env()
    b = bundle(["true"])
    b.spec["hooks"] = {kind: [hook]}
    b.write()
    p = runtime("run", "-b", b.path, b.id, env=env)
    assert p.returncode == 0, p.err
    got = read_probe(str(out))
    want = {"given": ["ONLY=this", "AND=that"], "empty": []}.get(mode, [f"{k}={v}" for k, v in env.items()])
    assert sorted(got["env"]) == sorted(want), (runtime.name, got["env"])


def test_runtime_hooks_run_in_the_bundle(runtime, bundle, tmp_path):
    """prestart and createRuntime run with the bundle as their cwd under both runtimes (runc enters the bundle);
    ocirun runs poststart and poststop there too, though `start` and `delete` are called from elsewhere (crun
    does; runc leaves them in its caller's cwd)."""
    probe = static_program("probe", PROBE_C)
    b = bundle(["true"])
    b.spec["hooks"] = {k: [{"path": probe, "args": ["probe", str(tmp_path / f"{k}.out")]}] for k in RUNTIME_HOOKS}
    b.write()
    for cmd in (["create", "-b", b.path, b.id], ["start", b.id], ["delete", "--force", b.id]):
        runtime(*cmd, check=True, cwd=str(tmp_path))
    kinds = RUNTIME_HOOKS if runtime.name == "ocirun" else ("prestart", "createRuntime")
    for k in kinds:
        assert read_probe(str(tmp_path / f"{k}.out"))["cwd"] == os.path.realpath(b.path), k


def test_create_container_hook_cwd_and_paths(runtime, bundle, tmp_path):
    """createContainer runs in the container's mount namespace before pivot_root with the rootfs as its cwd
    (runc): a relative path in its args names a file in the container's root, while the hook's own path (here
    the host's /bin/sh) resolves in the runtime namespace."""
    b = bundle(["true"])
    with open(os.path.join(b.rootfs, "etc", "marker"), "w") as f:
        f.write("in the rootfs\n")
    out = tmp_path / "cc.out"
    script = f'pwd -P > {out}; cat etc/marker >> {out}; test -e {b.rootfs} && echo host-visible >> {out}'
    b.spec["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    assert out.read_text().splitlines() == [os.path.realpath(b.rootfs), "in the rootfs", "host-visible"]


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
@pytest.mark.parametrize("mode", ["absent", "empty", "given"])
def test_create_container_hook_environment(runtime, bundle, tmp_path, mode):
    """A createContainer hook without `env` gets the runtime's environment, like the runtime-side hooks (crun);
    the container process keeps its own. runc has varied here (1.1/1.2: the container's env; 1.3+: none), so
    this one is ocirun's."""
    probe = static_program("probe", PROBE_C)
    out = tmp_path / "cc.out"
    hook = {"path": probe, "args": ["probe", str(out)]}
    if mode != "absent":
        hook["env"] = [] if mode == "empty" else ["ONLY=this"]
    b = bundle(["sh", "-c", "env"])
    b.spec["process"]["env"] = ["PATH=/bin", "IN=container"]
    b.spec["hooks"] = {"createContainer": [hook]}
    b.write()
    env = caller_env(LC_ALL="C.UTF-8")
    p = runtime("run", "-b", b.path, b.id, env=env)
    assert p.returncode == 0, p.err
    want = {"empty": [], "given": ["ONLY=this"]}.get(mode, [f"{k}={v}" for k, v in env.items()])
    assert sorted(read_probe(str(out))["env"]) == sorted(want)
    seen = p.out.split()
    assert "IN=container" in seen and not [e for e in seen if e.startswith(("HOOKTEST=", "LC_ALL="))], seen


@pytest.mark.parametrize("mode", ["absent", "given"])
def test_start_container_hook_environment_and_cwd(runtime, bundle, mode):
    """startContainer without `env` gets the container process's environment (runc: "historically ... inherited
    the process environment specified for init"), HOME from the container's passwd included as the process
    gets it, and runs in process.cwd inside the container, where its path resolves."""
    b = bundle(["true"], readonly=False)
    probe = install(static_program("probe", PROBE_C), b.rootfs)
    hook = {"path": probe, "args": ["probe", "/tmp/sc.out"]}
    if mode == "given":
        hook["env"] = ["ONLY=this"]
    b.spec["process"]["env"] = ["PATH=/bin", "IN=container"]  # no HOME: root's /root from /etc/passwd
    b.spec["process"]["cwd"] = "/etc"
    b.spec["hooks"] = {"startContainer": [hook]}
    b.write()
    p = runtime("run", "-b", b.path, b.id, env=caller_env())
    assert p.returncode == 0, p.err
    got = read_probe(os.path.join(b.rootfs, "tmp/sc.out"))
    assert sorted(got["env"]) == (["ONLY=this"] if mode == "given" else ["HOME=/root", "IN=container", "PATH=/bin"])
    assert got["cwd"] == "/etc"


def test_container_hooks_read_the_containers_view(runtime, bundle, tmp_path):
    """The state on a container-side hook's stdin has the pid as the container sees it (runtime.md: "for hooks
    executed in the container namespace, it is the pid as seen by the container"): 1 in a new pid namespace;
    status "creating" for createContainer and "created" for startContainer, as runc gives them. prestart keeps
    the runtime's view (the host pid)."""
    b = bundle(["true"], readonly=False)
    probe_host = static_program("probe", PROBE_C)
    probe = install(probe_host, b.rootfs)
    b.spec["hooks"] = {
        "prestart": [{"path": probe_host, "args": ["probe", str(tmp_path / "ps.out")]}],
        "createContainer": [{"path": probe_host, "args": ["probe", str(tmp_path / "cc.out")]}],
        "startContainer": [{"path": probe, "args": ["probe", "/tmp/sc.out"]}],
    }
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode == 0, p.err
    cc = json.loads(read_probe(str(tmp_path / "cc.out"))["stdin"])
    sc = json.loads(read_probe(os.path.join(b.rootfs, "tmp/sc.out"))["stdin"])
    ps = json.loads(read_probe(str(tmp_path / "ps.out"))["stdin"])
    assert (cc["status"], cc["pid"], cc["id"]) == ("creating", 1, b.id)
    assert (sc["status"], sc["pid"], sc["id"]) == ("created", 1, b.id)
    assert ps["pid"] > 1 and ps["bundle"] == cc["bundle"] == sc["bundle"] == os.path.realpath(b.path)


@pytest.mark.parametrize("nnp", [True, False])
def test_start_container_hook_runs_under_the_seccomp_filter(runtime, bundle, nnp):
    """startContainer hooks run after the filter is loaded, with or without noNewPrivileges (runc, crun): a
    hook that needs a denied syscall fails `start`, and the container process never runs."""
    b = bundle(["touch", "/tmp/process-ran"], readonly=False)
    b.spec["process"]["noNewPrivileges"] = nnp
    b.spec["hooks"] = {"startContainer": [{"path": "/bin/mkdir", "args": ["mkdir", "/tmp/hook-dir"]}]}
    b.write()
    p = runtime("run", "-b", b.path, b.id)  # without a filter the hook can mkdir
    assert p.returncode == 0, p.err
    assert os.path.isdir(os.path.join(b.rootfs, "tmp/hook-dir"))
    os.rmdir(os.path.join(b.rootfs, "tmp/hook-dir"))
    os.unlink(os.path.join(b.rootfs, "tmp/process-ran"))

    b.spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    b.write()
    p = runtime("run", "-b", b.path, b.id)
    assert p.returncode != 0
    if runtime.name == "ocirun":
        assert "hooks.startContainer[0]: hook /bin/mkdir exited with status 1" in p.err, p.err
    assert not os.path.exists(os.path.join(b.rootfs, "tmp/hook-dir"))
    assert not os.path.exists(os.path.join(b.rootfs, "tmp/process-ran"))


def test_runtime_env_undoes_the_launchers_locale(monkeypatch):
    """ocirun.hooks.runtime_env: the launcher's LC_ALL=C for the interpreter is replaced by the caller's LC_ALL
    ("=value" in _OCIRUN_LC_ALL) or removed ("": the caller had none); without the marker nothing changes."""
    import posix

    from ocirun.hooks import runtime_env

    for saved, want in ((b"=de_DE.UTF-8", b"de_DE.UTF-8"), (b"=", b""), (b"", None)):
        monkeypatch.setitem(posix.environ, b"LC_ALL", b"C")
        monkeypatch.setitem(posix.environ, b"_OCIRUN_LC_ALL", saved)
        env = runtime_env()
        assert b"_OCIRUN_LC_ALL" not in env and env.get(b"LC_ALL") == want
    monkeypatch.delitem(posix.environ, b"_OCIRUN_LC_ALL")
    assert runtime_env()[b"LC_ALL"] == b"C"


@pytest.mark.parametrize("caller_lc_all", [None, "", "de_DE.UTF-8"])
def test_exec_launcher_keeps_the_callers_lc_all_for_hooks(tmp_path, caller_lc_all):
    """The launcher that execs the interpreter (no static libpython) sets LC_ALL=C for it and records the
    caller's LC_ALL in _OCIRUN_LC_ALL, from which runtime_env gives hooks the caller's environment back."""
    import shutil
    import subprocess
    import sys

    from ocitest import ROOT

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import install_launcher as il

    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler: the launcher is the #! script, which leaves the environment alone")
    code = (f"import sys; sys.path.insert(0, {ROOT!r})\nfrom ocirun.hooks import runtime_env\n"
            "print(sorted(runtime_env().items()))\nraise SystemExit(")
    out = str(tmp_path / "launcher")
    assert il._build_c_launcher(out, sys.executable, code, None) in ("static launcher", "launcher")
    env = {"PATH": "/usr/bin:/bin", "KEEP": "me"}
    if caller_lc_all is not None:
        env["LC_ALL"] = caller_lc_all
    p = subprocess.run([out, "state", "x"], capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == repr(sorted((k.encode(), v.encode()) for k, v in env.items()))


@pytest.mark.parametrize("runtime", ["ocirun"], indirect=True)
def test_poststop_hook_runs_when_the_bundle_is_gone(runtime, bundle, tmp_path):
    """A bundle moved away before `delete`: the poststop hook still runs (in the runtime's cwd)."""
    probe = static_program("probe", PROBE_C)
    b = bundle(["true"])
    b.spec["hooks"] = {"poststop": [{"path": probe, "args": ["probe", str(tmp_path / "stop.out")]}]}
    b.write()
    runtime("create", "-b", b.path, b.id, check=True)
    runtime("start", b.id, check=True)
    moved = b.path + ".moved"
    os.rename(b.path, moved)
    try:
        p = runtime("delete", "--force", b.id, cwd=str(tmp_path))
    finally:
        os.rename(moved, b.path)
    assert p.returncode == 0 and p.err == "", p.err
    assert read_probe(str(tmp_path / "stop.out"))["cwd"] == str(tmp_path)
