"""Write the `ocirun` launcher: python -I -S with the project and its dependencies put on sys.path directly.

`site` costs ~6 ms on every call and pip's console-script wrapper more; the runtime is timed per command,
so the launcher skips both and names the paths it needs. `-X frozen_modules=on` (one shebang argument:
`-ISXfrozen_modules=on`) takes os, io, codecs... from the interpreter's frozen copies (~6 ms less on an
interpreter where it defaults off, as this pyenv build). The package's bytecode is compiled here, because
the launcher must never pay for compiling (and a read-only checkout could not cache it), into one module
archive served by tools/launcher_boot.py: each of the ~20 modules a `run` imports costs one pread instead of a
path search and a .pyc (~1 ms less in all), and the modules it does not import cost no memory. The
interpreter is the fastest-starting build of this Python that can load the C helper (pick_python).

The launcher itself is a C program (tools/launcher.c): for create/run/exec it first forks a child that starts
the first cgroup attach's RCU grace period, so the wait overlaps the interpreter's start-up; then it runs
the start code in the interpreter, linked in when that interpreter has a static libpython (with the
modules it imports while it starts frozen in), else exec'd (`python -ISXfrozen_modules=on -c ...`).
Without a C compiler the launcher is the equivalent `#!` script (the runtime then starts the grace period
itself, in a thread).
"""

from __future__ import annotations

import os
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(dest: str, package_root: str = ROOT) -> str:
    """Write the launcher at `dest` for the package under `package_root`; returns what was installed (the line
    it prints). The default serves this checkout in place (the tests' launcher); `install` passes a copy."""
    import _cffi_backend  # noqa: F401  (must be importable: it is what the C helper's module loads)

    site = os.path.dirname(_cffi_backend.__file__)
    paths = [package_root, site]
    purelib = sysconfig.get_paths()["purelib"]
    if purelib not in paths:
        paths.append(purelib)
    import compileall

    compileall.compile_dir(os.path.join(package_root, "ocirun"), quiet=1)
    python, why, ext, embed = pick_python(paths)
    try:
        archive = write_archive(package_root, ext=ext)
    except OSError as e:  # a read-only checkout: the modules come from their sources (slower, same code)
        print(f"no module archive: {e}", file=sys.stderr)
        archive = os.path.join(package_root, "ocirun", "__pycache__", "no-archive")
    code = start_code(paths, archive) + "from ocirun.cli import main\nmain("
    tmp = dest + ".tmp"
    kind = _build_c_launcher(tmp, python, code, embed)
    if not kind:
        kind = "#! script"
        with open(tmp, "w") as f:
            f.write(f"#!{python} -ISXfrozen_modules=on\n{code})\n")
    os.chmod(tmp, 0o755)
    os.rename(tmp, dest)
    line = f"installed {dest} ({kind}; python: {python}, {why})"
    print(line)
    return line


def installed_paths(prefix: str) -> dict[str, str]:
    """Where `install` puts things under PREFIX: the launcher, the package copy, the man page."""
    return {"bin": os.path.join(prefix, "bin", "ocirun"), "lib": os.path.join(prefix, "lib", "ocirun"),
            "man": os.path.join(prefix, "share", "man", "man8", "ocirun.8")}


def _copy_package(dest_root: str) -> None:
    """Copy the built package (modules, the C helper, data files) to dest_root/ocirun: the install then
    needs nothing from the checkout. Build leftovers (the cffi C file, objects, bytecode) stay behind."""
    import shutil

    skip = shutil.ignore_patterns("__pycache__", "*.c", "*.o", "*.pyc", "*.tmp")
    src = os.path.join(ROOT, "ocirun")
    if not any(n.startswith("_native") and n.endswith(".so") for n in os.listdir(src)):
        sys.exit("install: the C helper is not built (make build)")
    shutil.copytree(src, os.path.join(dest_root, "ocirun"), ignore=skip)


