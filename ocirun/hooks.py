"""Hooks that run in the runtime's namespaces (prestart, createRuntime, poststart, poststop).

createContainer and startContainer run inside the container and are carried out by the C helper.
"""

import posix

import ocirun
from ocirun.config import Hook
from ocirun.errors import OciError

_SIGDEF = [s for s in range(1, 32) if s not in (9, 19)]  # hooks start with default signal dispositions


def run_hook(h: Hook, state: bytes, label: str) -> None:
    """Run one hook with the state on stdin; a non-zero exit, a signal or a timeout is an error."""
    tr = ocirun.TRACER
    t = tr and tr.now()
    try:
        _run_hook(h, state, label)
    finally:
        if tr:
            tr.step("hook", t, f"{h.path} [{label}]")


def _run_hook(h: Hook, state: bytes, label: str) -> None:
    import select

    r, w = posix.pipe2(posix.O_CLOEXEC)
    try:
        fa = [(posix.POSIX_SPAWN_DUP2, r, 0)]
        try:
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in h.env)
            pid = posix.posix_spawn(h.path, h.args, env, file_actions=fa, setsigdef=_SIGDEF)
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


def run_hooks(hooks: list[Hook], kind: str, state: bytes) -> None:
    """Run hooks in order; the first failure stops the rest (prestart, createRuntime)."""
    for i, h in enumerate(hooks):
        run_hook(h, state, f"hooks.{kind}[{i}]")


def run_hooks_warn(hooks: list[Hook], kind: str, state: bytes, warn) -> None:  # noqa: ANN001
    """Run every hook; failures are warnings (poststop: the spec says the lifecycle continues)."""
    for i, h in enumerate(hooks):
        try:
            run_hook(h, state, f"hooks.{kind}[{i}]")
        except OciError as e:
            warn(str(e))
