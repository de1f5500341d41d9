"""Seeded mutations of a valid busybox config.json, and the runner that feeds them to real `ocirun` commands.

Used by tests/test_fuzz_config.py and by hand (`python3 tests/configfuzz.py --seed 1 --cases 4000`, which prints
the counts of tracebacks, internal errors and leftovers instead of failing on the first).

Every JSON path of a rich base config (process, hooks, mounts, linux.resources, seccomp, sysctl, devices, time
offsets...) gets wrong types, huge and negative numbers, empty strings, NUL bytes, lone surrogates, newlines,
deep nesting, unknown enum values and deleted or renamed keys; the JSON text itself gets truncations, trailing
commas, duplicated keys, invalid UTF-8 and literals JSON does not have. Each case runs `ocirun create` (and a
share `ocirun run`); the runner checks that the result is success or one `ocirun: ` line, and that nothing is
left: no state dir, cgroup, mount or process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bundles"))

Path = tuple  # of str | int
TOK = "@T@"  # in mutated strings: the runner puts the case's own token there (paths made from them are its alone)


class Raw(str):
    """JSON text spliced in as is (NaN, 1e999, 100000 nested brackets...)."""


def dump(obj: object) -> str:
    """json.dumps, except that Raw values are written verbatim (and nothing recurses, so depth is free)."""
    if isinstance(obj, Raw):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dump(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(dump(v) for v in obj) + "]"
    return json.dumps(obj)


def host_sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


# Sysctls in the base config, set to the host's own values: a runtime that wrote them into the host's
# namespaces would change nothing (the test still checks that the host's values stay as they are).
BASE_SYSCTLS = ("kernel.shmmni", "net.ipv4.ip_default_ttl")


def base_config(cgroups_path: str) -> dict:
    """A valid config that touches most of what the runtime models; it runs on a v1, hybrid or v2 host."""
    from ocirun.specgen import default_spec

    spec = default_spec()
    p = spec["process"]
    p["args"] = ["true"]
    p["terminal"] = False
    p["user"] = {"uid": 0, "gid": 0, "umask": 18, "additionalGids": [1, 2]}
    p["consoleSize"] = {"height": 24, "width": 80}
    p["capabilities"]["inheritable"] = ["CAP_KILL"]
    p["capabilities"]["ambient"] = ["CAP_KILL"]
    p["rlimits"].append({"type": "RLIMIT_CORE", "hard": 0, "soft": 0})
    p["oomScoreAdj"] = 0
    p["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    p["scheduler"] = {"policy": "SCHED_OTHER", "nice": 0}
    p["execCPUAffinity"] = {"final": "0"}
    spec["domainname"] = "fuzz.test"
    spec["annotations"] = {"org.example.fuzz": "1"}
    spec["hooks"] = {
        "prestart": [{"path": "/bin/true", "args": ["true", "prestart"], "env": ["A=1"], "timeout": 10}],
        "createRuntime": [{"path": "/bin/true"}],
        "createContainer": [{"path": "/bin/true", "args": ["true"]}],
        "startContainer": [{"path": "/bin/true"}],
        "poststart": [{"path": "/bin/true"}],
        "poststop": [{"path": "/bin/true"}],
    }
    spec["mounts"].append({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "size=1m", "mode=0755"]})
    lx = spec["linux"]
    lx["cgroupsPath"] = cgroups_path
    have = {n["type"] for n in lx["namespaces"]}  # (on a cgroup v2 host the default spec has a cgroup ns)
    if "cgroup" not in have:
        lx["namespaces"].append({"type": "cgroup"})
    if os.path.exists("/proc/self/ns/time") and "time" not in have:
        lx["namespaces"].append({"type": "time"})
        lx["timeOffsets"] = {"monotonic": {"secs": 1, "nanosecs": 0}}
    lx["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666,
                      "uid": 0, "gid": 0}]
    lx["resources"] = {
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}],
        "memory": {"limit": 64 << 20},
        "cpu": {"shares": 512},
        "pids": {"limit": 64},
    }
    lx["sysctl"] = {k: v for k in BASE_SYSCTLS if (v := host_sysctl(k)) is not None}
    lx["personality"] = {"domain": "LINUX"}
    lx["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                     "syscalls": [{"names": ["syslog"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    return spec


def walk(obj: object, path: Path = ()) -> Iterator[tuple[Path, object]]:
    """Every node of a JSON document with its path (the root excluded)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*path, k), v
            yield from walk(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*path, i), v
            yield from walk(v, (*path, i))