def install(prefix: str) -> str:
    """A self-contained install: PREFIX/lib/ocirun/ocirun (the package), PREFIX/bin/ocirun (the launcher, which
    loads only that copy), PREFIX/share/man/man8/ocirun.8. Moving or deleting the checkout afterwards changes
    nothing. A new package copy replaces the old one by rename, so a command already running keeps its files."""
    import shutil

    where = installed_paths(prefix)
    lib = where["lib"]
    new, old = lib + ".new", lib + ".old"
    for d in (new, old):
        shutil.rmtree(d, ignore_errors=True)
    _copy_package(new)
    os.makedirs(os.path.dirname(where["bin"]), exist_ok=True)
    # The launcher names the final directory: write it against the copy's final place.
    if os.path.exists(lib):
        os.rename(lib, old)
    os.rename(new, lib)
    shutil.rmtree(old, ignore_errors=True)
    line = main(where["bin"], lib)
    write_manpage(where["man"], lib)
    print(f"installed {where['man']}")
    return line


def write_manpage(path: str, package_root: str = ROOT) -> None:
    """ocirun(8) from ocirun.helptext, the source `ocirun --help` prints from."""
    import time

    sys.path.insert(0, package_root)
    try:
        from ocirun import __version__, cli, helptext
    finally:
        sys.path.remove(package_root)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    date = time.strftime("%Y-%m-%d", time.gmtime(int(epoch) if epoch else None))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(helptext.manpage(cli.GLOBAL, cli.COMMANDS, __version__, date))


def uninstall(prefix: str) -> None:
    """Remove what install(prefix) wrote."""
    import shutil

    where = installed_paths(prefix)
    for key in ("bin", "man"):
        try:
            os.unlink(where[key])
            print(f"removed {where[key]}")
        except FileNotFoundError:
            pass
    if os.path.isdir(where["lib"]):
        shutil.rmtree(where["lib"])
        print(f"removed {where['lib']}")


def start_code(paths: list[str], archive: str) -> str:
    """The interpreter's -c code up to the import of the CLI: the paths, then the module archive's finder.

    The paths are appended, not prepended: the standard library is found first (as in any Python), and a
    stdlib import does not first search the checkout and site-packages. An archive that can't be read (or was
    written by another Python) is skipped: the modules then come from their sources.

    The cyclic garbage collector is off: a command lives milliseconds, reference counting frees what it
    drops, and the collector would otherwise run ~10 times during the imports of a `run` (0.4-0.5 ms). The
    commands that can last (`events` streams, a relayed terminal) turn it back on.
    """
    return (
        "import gc\ngc.disable()\n"
        f"import sys\nsys.path += {paths!r}\n"
        f"if sys.implementation.cache_tag == {sys.implementation.cache_tag!r}:\n"
        " try:\n  import marshal, posix\n"
        f"  fd = posix.open({archive!r}, posix.O_RDONLY | posix.O_CLOEXEC)\n"
        "  boot, table = marshal.loads(posix.read(fd, int.from_bytes(posix.read(fd, 8), 'little')))\n"
        "  exec(boot, {'TABLE': table, 'FD': fd, '__name__': 'ocirun_boot'})\n"
        " except (OSError, ValueError, EOFError, TypeError):\n  pass\n"
    )


def write_archive(root: str = ROOT, package: str = "ocirun", *, ext: dict[str, str] | None = None) -> str:
    """Compile `package` into one marshalled file (see tools/launcher_boot.py); returns its path.

    `ext` {module: file}: extension modules the launcher's interpreter loads from these files directly, without
    a path search (~0.4 ms for _cffi_backend, whose site-packages directory has hundreds of entries to list).
    """
    import marshal

    boot_path = os.path.join(ROOT, "tools", "launcher_boot.py")
    with open(boot_path, "rb") as f:
        boot = compile(f.read(), boot_path, "exec", optimize=2, dont_inherit=True)
    out = archive_path(root, package)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    table, blobs = archive_table(root, package)
    for name, path in (ext or {}).items():
        st = os.stat(path)
        table[name] = (False, path, st.st_mtime_ns, st.st_size, -1, 0)
    # Offsets count from the end of the header, which holds them: fix them up once its length is known.
    header = marshal.dumps((boot, table))
    while True:
        base = 8 + len(header)
        fixed = {k: (*v[:4], base + v[4] if v[4] >= 0 else -1, v[5]) for k, v in table.items()}
        new = marshal.dumps((boot, fixed))
        if len(new) == len(header):
            break
        header = new
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(len(new).to_bytes(8, "little") + new + b"".join(blobs))
    os.rename(tmp, out)
    return out


