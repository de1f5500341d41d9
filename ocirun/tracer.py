"""`ocirun --trace` / OCIRUN_TRACE=1|json: each step the runtime and its child carry out, with its duration.

Imported only when tracing is on: cli.run sets `ocirun.TRACER`, and every call site tests that attribute
first, so an untraced command pays one attribute lookup per site, no import and no formatting.

The runtime's own steps are recorded as (start, end) pairs. The child (C, csrc/spawn.c) cannot print: a plan
that starts with a TRACE step gets a memfd that both sides map shared (the child is a new program after its
execve of ocirun-init: memory reaches it only through a file), into which the child timestamps each later
step (CLOCK_MONOTONIC, the clock of time.monotonic_ns). Lines are printed in start order at `flush()`
points (create done, container started, command end), so runtime and child steps interleave as they ran.
Times are milliseconds since the ocirun package was imported (the interpreter's own start-up is before 0).
"""

import posix
from _struct import Struct
from time import monotonic_ns

_HDR = Struct("<II")  # struct ocirun_trace: n, cap
_REC = Struct("<Iiqq")  # struct ocirun_trace_rec: step, err, start_ns, end_ns
# Child steps named as the syscall they stand for, where one does.
_NAMES = {"PIVOT": "pivot_root", "EXEC": "execve", "CAPS": "capset", "SETUID": "setresuid",
          "SETGID": "setresgid", "SETGROUPS": "setgroups", "SECCOMP": "seccomp", "FIND_EXEC": "find_exec",
          "ROOTFS": "rootfs", "SYNC": "sync.wait"}


class _ChildTrace:
    """The shared buffer of one traced child and the plan steps its records index."""

    def __init__(self, steps: list, who: str, cap: int) -> None:
        import mmap

        size = _HDR.size + _REC.size * cap
        try:  # MFD_NOEXEC_SEAL (8), which vm.memfd_noexec=2 demands; kernels before 6.3 refuse it
            self.fd = posix.memfd_create("ocirun-trace", posix.MFD_CLOEXEC | 8)
        except OSError:
            self.fd = posix.memfd_create("ocirun-trace", posix.MFD_CLOEXEC)
        posix.ftruncate(self.fd, size)
        self.mm = mmap.mmap(self.fd, size)  # MAP_SHARED; the child maps the fd the TRACE step names
        _HDR.pack_into(self.mm, 0, 0, cap)
        self.steps = steps
        self.who = who
        self.seen = 0

    def close_fd(self) -> None:
        """The child has its copy of the fd (or failed to start): ours is not needed any more."""
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def take(self, final: bool) -> list[tuple[int, int | None, str, str, str]]:
        """Records not taken yet; a step still running is left for later unless `final`."""
        n, cap = _HDR.unpack_from(self.mm, 0)
        n = min(n, cap)
        out = []
        while self.seen < n:
            i, err, start, end = _REC.unpack_from(self.mm, _HDR.size + _REC.size * self.seen)
            st = self.steps[i] if i < len(self.steps) else None
            op = st.op if st is not None else "?"
            if not end and not err and not final and op != "EXEC":
                break  # still running (WAIT_START until `start` connects): report it once it ended
            detail = describe_step(st) if st is not None else ""
            if err:
                detail += f" (failed: {posix.strerror(err) if err > 0 else 'error'})"
            out.append((start, end or None, self.who, _NAMES.get(op, op.lower()), detail))
            self.seen += 1
        return out


def describe_step(st: object) -> str:
    """Short, readable args of a plan step (paths, names, numbers; blobs as sizes)."""
    parts = []
    for a in st.args:  # type: ignore[attr-defined]
        if isinstance(a, bytes):
            parts.append(f"<{len(a)} bytes>")
        elif isinstance(a, int):
            parts.append(hex(a) if a > 0xFFFF else str(a))
        elif a:
            parts.append(a if len(a) <= 60 else a[:57] + "...")
    text = " ".join(parts)
    if len(text) > 160:
        text = text[:157] + "..."
    label = st.label  # type: ignore[attr-defined]
    return f"{text} [{label}]" if label else text


class Tracer:
    """Collects steps and prints them (text or JSON lines) on stderr in start order."""

    def __init__(self, mode: str, t0: int, sink=None) -> None:  # noqa: ANN001
        """`mode`: "text", "json" or "" (print nothing); `sink(msg)`: also gets each step as one line (--debug)."""
        self.show = bool(mode)
        self.json = mode.lower() == "json"
        self.sink = sink
        self.t0 = t0
        self.pending: list[tuple[int, int | None, str, str, str]] = []
        self.children: list[_ChildTrace] = []

    now = staticmethod(monotonic_ns)

    def step(self, name: str, start: int, detail: str = "", who: str = "runtime") -> None:
        """A step of ours that began at `start` (a now() value) and ends now."""
        self.pending.append((start, monotonic_ns(), who, name, detail))

    def point(self, name: str, detail: str = "", who: str = "runtime") -> None:
        """Something that happened now (no duration)."""
        t = monotonic_ns()
        self.pending.append((t, t, who, name, detail))

    def attach(self, plan: object, who: str) -> None:
        """Make `plan` record its steps: a TRACE step first, pointing at a new shared buffer."""
        from ocirun.plan import Step

        steps = plan.steps  # type: ignore[attr-defined]
        ct = _ChildTrace(steps, who, len(steps) + 8)
        steps.insert(0, Step("TRACE", "", ct.fd))
        self.children.append(ct)

    def spawned(self) -> None:
        """The child of the last attach() was cloned (or could not be)."""
        if self.children:
            self.children[-1].close_fd()

    def flush(self, final: bool = False) -> None:
        """Print what is known so far, oldest first."""
        events = self.pending
        self.pending = []
        for ct in self.children:
            events.extend(ct.take(final))
        if final:
            self.children = []
        events.sort(key=lambda e: e[0])
        lines = []
        for start, end, who, name, detail in events:
            at = (start - self.t0) / 1e6
            dur = None if end is None else (end - start) / 1e6
            if self.sink is not None:
                took = "" if not dur else f" ({dur:.3f} ms)"  # (a point in time has no duration)
                self.sink(f"{who}: {name}{': ' + detail if detail else ''}{took}")
            if not self.show:
                continue
            if self.json:
                from ocirun import jsonio

                lines.append(jsonio.dumps({"at_ms": round(at, 3), "dur_ms": None if dur is None else round(dur, 3),
                                           "who": who, "step": name, "detail": detail}))
            else:
                d = "         -" if dur is None else f"{dur:7.3f} ms"
                lines.append(f"ocirun trace: {at:9.3f} ms {d}  {who:<7} {name:<14} {detail}".rstrip())
        if lines:
            try:
                posix.write(2, ("\n".join(lines) + "\n").encode())
            except OSError:
                pass