def show_path(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _parent(doc: object, path: Path) -> object:
    node = doc
    for p in path[:-1]:
        node = node[p]
    return node


def set_at(doc: object, path: Path, value: object) -> None:
    _parent(doc, path)[path[-1]] = value


def delete_at(doc: object, path: Path) -> None:
    del _parent(doc, path)[path[-1]]


def rename_at(doc: dict, path: Path, new: str) -> None:
    """Rename the key at `path`, keeping the key order (a dict rebuilt in place)."""
    parent = _parent(doc, path)
    items = [(new if k == path[-1] else k, v) for k, v in parent.items()]
    parent.clear()
    parent.update(items)


def hostile_values(tok: str) -> list[object]:
    """Values for any node; strings carry `tok` so that a path made from one is this case's alone."""
    deep = Raw("[" * 100000 + "]" * 100000)
    return [
        None, True, False, 0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
        -(2**63), -(2**63) - 1, 10**30, 1.5, -0.0, 1e308, Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"),
        Raw("1" * 5000), "", " ", ".", "..", "/", f"fz{tok}", f"/fz{tok}", f"../../fz{tok}", f"fz{tok}\u0000x",
        "\u0000", f"\ud800fz{tok}", f"fz{tok}\udfff", f"fz{tok}\nocirun: forged line", "\t\r\n", "é€😀" + tok,
        "A" * 5000 + tok, [], [None], [f"fz{tok}"], [1, 2], {}, {f"fz{tok}": 1}, {"": ""}, deep,
        Raw("[" * 300 + "1" + "]" * 300), Raw("{" + '"a": {' * 300 + "}" * 301),
    ]


# Lists that a plan step carries whole (its argument limit is the thing to hit); other lists get a few
# hundred entries: 9000 read-only remounts take 20 s on an idle host, slow rather than hostile.
BIG_LISTS = ("args", "env", "additionalGids")


def typed_variants(value: object, tok: str, key: object = None) -> list[object]:
    """Near misses for this node's own type: unknown enum values, off-by-one and huge numbers, big lists."""
    if isinstance(value, bool):
        return [not value, "true", 1]
    if isinstance(value, int):
        return [value + 1, value - 1, -value - 1, value * 2**32, str(value)]
    if isinstance(value, str):
        return [value + "X", value.upper() if value != value.upper() else value.lower(), value + "\u0000",
                value + "\n", "\ud800" + value, value * 200, "X" + value, value.strip("/") or "x"]
    if isinstance(value, list):
        out: list[object] = [value * 2, value[::-1]]
        if value:
            out.append([value[0], value[0]])
        if value and not isinstance(value[0], dict):  # (9000 hooks would run 9000 programs: slow, not hostile)
            out.append(value + [value[0]] * (9000 if key in BIG_LISTS else 300))
        return out
    if isinstance(value, dict):
        return [dict(value, **{f"x-fz{tok}": 1}), {}]
    return []


def value_cases(base: dict, rng: random.Random, per_path: int) -> Iterator[tuple[str, dict]]:
    """(label, mutated config) for every path: some hostile values, near misses, deletion and renaming."""
    for path, value in list(walk(base)):
        tok = TOK
        picks = rng.sample(hostile_values(tok), per_path) + rng.sample(
            typed_variants(value, tok, path[-1]), min(2, len(typed_variants(value, tok, path[-1]))))
        for v in picks:
            doc = json.loads(json.dumps(base))
            set_at(doc, path, v)
            yield f"{show_path(path)} = {_short(v)}", doc
        if isinstance(path[-1], str):
            doc = json.loads(json.dumps(base))
            delete_at(doc, path)
            yield f"del {show_path(path)}", doc
            for new in rng.sample(["", f"fz{tok}", "\u0000", "\ud800", "a\nb", path[-1].upper(), "../x"], 2):
                doc = json.loads(json.dumps(base))
                rename_at(doc, path, new)
                yield f"rename {show_path(path)} -> {_short(new)}", doc


def _short(v: object) -> str:
    t = dump(v) if not isinstance(v, float) or v == v else "NaN"
    t = t.encode("unicode_escape").decode()
    return t if len(t) <= 40 else t[:37] + "..."


def text_cases(text: str, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    """Mutations of the JSON text: truncation, trailing commas, duplicate keys, bad bytes, odd literals."""
    data = text.encode()
    for _ in range(n):
        k = rng.randrange(len(data))
        yield f"truncated at byte {k}", data[:k]
    closers = [i for i, ch in enumerate(text) if ch in "]}"]
    for i in rng.sample(closers, min(n, len(closers))):
        yield f"trailing comma at {i}", (text[:i] + "," + text[i:]).encode()
    keys = [i for i, ch in enumerate(text) if ch == '"' and text[i - 1] in "{ \n"]
    for i in rng.sample(keys, min(n, len(keys))):
        end = text.index('"', i + 1)
        key = text[i:end + 1]
        dup = rng.choice(['null', '"fz\\u0000"', '{"a": 1}', '[]', '-1', '"\\ud800"'])
        yield f"duplicate key {key} at {i}", (text[:i] + f"{key}: {dup}, " + text[i:]).encode()
    for _ in range(n):
        k = rng.randrange(len(data))
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\x01", b"\n", b"'", b"\\", b"\"", b"}"])
        yield f"byte {bad!r} at {k}", data[:k] + bad + data[k + 1:]
    yield "BOM", b"\xef\xbb\xbf" + data
    yield "empty file", b""
    yield "whitespace only", b" \n\t"
    yield "two documents", data + b"\n" + data
    yield "array at top level", b"[" + data + b"]"
    yield "string at top level", b'"config"'
    yield "null", b"null"
    yield "nested too deeply", b"[" * 200000 + b"]" * 200000
    yield "object nested too deeply", b'{"a":' * 200000 + b"1" + b"}" * 200000
    yield "unterminated string", data[: data.index(b'"args"') + 4]
    yield "comment", b"// config\n" + data
    yield "single quotes", data.replace(b'"', b"'", 4)


class Case:
    __slots__ = ("n", "label", "data", "command")

    def __init__(self, n: int, label: str, data: bytes, command: str) -> None:
        self.n, self.label, self.data, self.command = n, label, data, command


def make_cases(seed: int, per_path: int = 5, text_n: int = 60, run_share: float = 0.15) -> list[Case]:
    """The seeded case list; the cgroupsPath placeholder {cg} is filled in per case by the runner."""
    rng = random.Random(seed)
    base = base_config("{cg}")
    raw: list[tuple[str, bytes]] = [(label, dump(doc).encode(errors="surrogatepass"))
                                    for label, doc in value_cases(base, rng, per_path)]
    raw += list(text_cases(json.dumps(base, indent=1), rng, text_n))
    raw.insert(0, ("the base config", json.dumps(base).encode()))
    return [Case(i, label, data, "run" if rng.random() < run_share else "create")
            for i, (label, data) in enumerate(raw)]


# ---------------------------------------------------------------- checking one result


class Outcome:
    __slots__ = ("case", "rc", "err", "problems", "seconds")

    def __init__(self, case: Case, rc: int, err: str, problems: list[str], seconds: float) -> None:
        self.case, self.rc, self.err, self.problems, self.seconds = case, rc, err, problems, seconds

    def __repr__(self) -> str:
        return f"#{self.case.n} {self.case.command} [{self.case.label}]: rc={self.rc} {self.problems} {self.err!r}"


def output_problems(rc: int, err: str) -> list[str]:
    """Success, or exactly one `ocirun: ` error line (warnings may come before it); never a traceback."""
    out = []
    lines = err.splitlines()
    if "Traceback" in err:
        out.append("traceback")
    if "internal error" in err:
        out.append("internal error")
    if any(not ln.startswith("ocirun: ") for ln in lines):
        out.append("a line not starting with 'ocirun: '")
    errors = [ln for ln in lines if not ln.startswith("ocirun: warning: ")]
    if rc != 0 and len(errors) != 1:
        out.append(f"{len(errors)} error lines")
    if rc == 0 and errors:
        out.append("error output on success")
    return out


def _cgroup_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if " - cgroup" in ln]


def _own_cgroups() -> list[str]:
    with open("/proc/self/cgroup") as f:
        return sorted({ln.rstrip("\n").split(":", 2)[2] for ln in f})


def cgroup_leftovers(cid: str, cg: str, tok: str) -> list[str]:
    """Directories this case may have made: its cgroupsPath, "<id>" under our own cgroup (no path given), and
    anything named after its token (a mutated path) at the top, under our own cgroup or its parent."""
    found = []
    for mnt in _cgroup_mounts():
        places = {mnt}
        for own in _own_cgroups():
            places.add(mnt + own.rstrip("/"))
            places.add(mnt + os.path.dirname(own.rstrip("/")))
        candidates = [mnt + cg] + [os.path.join(p, cid) for p in places]
        for p in places:
            try:
                candidates += [os.path.join(p, n) for n in os.listdir(p) if f"fz{tok}" in n]
            except OSError:
                pass
        found += [c for c in candidates if os.path.isdir(c)]
    return found


def process_leftovers(bundle: str, cg: str, tok: str) -> list[str]:
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            root = os.readlink(f"/proc/{p}/root")
            with open(f"/proc/{p}/cgroup") as f:
                cgs = f.read()
        except OSError:
            continue
        if root.startswith(bundle) or cg in cgs or f"fz{tok}" in cgs:
            found.append(p)
    return found


def mount_leftovers(bundle: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [ln.split()[4] for ln in f if ln.split()[4].startswith(bundle)]


class Worker:
    """One bundle (its own rootfs copy) and one --root; runs cases one after another."""

    def __init__(self, ocirun: list[str], rootfs: str, tmp: str, name: str, cgroup_parent: str) -> None:
        self.ocirun = ocirun
        self.dir = os.path.join(tmp, name)
        self.bundle = os.path.join(self.dir, "bundle")
        self.root = os.path.join(self.dir, "root")
        self.cgroup_parent = cgroup_parent
        os.makedirs(self.bundle)
        subprocess.run(["cp", "-a", rootfs, os.path.join(self.bundle, "rootfs")], check=True)

    def _rt(self, *args: str, timeout: float = 30) -> tuple[int, str]:
        with tempfile.TemporaryFile() as fe:
            try:
                p = subprocess.run([*self.ocirun, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=fe, timeout=timeout)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                rc = -1
            fe.seek(0)
            return rc, fe.read().decode(errors="replace")

    def run(self, case: Case) -> Outcome:
        t0 = time.monotonic()
        tok = f"c{case.n}q"  # "fzc1q" is no part of "fzc10q"
        cid = f"fz{tok}"
        cg = f"{self.cgroup_parent}/{cid}"
        with open(os.path.join(self.bundle, "config.json"), "wb") as f:
            f.write(case.data.replace(b"{cg}", cg.encode()).replace(TOK.encode(), tok.encode()))
        rc, err = self._rt(case.command, "-b", self.bundle, cid)
        problems = ["timed out"] if rc == -1 else output_problems(rc, err)
        if rc == 0 and case.command == "create":
            drc, derr = self._rt("delete", "--force", cid)
            if drc != 0:
                problems.append(f"delete failed: {derr.strip()}")
        left = [n for n in (os.listdir(self.root) if os.path.isdir(self.root) else []) if not n.startswith(".")]
        if left:
            problems.append(f"state left: {left}")
            for n in left:
                self._rt("delete", "--force", n)
        for what, items in (("process", process_leftovers(self.bundle, cg, tok)),
                            ("mount", mount_leftovers(self.bundle)), ("cgroup", cgroup_leftovers(cid, cg, tok))):
            if items:
                problems.append(f"{what} left: {items}")
                _clean(what, items)
        return Outcome(case, rc, err, problems, time.monotonic() - t0)


def _clean(what: str, items: list[str]) -> None:
    """Remove what a failing case left, so that one bug shows up once and not in every later case."""
    if what == "process":
        for p in items:
            try:
                os.kill(int(p), 9)
            except OSError:
                pass
        time.sleep(0.05)
    elif what == "mount":
        for m in sorted(items, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
    else:
        for d in sorted(items, key=len, reverse=True):
            _rmtree_dirs(d)


def _rmtree_dirs(path: str) -> None:
    """rmdir a cgroup tree bottom up, through directory fds: its paths may be longer than PATH_MAX."""
    try:
        parent = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        _rmdir_at(parent, os.path.basename(path))
    finally:
        os.close(parent)


def _rmdir_at(dfd: int, name: str) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
    except OSError:
        return
    try:
        for n in os.listdir(fd):
            if _is_dir_at(fd, n):
                _rmdir_at(fd, n)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=dfd)
    except OSError:
        pass


def _is_dir_at(dfd: int, name: str) -> bool:
    import stat

    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def run_cases(cases: list[Case], ocirun: list[str], rootfs: str, workers: int = 2,
              cgroup_parent: str = "") -> list[Outcome]:
    cgroup_parent = cgroup_parent or f"/ocirun-fuzz-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="ocirun-fuzz-") as tmp:
        pool = [Worker(ocirun, rootfs, tmp, f"w{i}", f"{cgroup_parent}/w{i}") for i in range(workers)]
        chunks = [cases[i::workers] for i in range(workers)]
        with ThreadPoolExecutor(workers) as ex:
            results = list(ex.map(lambda wc: [wc[0].run(c) for c in wc[1]], zip(pool, chunks, strict=True)))
    for mnt in _cgroup_mounts():
        _rmtree_dirs(mnt + cgroup_parent)
    return sorted((o for r in results for o in r), key=lambda o: o.case.n)


def main() -> None:
    import argparse
    import collections

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-path", type=int, default=5)
    ap.add_argument("--text", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ocirun", help="the runtime to run (default: a launcher for this checkout)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failing case")
    a = ap.parse_args()
    from mkbundle import make_rootfs
    from ocitest import ocirun_cmd

    cases = make_cases(a.seed, a.per_path, a.text)
    sysctls = {k: host_sysctl(k) for k in (*BASE_SYSCTLS, "vm.swappiness", "kernel.shmmax", "net.ipv4.ip_forward")}
    with tempfile.TemporaryDirectory() as d:
        make_rootfs(os.path.join(d, "rootfs"))
        t = time.monotonic()
        outcomes = run_cases(cases, [a.ocirun] if a.ocirun else ocirun_cmd(), os.path.join(d, "rootfs"), a.workers)
        took = time.monotonic() - t
    counts: collections.Counter = collections.Counter()
    for o in outcomes:
        for p in o.problems:
            counts[p.split(":")[0] if "left" in p or "delete" in p else p] += 1
        if o.problems and a.verbose:
            print(o)
    changed = {k: (v, host_sysctl(k)) for k, v in sysctls.items() if host_sysctl(k) != v}
    for o in sorted(outcomes, key=lambda o: -o.seconds)[:8] if a.verbose else ():
        print(f"slow: {o.seconds:.2f} s {o!r}"[:300])
    ok = sum(1 for o in outcomes if o.rc == 0)
    print(f"{len(outcomes)} cases in {took:.0f} s ({ok} succeeded, {len(outcomes) - ok} refused); "
          f"{sum(1 for o in outcomes if o.problems)} with problems")
    for k, v in counts.most_common():
        print(f"  {v:5d}  {k}")
    if changed:
        print(f"HOST SYSCTLS CHANGED: {changed}")


if __name__ == "__main__":
    main()