def archive_path(root: str = ROOT, package: str = "ocirun") -> str:
    return os.path.join(root, package, "__pycache__", f"modules.{sys.implementation.cache_tag}.marshal")


def archive_table(root: str, package: str) -> tuple[dict, list[bytes]]:
    """({module: (is_package, source path, mtime_ns, size, offset, length)}, the marshalled codes) for every
    module of `package`; offsets count from the first code.

    Docstrings and asserts are stripped (optimize=2: nothing in the package reads __doc__ or relies on
    assert), which makes the archive ~25% smaller than the .pyc files it replaces.
    """
    import marshal

    table: dict = {}
    blobs: list[bytes] = []
    offset = 0
    for d, dirs, files in os.walk(os.path.join(root, package)):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(d, name)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts.pop()
            st = os.stat(path)
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec", optimize=2, dont_inherit=True)
            blob = marshal.dumps(code)
            table[".".join(parts)] = (is_pkg, path, st.st_mtime_ns, st.st_size, offset, len(blob))
            blobs.append(blob)
            offset += len(blob)
    return table, blobs


_PROBE = """import sys
sys.path += {paths!r}
for m in {deps!r}:
    __import__(m)
import marshal, sysconfig
with open("/proc/self/maps") as f:
    shared = "/libpython" in f.read()
v = sysconfig.get_config_var
frozen = []
for name in {frozen!r}:
    path = sys.modules[name].__file__
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    frozen.append((name, hasattr(sys.modules[name], "__path__"), marshal.dumps(code).hex()))
print(repr({{"tag": sys.implementation.cache_tag, "static": not shared,
             "ext": {{m: sys.modules[m].__file__ for m in {ext!r}}},
             "embed": {{"lib": f"{{v('LIBPL')}}/{{v('LIBRARY')}}", "include": v("INCLUDEPY"),
                       "libs": " ".join(v(k) or "" for k in ("LIBS", "MODLIBS", "SYSLIBS")).split(),
                       "frozen": frozen}}}}))
"""
# What the interpreter imports from the standard library while it starts (the codec of its UTF-8 streams):
# frozen into an embedded interpreter (launcher.c).
FROZEN_STDLIB = ("encodings", "encodings.aliases", "encodings.utf_8")
# Extension modules of the create/run/exec path, served from their files by the module archive (write_archive).
EXT_MODULES = ("_cffi_backend", "ocirun._native", "_json")


def pick_python(paths: list[str]) -> tuple[str, str, dict[str, str], dict]:
    """The interpreter the launcher runs, why, where it finds EXT_MODULES, and how to link it into the launcher
    (see _build_c_launcher; {} for none): a statically linked build of
    this same Python when there is one that loads the C helper and the dependencies (Debian's
    /usr/bin/python3.11, built with PGO and LTO and no libpython.so to relocate, starts in 7.7 ms where this
    pyenv build takes 9.1 ms, and runs `ocirun run` ~3 ms faster); else the interpreter running this script.
    OCIRUN_PYTHON names one outright (its modules are then found by path search).
    """
    import importlib.util

    forced = os.environ.get("OCIRUN_PYTHON")
    if forced:
        return forced, "OCIRUN_PYTHON", {}, {}
    deps = ["_cffi_backend", "ocirun._native", "_json"]
    deps += [m for m in ("pyseccomp", "jsonschema") if importlib.util.find_spec(m) is not None]
    probe = _PROBE.format(paths=paths, deps=deps, ext=EXT_MODULES, frozen=FROZEN_STDLIB)
    own = os.path.realpath(sys.executable)
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    import ast

    probed: dict[str, dict] = {}
    for cand in (own, f"/usr/bin/python{ver}", f"/usr/local/bin/python{ver}"):
        real = os.path.realpath(cand)
        if real in probed or not os.access(real, os.X_OK):
            continue
        out = _run([real, "-ISXfrozen_modules=on", "-c", probe])
        if out is None:
            continue
        info = ast.literal_eval(out.strip())
        if info["tag"] == sys.implementation.cache_tag:
            probed[real] = info
    for real, info in probed.items():
        if info["static"]:
            return real, "statically linked libpython", info["ext"], info["embed"]
    return own, "the installing interpreter", probed.get(own, {}).get("ext", {}), {}


