"""Hooks that run in the runtime's namespaces (prestart, createRuntime, poststart, poststop).

createContainer and startContainer run inside the container and are carried out by the C helper.

A hook without `env` (absent or null) runs with the runtime's own environment, as runc's (Go's exec.Cmd with
a nil Env) and crun's do; `"env": []` is an empty environment. startContainer is the exception: without `env`
it gets the container process's environment (plan.py), runc's long-standing behaviour. They run with the
bundle as their working directory (runc's for prestart and createRuntime: it enters the bundle; crun's for all).
"""

import posix

import ocirun
from ocirun import state as state_mod
from ocirun.config import Hook
from ocirun.errors import OciError

_SIGDEF = [s for s in range(1, 32) if s not in (9, 19)]  # hooks start with default signal dispositions


def runtime_env() -> dict[bytes, bytes]:
    """The environment the runtime was started with (the C launcher's LC_ALL=C for the interpreter undone)."""
    env = dict(posix.environ)
    saved = env.pop(b"_OCIRUN_LC_ALL", None)  # "=value", or "" when the caller had no LC_ALL
    if saved is not None:
        if saved.startswith(b"="):
            env[b"LC_ALL"] = saved[1:]
        else:
            env.pop(b"LC_ALL", None)
    return env


def container_states(st: "state_mod.ContainerState", pid: int) -> bytes:
    """What createContainer and startContainer hooks read on stdin, NUL-separated (csrc/proc.c hook_state):
    the state with the pid as the container sees it (runtime.md), status "creating" then "created" (runc)."""
    inner = _pid_in_container(pid)
    return st.hook_json("creating", inner) + b"\0" + st.hook_json("created", inner)


def _pid_in_container(pid: int) -> int:
    """The innermost pid namespace's number for `pid` (NSpid's last field): 1 in a new pid namespace."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return pid


def run_hook(h: Hook, state: bytes, label: str, cwd: str = "") -> None:
    """Run one hook with the state on stdin, in `cwd` (the bundle) when it still exists; a non-zero exit, a
    signal or a timeout is an error."""
    tr = ocirun.TRACER
    t = tr and tr.now()
    try:
        _run_hook(h, state, label, cwd)
    finally:
        if tr:
            tr.step("hook", t, f"{h.path} [{label}]")


def _spawn(h: Hook, fa: list, cwd: str) -> int:
    """posix_spawn from `cwd`: Python's posix_spawn has no chdir action, so the runtime steps in and back."""
    env = runtime_env() if h.env is None else dict(e.split("=", 1) if "=" in e else (e, "") for e in h.env)
    saved = -1
    if cwd:
        saved = posix.open(".", posix.O_PATH | posix.O_CLOEXEC)
        try:
            posix.chdir(cwd)
        except OSError:  # a bundle removed before `delete`: the hook runs where the runtime does
            posix.close(saved)
            saved = -1
    try:
        return posix.posix_spawn(h.path, h.args, env, file_actions=fa, setsigdef=_SIGDEF)
    finally:
        if saved >= 0:
            posix.fchdir(saved)
            posix.close(saved)


def _run_hook(h: Hook, state: bytes, label: str, cwd: str) -> None:
    import select

    r, w = posix.pipe2(posix.O_CLOEXEC)
    try:
        fa = [(posix.POSIX_SPAWN_DUP2, r, 0)]
        try:
            pid = _spawn(h, fa, cwd)
        except OSError as e:
            raise OciError(label, f"{h.path}: {e.strerror.lower()}") from None
        except ValueError as e:  # empty args, a NUL byte, an env entry "=x": posix_spawn refuses them
            raise OciError(label, f"{h.path}: {e}") from None
        posix.close(r)
        r = -1
        try:
            posix.write(w, state)
        except BrokenPipeError:
            pass  # the hook did not read its stdin: that is its right
        posix.close(w)
        w = -1
        pfd = posix.pidfd_open(pid)
        try:
            p = select.poll()
            p.register(pfd, select.POLLIN)
            # (poll takes an int of milliseconds: a longer timeout is as good as none)
            if not p.poll(min(h.timeout * 1000, 2**31 - 1) if h.timeout else None):
                posix.kill(pid, 9)
                posix.waitpid(pid, 0)
                raise OciError(label, f"{h.path}: timed out after {h.timeout}s")
        finally:
            posix.close(pfd)
        _, st = posix.waitpid(pid, 0)
    finally:
        for fd in (r, w):
            if fd >= 0:
                posix.close(fd)
    if posix.WIFSIGNALED(st):
        raise OciError(label, f"{h.path}: killed by signal {posix.WTERMSIG(st)}")
    if posix.WEXITSTATUS(st):
        raise OciError(label, f"{h.path}: exited with status {posix.WEXITSTATUS(st)}")


def run_hooks(hooks: list[Hook], kind: str, state: bytes, cwd: str = "") -> None:
    """Run hooks in order; the first failure stops the rest (prestart, createRuntime)."""
    for i, h in enumerate(hooks):
        run_hook(h, state, f"hooks.{kind}[{i}]", cwd)


def run_hooks_warn(hooks: list[Hook], kind: str, state: bytes, warn, cwd: str = "") -> None:  # noqa: ANN001
    """Run every hook; failures are warnings (poststop: the spec says the lifecycle continues)."""
    for i, h in enumerate(hooks):
        try:
            run_hook(h, state, f"hooks.{kind}[{i}]", cwd)
        except OciError as e:
            warn(str(e))