def _run(argv: list[str]) -> str | None:
    import subprocess

    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return p.stdout if p.returncode == 0 else None


def _c_string(s: str) -> str:
    """A C string literal for any text (octal escapes for everything but plain printable ASCII)."""
    out = []
    for b in s.encode():
        ch = chr(b)
        out.append(ch if 32 <= b < 127 and ch not in '"\\?' else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _build_c_launcher(out: str, python: str, code: str, embed: dict | None = None) -> str:
    """Compile tools/launcher.c with the interpreter and start code built in; which kind, or "" when there is
    no compiler.

    First with the interpreter linked in from libpython's static library (`embed`, offered for a statically
    linked interpreter; see launcher.c: ~2 ms less per command on the dev VM), then a static program that
    execs the interpreter, then the same dynamically linked.
    """
    import shutil
    import subprocess
    import tempfile

    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return ""
    with tempfile.TemporaryDirectory(prefix="ocirun-launcher-") as tmpd:
        with open(os.path.join(tmpd, "launcher_config.h"), "w") as f:
            f.write(f"#define OCIRUN_PYTHON {_c_string(python)}\n#define OCIRUN_CODE {_c_string(code)}\n")
        src = os.path.join(ROOT, "tools", "launcher.c")
        base = [cc, "-O2", "-Wall", "-Werror", "-I", tmpd, "-o", out, src]
        attempts = []
        if embed and os.path.isfile(embed["lib"]):
            with open(os.path.join(tmpd, "launcher_frozen.h"), "w") as f:
                f.write(_frozen_table(embed["frozen"]))
            # -no-pie: the static library is not position independent; -export-dynamic: extension modules
            # (_json, _cffi_backend, ours) find the C API in the executable.
            attempts.append(("embedded interpreter", ["-DOCIRUN_EMBED", "-no-pie", "-I", embed["include"],
                                                      embed["lib"], *embed["libs"], "-Wl,-export-dynamic"]))
        # Static: no dynamic loader work before the interpreter's own; dynamic when there is no libc.a.
        attempts += [("static launcher", ["-static"]), ("launcher", [])]
        for kind, extra in attempts:
            if subprocess.run(base + extra, capture_output=True).returncode == 0 and _works(out, kind):
                return kind
    return ""


def _frozen_table(frozen: list[tuple[str, bool, str]]) -> str:
    """launcher_frozen.h: each module's marshalled code as a C array, and the table PyImport_FrozenModules
    takes (struct _frozen: name, code, size, is_package, get_code)."""
    out, rows = [], []
    for i, (name, is_pkg, code_hex) in enumerate(frozen):
        data = bytes.fromhex(code_hex)
        out.append(f"static const unsigned char frozen_{i}[] = {{{','.join(map(str, data))}}};")
        rows.append(f"    {{{_c_string(name)}, frozen_{i}, (int)sizeof frozen_{i}, {int(is_pkg)}, NULL}},")
    rows.append("    {NULL, NULL, 0, 0, NULL},")
    return "\n".join(out) + "\nstatic const struct _frozen frozen_modules[] = {\n" + "\n".join(rows) + "\n};\n"


def _works(launcher: str, kind: str) -> bool:
    """An embedded interpreter must start and load an extension module (`list` imports _json)."""
    import subprocess

    if kind != "embedded interpreter":
        return True
    p = subprocess.run([launcher, "--root", "/nonexistent/ocirun-probe", "list", "--format", "json"],
                       capture_output=True, timeout=60)
    return p.returncode == 0 and p.stdout.strip() == b"null"


def _cli(argv: list[str]) -> None:
    """install_launcher.py DEST (a launcher for this checkout in place) | --prefix P | --uninstall --prefix P"""
    if argv[:1] == ["--uninstall"] and argv[1:2] == ["--prefix"] and len(argv) == 3:
        uninstall(argv[2])
    elif argv[:1] == ["--prefix"] and len(argv) == 2:
        install(argv[1])
    elif len(argv) == 1 and not argv[0].startswith("-"):
        main(argv[0])
    else:
        sys.exit(f"usage: {sys.argv[0]} DEST | --prefix PREFIX | --uninstall --prefix PREFIX")


if __name__ == "__main__":
    _cli(sys.argv[1:])
